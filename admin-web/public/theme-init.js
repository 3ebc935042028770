// Sets the colour scheme before the first paint (an external file: the CSP forbids inline
// scripts). Same key and values as Mantine's localStorageColorSchemeManager.
(function () {
  var pref = "auto";
  try {
    pref = window.localStorage.getItem("mantine-color-scheme-value") || "auto";
  } catch (e) {}
  if (pref !== "light" && pref !== "dark") {
    pref = window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light";
  }
  document.documentElement.setAttribute("data-mantine-color-scheme", pref);
})();
