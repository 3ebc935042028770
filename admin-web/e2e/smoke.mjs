// Walks every page of the admin UI, signed in, in light and dark: saves a screenshot of each
// to e2e/out/ and fails on a console error, a CSP violation, an injected <style>, or a
// credential-looking key in localStorage/sessionStorage.
//
//   KEYGATE_UI=http://127.0.0.1:7000 KEYGATE_EMAIL=... KEYGATE_PASSWORD=... node e2e/smoke.mjs
import { mkdirSync } from "node:fs";
import { launch, signIn, storageKeys, styleElements, watch } from "./lib.mjs";

const base = (process.env.KEYGATE_UI ?? "http://127.0.0.1:4173").replace(/\/$/, "");
const email = process.env.KEYGATE_EMAIL;
const password = process.env.KEYGATE_PASSWORD;
if (!email || !password) {
  console.error("set KEYGATE_EMAIL and KEYGATE_PASSWORD");
  process.exit(2);
}
const PAGES = [
  "/",
  "/tokens",
  "/routes",
  "/teams",
  "/users",
  "/service-accounts",
  "/usage",
  "/audit",
  "/system",
  "/account/password",
  "/account/sessions",
  "/no-such-page",
];
const ALLOWED_STORAGE = new Set(["mantine-color-scheme-value", "kg-sidebar-collapsed", "tsr-scroll-restoration-v1_3"]);
const out = new URL("./out/", import.meta.url).pathname;
mkdirSync(out, { recursive: true });

const browser = await launch();
let failures = 0;
for (const scheme of ["light", "dark"]) {
  const ctx = await browser.newContext({ viewport: { width: 1400, height: 900 }, colorScheme: scheme });
  const page = await ctx.newPage();
  const problems = await watch(page);
  await signIn(page, base, email, password);
  for (const path of PAGES) {
    await page.goto(base + path, { waitUntil: "networkidle" });
    await page.waitForTimeout(200);
    const name = `${(path.replace(/\//g, "_").replace(/^_/, "") || "dashboard")}-${scheme}.png`;
    await page.screenshot({ path: out + name });
    const styles = await styleElements(page);
    if (styles) problems.push(`${path}: ${styles} <style> element(s)`);
    const { local, session } = await storageKeys(page);
    for (const k of [...local, ...session]) if (!ALLOWED_STORAGE.has(k)) problems.push(`${path}: unexpected storage key ${k}`);
    const result = problems.splice(0);
    console.log(`${result.length ? "FAIL" : "ok  "} ${scheme} ${path}${result.length ? "\n  " + result.join("\n  ") : ""}`);
    failures += result.length ? 1 : 0;
  }
  await ctx.close();
}
await browser.close();
console.log(`${PAGES.length * 2 - failures} passed, ${failures} failed`);
process.exit(failures ? 1 : 0);
