// The in-page side of the admin UI benchmark (bench/ui.mjs): `probe` is installed as an init
// script and records, on the page's own clock (performance.now(), milliseconds since navigation
// start), when each awaited state is first in the DOM (`<name>Dom`) and first painted (`<name>`:
// a requestAnimationFrame callback's setTimeout(0), the first task after that frame), the
// pointerdown of an armed click (`<armed>Input`) and long tasks. `collect` reads them back with
// Resource Timing.

export function probe(opts) {
  const kg = { marks: {}, longtasks: [], armed: null, total: null };
  window.__kg = kg;
  const mark = (name, t = performance.now()) => {
    if (kg.marks[name] === undefined) kg.marks[name] = t;
  };
  const pending = new Set();
  // The state is in the DOM now; it is on screen once the next frame has been produced.
  const painted = (name) => {
    if (pending.has(name)) return;
    pending.add(name);
    mark(`${name}Dom`);
    requestAnimationFrame(() => setTimeout(() => mark(name), 0));
  };
  try {
    new PerformanceObserver((l) => {
      for (const e of l.getEntries()) kg.longtasks.push([Math.round(e.startTime), Math.round(e.duration)]);
    }).observe({ type: "longtask", buffered: true });
  } catch {
    /* not supported */
  }
  document.addEventListener("submit", () => mark("submit"), true);
  const input = (e) => {
    if (kg.armed) {
      mark(`${kg.armed}Input`, e.timeStamp);
      kg.armed = null;
    }
  };
  document.addEventListener("pointerdown", input, true);
  document.addEventListener("keydown", (e) => e.key === "Enter" && input(e), true);
  // In-page list operations (next page, sort, a filter): the harness calls
  // `__kg.expectChange(name)` just before its click; `<name>` is marked once the table is
  // no longer busy and shows other rows or another range than when it was armed.
  const tokensTable = () => document.querySelector('table[aria-label="Tokens"]');
  const listSignature = () => {
    const table = tokensTable();
    const first = table?.querySelector("tbody tr")?.textContent ?? "";
    const range = [...document.querySelectorAll('[aria-live="polite"]')].map((e) => e.textContent ?? "").find((t) => / of [\d,]+/.test(t)) ?? "";
    return `${first}|${range}`;
  };
  kg.watch = null;
  kg.expectChange = (name) => {
    kg.watch = { name, before: listSignature() };
    kg.armed = name;
  };
  const digits = (el) => !!el && !el.querySelector(".mantine-Skeleton-root") && /\d/.test(el.textContent ?? "");
  const check = () => {
    if (location.pathname === "/") {
      const cards = [...document.querySelectorAll('[role="group"][aria-label]')];
      const counts = cards.length >= 6 && cards.slice(0, 6).every(digits);
      if (counts) painted("dashCounts");
      const charts = !!document.querySelector(".recharts-area-area") && !!document.querySelector(".recharts-bar-rectangle");
      if (charts) painted("dashCharts");
      if (counts && charts && !document.querySelector(".mantine-Skeleton-root")) painted("dashReady");
    }
    if (document.querySelector('[data-collapsed="true"]')) painted("collapsed");
    if (kg.watch) {
      const t = tokensTable();
      if (t && !t.hasAttribute("aria-busy") && t.querySelector("tbody tr") && listSignature() !== kg.watch.before) {
        const name = kg.watch.name;
        kg.watch = null;
        painted(name);
      }
    }
    const table = tokensTable();
    if (table && !table.hasAttribute("aria-busy") && location.pathname === "/tokens") {
      const first = table.querySelector("tbody tr");
      if (first && (!opts.expectFirst || (first.textContent ?? "").includes(opts.expectFirst))) {
        const range = [...document.querySelectorAll('[aria-live="polite"]')].map((e) => e.textContent ?? "").find((t) => / of [\d,]+/.test(t));
        if (range) {
          kg.total = Number(range.match(/ of ([\d,]+)/)[1].replace(/,/g, ""));
          kg.rowCount = table.querySelectorAll("tbody tr").length;
          painted("rows");
        }
      }
    }
  };
  new MutationObserver(() => {
    try {
      check();
    } catch {
      /* keep observing */
    }
  }).observe(document, { subtree: true, childList: true, attributes: true, characterData: true });
}

/** Marks, Resource Timing of grpc-web calls and JS chunks, long tasks. */
export function collect(page) {
  return page.evaluate(() => {
    const res = performance.getEntriesByType("resource").map((e) => ({
      name: new URL(e.name).pathname,
      start: e.startTime,
      requestStart: e.requestStart,
      responseStart: e.responseStart,
      end: e.responseEnd,
      bytes: e.encodedBodySize,
    }));
    const nav = performance.getEntriesByType("navigation")[0];
    return {
      marks: window.__kg.marks,
      longtasks: window.__kg.longtasks,
      total: window.__kg.total,
      rowCount: window.__kg.rowCount,
      resources: res,
      nav: nav && { responseEnd: nav.responseEnd, domContentLoaded: nav.domContentLoadedEventEnd },
    };
  });
}
