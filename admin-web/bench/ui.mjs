// The admin UI benchmark (issue 13, "Must show"): what an admin waits for, in Debian's Chromium
// against the real stack (e2e/stack.mjs: control plane on SQLite serving dist/, kv-sync, the
// native gateway). Not a test: nothing judges these figures in CI. `npm run bench:ui -- --help`.
//
// Per case (a token count), `keygate-bench ui-seed` writes a new SQLite database before the
// control plane first opens it (the control-plane benchmark's data set: 100 teams, 20 tagged
// routes, revoked/expired/expiring tokens, `*`/route/tag scopes; plus last use on 60 % of the
// tokens and real keys for a few), the stack starts on it (DATABASE_URL), the admin is created
// through the setup code, a few hundred gateway calls give the dashboard usage to draw, and the
// stack is left to go idle. Then, with fresh pages and in-page clocks (performance.now(), so no
// harness round trip is counted):
//
// (a) sign-in -> interactive dashboard: a fresh browser context opens /sign-in and fills the
//     form; from the form's submit event until the dashboard is complete and painted (every
//     stat card has its figure, the 24 h traffic area and the tokens-created bars are drawn, no
//     skeleton is left), plus the response time of the first click after that (the sidebar's
//     collapse button: pointerdown -> the collapsed sidebar painted).
// (b) token list: a new page (signed-in context, warm HTTP cache) navigates to /tokens or a
//     filtered/sorted variant; from navigation start until the first page of rows is painted
//     (table not busy, rows present, the expected first row). Also in-app: a click on "Tokens"
//     in the sidebar of a loaded dashboard -> rows painted; and in the page: the next page,
//     sorting by last use, the "Revoked" status filter (click -> the changed rows painted).
//     The ListTokens call's server time (Resource Timing: requestStart -> responseStart, same
//     origin) is reported beside each.
// (c) initial JavaScript, gzip: scripts/check-budget.mjs over dist/, and the lazily loaded
//     chunks each flow fetched.
//
// "Painted" is a requestAnimationFrame callback's setTimeout(0): the first task after the frame
// that showed the state. Percentiles are nearest-rank over the measured runs (warm-ups are
// dropped); variants are interleaved run by run so drift on a shared machine hits all alike.
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import { cpus, loadavg, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";
import { chromiumPath, launch } from "../e2e/lib.mjs";
import { eventually, startStack } from "../e2e/stack.mjs";
import { collect, probe } from "./probe.mjs";
import { binDir, seed, stackCpuSecs } from "./stack-tools.mjs";

const HERE = fileURLToPath(new URL(".", import.meta.url));
const WEB = resolve(HERE, "..");
const ROOT = resolve(WEB, "..");
const DIST = join(WEB, "dist");
const ADMIN = { email: "bench-admin@example.com", name: "Bench Admin", password: "bench password 0123456789" };
/** The control plane allows 10 sign-ins per account per minute (one more every 6 s after a burst
 * of 10: AuthSettings in control-plane/src/sessions/service.rs); runs start at least this far
 * apart so none is refused. The wait is between runs, never inside one. */
const SIGN_IN_PACE_MS = 6_200;
const TARGETS = { signinMs: 1500, listP95Ms: 300, initialJsKb: 350 };

const HELP = `npm run bench:ui -- [options]

  --runs N             measured runs per measurement (default 20)
  --warmup N           unmeasured runs first (default 2)
  --signin-tokens N    tokens seeded for the sign-in case (default 10000)
  --list-tokens N      tokens seeded for the token-list case (default 100000; sign-in is measured
                       there too, for reference)
  --traffic N          gateway calls before measuring, for the dashboard's usage (default 600)
  --json-out FILE      also write every sample and the summary as JSON
  --keep               keep the temp data dirs (KEYGATE_E2E_KEEP) and print them

Environment: KEYGATE_BIN_DIR (default ../target/debug; use target/release for the figures)
holds keygate-control-plane, keygate-kv-sync, keygate-gateway and keygate-bench; CHROMIUM
overrides the browser. Needs dist/ (npm run build).`;

function parseArgs(argv) {
  const o = { runs: 20, warmup: 2, signinTokens: 10_000, listTokens: 100_000, traffic: 600, jsonOut: null, keep: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const num = () => {
      const v = Number(argv[++i]);
      if (!Number.isInteger(v) || v < 0) throw new Error(`${a} needs a whole number`);
      return v;
    };
    if (a === "--help" || a === "-h") {
      console.log(HELP);
      process.exit(0);
    } else if (a === "--runs") o.runs = Math.max(1, num());
    else if (a === "--warmup") o.warmup = num();
    else if (a === "--signin-tokens") o.signinTokens = Math.max(1, num());
    else if (a === "--list-tokens") o.listTokens = Math.max(1, num());
    else if (a === "--traffic") o.traffic = num();
    else if (a === "--json-out") o.jsonOut = resolve(process.env.INIT_CWD ?? process.cwd(), argv[++i]);
    else if (a === "--keep") o.keep = true;
    else throw new Error(`unknown option ${a} (--help)`);
  }
  return o;
}

/** Waits for `mark`; on timeout says where the page is and what it shows. */
async function waitMark(page, mark, timeout = 60_000) {
  try {
    await page.waitForFunction((m) => window.__kg?.marks[m] !== undefined, mark, { timeout });
  } catch (e) {
    const where = await page.evaluate(() => ({ url: location.href, text: document.body.innerText.slice(0, 400), kg: window.__kg })).catch(() => ({}));
    throw new Error(`waiting for ${mark}: ${e.message.split("\n")[0]}; page: ${JSON.stringify(where)}`);
  }
}

const RPC = (r) => r.name.match(/^\/keygate\.v1\.(\w+)\/(\w+)$/);
/** Server time (TTFB on 127.0.0.1) of the calls matching `method`, after `from`. */
function rpcTimes(resources, method, from = 0) {
  return resources.filter((r) => r.start >= from && RPC(r)?.[2] === method).map((r) => ({ ttfb: r.responseStart - r.requestStart, total: r.end - r.start, start: r.start, end: r.end }));
}

// ---------------------------------------------------------------------------------------------
// Stack, seed, traffic.


async function startUpstream() {
  let calls = 0;
  const srv = createServer((req, res) => {
    calls++;
    // A backend that takes a few milliseconds, so latency percentiles are not all zero.
    const delay = 2 + (calls * 7) % 23;
    req.resume();
    setTimeout(() => {
      res.setHeader("content-type", "application/json");
      res.end(JSON.stringify({ ok: true, path: req.url }));
    }, delay);
  });
  await new Promise((ok) => srv.listen(0, "127.0.0.1", ok));
  return { url: `http://127.0.0.1:${srv.address().port}`, calls: () => calls, close: () => new Promise((ok) => srv.close(ok)) };
}


/** Gateway calls with the seeded keys over the 20 routes; a few with an unknown key. */
async function traffic(stack, keys, n) {
  const statuses = {};
  let i = 0;
  const one = async () => {
    while (i < n) {
      const k = i++;
      const key = k % 25 === 24 ? "kg_not_a_real_key" : keys[(k * 7) % keys.length];
      const route = `svc-${100 + ((k * 3) % 20)}`;
      const res = await fetch(`${stack.gatewayUrl}/${route}/orders/${k}?page=${k % 5}`, { headers: { "X-API-Key": key } });
      await res.arrayBuffer();
      statuses[res.status] = (statuses[res.status] ?? 0) + 1;
    }
  };
  await Promise.all(Array.from({ length: 4 }, one));
  return statuses;
}


/** Waits until the stack uses under 5 % of a core over two consecutive seconds (kv-sync's
 * first snapshot of 100k tokens, the gateway loading it). Gives up after `ms`. */
async function settle(stack, ms = 180_000) {
  const started = Date.now();
  let quiet = 0;
  let last = stackCpuSecs(stack);
  while (Date.now() - started < ms) {
    await new Promise((ok) => setTimeout(ok, 1000));
    const now = stackCpuSecs(stack);
    quiet = now - last < 0.05 ? quiet + 1 : 0;
    last = now;
    if (quiet >= 2) return { idle: true, secs: (Date.now() - started) / 1000 };
  }
  return { idle: false, secs: (Date.now() - started) / 1000 };
}

// ---------------------------------------------------------------------------------------------
// Measurements.

const VIEWPORT = { width: 1440, height: 900 };

async function setupAdmin(browser, stack) {
  const ctx = await browser.newContext({ baseURL: stack.base, viewport: VIEWPORT });
  const page = await ctx.newPage();
  page.setDefaultTimeout(30_000);
  await page.goto(`/setup?code=${encodeURIComponent(stack.setupCode)}`);
  await page.getByLabel("Email").fill(ADMIN.email);
  await page.getByLabel("Display name").fill(ADMIN.name);
  await page.locator("input[autocomplete=new-password]").nth(0).fill(ADMIN.password);
  await page.locator("input[autocomplete=new-password]").nth(1).fill(ADMIN.password);
  await page.getByRole("button", { name: "Create admin and sign in" }).click();
  await page.waitForURL((u) => !u.pathname.startsWith("/setup"));
  return { ctx, page };
}

/** Polls the dashboard until "Calls today" shows the traffic (usage flushed and ingested). */
async function waitForUsage(page) {
  await eventually(
    "usage on the dashboard",
    async () => {
      await page.goto("/");
      const card = page.locator('[role="group"][aria-label="Calls today"]');
      await card.waitFor();
      await page.waitForFunction(() => /\d/.test(document.querySelector('[role="group"][aria-label="Calls today"]')?.textContent ?? ""));
      const text = await card.textContent();
      return !/^\D*0\D*$/.test(text.replace(/errors?.*$/i, "")) && (await page.locator(".recharts-area-area").count()) > 0;
    },
    60_000,
    1000,
  );
}

async function signInRun(browser, stack) {
  const ctx = await browser.newContext({ baseURL: stack.base, viewport: VIEWPORT });
  try {
    const page = await ctx.newPage();
    page.setDefaultTimeout(30_000);
    await page.addInitScript(probe, {});
    await page.goto("/sign-in", { waitUntil: "networkidle" });
    await page.getByLabel("Email").fill(ADMIN.email);
    await page.locator("input[autocomplete=current-password]").fill(ADMIN.password);
    await page.getByRole("button", { name: "Sign in" }).click();
    await waitMark(page, "dashReady");
    await page.evaluate(() => (window.__kg.armed = "collapse"));
    await page.getByRole("button", { name: "Collapse sidebar" }).click();
    await waitMark(page, "collapsed");
    const c = await collect(page);
    const m = c.marks;
    const s = m.submit;
    const click = m.collapsed - m.collapseInput;
    const signIn = rpcTimes(c.resources, "SignIn", s)[0];
    const me = rpcTimes(c.resources, "GetCurrentUser", s)[0];
    const dash = rpcTimes(c.resources, "GetDashboard", s)[0];
    const usage = rpcTimes(c.resources, "GetUsageSummary", s)[0];
    const top = rpcTimes(c.resources, "ListTopUsage", s)[0];
    const lastRpc = Math.max(...c.resources.filter((r) => r.start >= s && RPC(r)).map((r) => r.end));
    const js = c.resources.filter((r) => r.start >= s && r.name.endsWith(".js")).map((r) => r.name);
    return {
      interactive: m.dashReady - s + click,
      ready: m.dashReady - s,
      click,
      counts: m.dashCounts - s,
      charts: m.dashCharts - s,
      signInTtfb: signIn?.ttfb,
      signInDone: signIn && signIn.end - s,
      meTtfb: me?.ttfb,
      dashboardTtfb: dash?.ttfb,
      usageTtfb: usage?.ttfb,
      topTtfb: top?.ttfb,
      lastRpcEnd: lastRpc - s,
      harnessGap: m.collapseInput - m.dashReady,
      longTasksAfterSubmit: c.longtasks.filter(([t]) => t >= s).reduce((a, [, d]) => a + d, 0),
      js,
    };
  } finally {
    await ctx.close();
  }
}

/** Runs `fn` on a new page of `ctx` that has the probe and has started loading `url`. */
async function onNewPage(ctx, variant, url, fn) {
  const page = await ctx.newPage();
  try {
    page.setDefaultTimeout(30_000);
    await page.addInitScript(probe, { expectFirst: variant.expectFirst });
    await page.goto(url, { waitUntil: "commit" });
    return await fn(page);
  } finally {
    await page.close();
  }
}

function listLoadRun(ctx, variant) {
  return onNewPage(ctx, variant, variant.url, async (page) => {
    await waitMark(page, "rows");
    const c = await collect(page);
    const list = rpcTimes(c.resources, "ListTokens")[0];
    return {
      rows: c.marks.rows,
      listTtfb: list?.ttfb,
      listTotal: list?.total,
      listStart: list?.start,
      afterList: list && c.marks.rows - list.end,
      html: c.nav?.responseEnd,
      total: c.total,
      rowCount: c.rowCount,
      js: c.resources.filter((r) => r.name.endsWith(".js")).map((r) => r.name),
    };
  });
}

function listNavRun(ctx, variant) {
  return onNewPage(ctx, variant, "/", async (page) => {
    await waitMark(page, "dashReady");
    await page.evaluate(() => (window.__kg.armed = "nav"));
    await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Tokens" }).click();
    await waitMark(page, "rows");
    const c = await collect(page);
    const t0 = c.marks.navInput;
    const list = rpcTimes(c.resources, "ListTokens", t0 - 1)[0];
    return {
      rows: c.marks.rows - t0,
      listTtfb: list?.ttfb,
      listTotal: list?.total,
      listStart: list && list.start - t0,
      afterList: list && c.marks.rows - list.end,
      total: c.total,
      rowCount: c.rowCount,
    };
  });
}

/** In-page operations on a loaded /tokens page, each a new page of the list from the server:
 * the next page, sorting by last use, a search (typed, then Enter; a scan of every token's
 * name and description on SQLite), the "Revoked" status filter. Each: the click's pointerdown (or the Enter) -> the changed rows painted. */
const click = (locate) => ({ ready: (page) => locate(page).hover(), act: (page) => locate(page).click() });
const LIST_OPS = [
  { name: "next page", ...click((page) => page.getByRole("button", { name: "Next page" })) },
  { name: "sort by last use", ...click((page) => page.getByRole("columnheader", { name: /Last used/ }).getByRole("button")) },
  {
    name: "search 'zephyr' (few)",
    ready: () => undefined,
    act: async (page) => {
      const box = page.getByRole("textbox", { name: "Search tokens" });
      await box.fill("zephyr");
      await box.press("Enter");
    },
  },
  { name: "status filter 'Revoked'", ...click((page) => page.getByRole("radiogroup", { name: "Status" }).getByText("Revoked", { exact: true })) },
];

function listOpsRun(ctx, variant) {
  return onNewPage(ctx, variant, variant.url, async (page) => {
    await waitMark(page, "rows");
    const out = {};
    for (const [i, op] of LIST_OPS.entries()) {
      const name = `op${i}`;
      await op.ready(page);
      await page.evaluate((n) => window.__kg.expectChange(n), name);
      await op.act(page);
      await waitMark(page, name);
      const c = await collect(page);
      const t0 = c.marks[`${name}Input`];
      const list = rpcTimes(c.resources, "ListTokens", t0 - 1)[0];
      out[op.name] = { rows: c.marks[name] - t0, listTtfb: list?.ttfb, afterList: list && c.marks[name] - list.end };
    }
    return out;
  });
}

// ---------------------------------------------------------------------------------------------
// Statistics and report.

function pct(values, p) {
  const v = values.filter((x) => typeof x === "number" && Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return null;
  return v[Math.min(v.length - 1, Math.max(0, Math.ceil((p / 100) * v.length) - 1))];
}
function summary(samples, key) {
  const v = samples.map((s) => s[key]);
  return { p50: pct(v, 50), p95: pct(v, 95), max: pct(v, 100), n: v.filter((x) => typeof x === "number").length };
}
const ms = (x) => (x === null || x === undefined ? "—" : `${Math.round(x)}`);

function gzipKb(asset) {
  const f = join(DIST, asset.replace(/^\//, ""));
  return existsSync(f) ? gzipSync(readFileSync(f)).length / 1024 : 0;
}

function initialJs() {
  const r = spawnSync(process.execPath, [join(WEB, "scripts/check-budget.mjs")], { encoding: "utf8" });
  const line = r.stdout.split("\n").find((l) => l.includes("initial JavaScript"));
  const kb = line ? Number(line.trim().split(/\s+/)[0]) : null;
  return { kb, output: r.stdout.trim(), ok: r.status === 0 };
}

function describeRun() {
  const git = (...a) => {
    try {
      return execFileSync("git", a, { cwd: ROOT, encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
    } catch {
      return "";
    }
  };
  const mtime = (f) => (existsSync(f) ? new Date(statSync(f).mtimeMs).toISOString() : null);
  return {
    commit: git("rev-parse", "--short", "HEAD"),
    dirty: git("status", "--porcelain", "--untracked-files=no") !== "",
    binDir: binDir(),
    built: {
      controlPlane: mtime(join(binDir(), "keygate-control-plane")),
      dist: mtime(join(DIST, "index.html")),
    },
    chromium: chromiumPath(),
    node: process.version,
    nproc: cpus().length,
    cpu: cpus()[0]?.model ?? "",
  };
}

const la = () => loadavg().map((x) => x.toFixed(2)).join(" ");

async function runCase(browser, tokens, o, measureList) {
  const dir = mkdtempSync(join(tmpdir(), "keygate-ui-bench-"));
  const upstream = await startUpstream();
  let stack;
  const out = { tokens };
  try {
    console.error(`\n[${tokens} tokens] seeding`);
    const seeded = seed(dir, tokens, upstream.url);
    out.seed = { secs: seeded.wall_secs, counts: seeded.counts };
    console.error(`  seeded in ${seeded.wall_secs.toFixed(1)} s: ${JSON.stringify(seeded.counts)}`);
    process.env.DATABASE_URL = seeded.db_url;
    try {
      stack = await startStack();
    } finally {
      delete process.env.DATABASE_URL;
    }
    if (o.keep) console.error(`  data dir ${stack.data}, database ${seeded.db_url}`);
    const admin = await setupAdmin(browser, stack);
    await eventually(
      "the gateway knows the seeded keys",
      async () => (await fetch(`${stack.gatewayUrl}/svc-100/ping`, { headers: { "X-API-Key": seeded.keys[0] } })).status === 200,
      180_000,
      500,
    );
    out.traffic = await traffic(stack, seeded.keys, o.traffic);
    console.error(`  gateway traffic: ${JSON.stringify(out.traffic)}`);
    if (o.traffic > 0) await waitForUsage(admin.page);
    out.settle = await settle(stack);
    console.error(`  stack ${out.settle.idle ? "idle" : "NOT idle"} after ${out.settle.secs.toFixed(0)} s; loadavg ${la()}`);

    // (a) sign-in -> interactive dashboard.
    out.signin = [];
    let lastStart = 0;
    for (let i = 0; i < o.warmup + o.runs; i++) {
      const wait = lastStart + SIGN_IN_PACE_MS - Date.now();
      if (wait > 0) await new Promise((ok) => setTimeout(ok, wait));
      lastStart = Date.now();
      const r = await signInRun(browser, stack);
      if (i >= o.warmup) out.signin.push(r);
    }
    const si = summary(out.signin, "interactive");
    console.error(`  sign-in -> interactive: p50 ${ms(si.p50)} ms, p95 ${ms(si.p95)} ms`);

    // (b) token list.
    if (measureList) {
      const c = seeded.counts;
      const variants = [
        { name: "/tokens", url: "/tokens", expectFirst: c.newest_name, expectTotal: c.tokens },
        { name: "sort by last use", url: "/tokens?sort=last_used&desc=true", expectTotal: c.tokens },
        { name: "team filter", url: "/tokens?team=team-7", expectTotal: c.team_7 },
        { name: "search 'deploy' (many)", url: "/tokens?q=deploy", expectTotal: c.query_deploy },
        { name: "search 'zephyr' (few)", url: "/tokens?q=zephyr", expectTotal: c.query_zephyr },
      ];
      const ctx = admin.ctx;
      out.list = Object.fromEntries(variants.map((v) => [v.name, { url: v.url, expectTotal: v.expectTotal, samples: [] }]));
      out.listNav = [];
      out.listOps = {};
      for (let i = 0; i < o.warmup + o.runs; i++) {
        for (const v of variants) {
          const r = await listLoadRun(ctx, v);
          if (r.total !== v.expectTotal) throw new Error(`${v.url}: the page shows ${r.total} tokens, the database holds ${v.expectTotal}`);
          if (i >= o.warmup) out.list[v.name].samples.push(r);
        }
        const r = await listNavRun(ctx, variants[0]);
        if (i >= o.warmup) out.listNav.push(r);
        const ops = await listOpsRun(ctx, variants[0]);
        if (i >= o.warmup) for (const [name, sample] of Object.entries(ops)) (out.listOps[name] ??= []).push(sample);
      }
      for (const [name, v] of Object.entries(out.list)) {
        const s = summary(v.samples, "rows");
        console.error(`  ${name}: p50 ${ms(s.p50)} ms, p95 ${ms(s.p95)} ms`);
      }
    }
    await admin.ctx.close();
  } finally {
    if (o.keep) process.env.KEYGATE_E2E_KEEP = "1";
    await stack?.stop();
    await upstream.close();
    if (!o.keep) rmSync(dir, { recursive: true, force: true });
  }
  return out;
}

function report(o, run, cases, js) {
  const lines = [];
  const row = (cells, widths) => cells.map((c, i) => (i === 0 ? String(c).padEnd(widths[i]) : String(c).padStart(widths[i]))).join("  ");
  const W = [44, 5, 8, 8, 8];
  lines.push("");
  lines.push(row(["admin UI (ms unless noted)", "runs", "median", "p95", "max"], W));
  const verdicts = [];
  for (const c of cases) {
    lines.push(`-- ${c.tokens.toLocaleString("en")} tokens (seeded in ${c.seed.secs.toFixed(1)} s; stack ${c.settle.idle ? "idle" : "NOT idle"} before measuring)`);
    const add = (label, samples, key) => {
      const s = summary(samples, key);
      lines.push(row([label, s.n, ms(s.p50), ms(s.p95), ms(s.max)], W));
      return s;
    };
    const si = add("sign-in -> interactive dashboard", c.signin, "interactive");
    add("  submit -> dashboard complete, painted", c.signin, "ready");
    add("  first click after it (pointerdown -> paint)", c.signin, "click");
    add("  submit -> stat cards painted", c.signin, "counts");
    add("  submit -> charts painted", c.signin, "charts");
    add("  SignIn server time (TTFB)", c.signin, "signInTtfb");
    add("  GetCurrentUser server time", c.signin, "meTtfb");
    add("  GetDashboard server time", c.signin, "dashboardTtfb");
    add("  GetUsageSummary server time", c.signin, "usageTtfb");
    add("  ListTopUsage server time", c.signin, "topTtfb");
    add("  submit -> last dashboard call answered", c.signin, "lastRpcEnd");
    add("  long tasks after submit (sum)", c.signin, "longTasksAfterSubmit");
    if (c.tokens === o.signinTokens) {
      verdicts.push({
        target: `sign-in to an interactive dashboard under 1.5 s, ${c.tokens.toLocaleString("en")} tokens`,
        value: `median ${ms(si.p50)} ms, p95 ${ms(si.p95)} ms`,
        pass: si.p95 !== null && si.p95 < TARGETS.signinMs,
      });
    }
    if (c.list) {
      let worst = null;
      for (const [name, v] of Object.entries(c.list)) {
        const s = add(`token list load: ${name}`, v.samples, "rows");
        add("  navigation start -> ListTokens sent", v.samples, "listStart");
        add("  ListTokens server time (TTFB)", v.samples, "listTtfb");
        add("  ListTokens answered -> rows painted", v.samples, "afterList");
        if (!worst || s.p95 > worst.p95) worst = { ...s, name };
        if (c.tokens === o.listTokens) {
          verdicts.push({
            target: `token list page load p95 under 300 ms, ${c.tokens.toLocaleString("en")} tokens: ${name} (${v.url})`,
            value: `median ${ms(s.p50)} ms, p95 ${ms(s.p95)} ms (ListTokens server p95 ${ms(summary(v.samples, "listTtfb").p95)} ms)`,
            pass: s.p95 !== null && s.p95 < TARGETS.listP95Ms,
          });
        }
      }
      for (const [name, samples] of Object.entries(c.listOps ?? {})) {
        const s = add(`token list in page: ${name} (click -> rows)`, samples, "rows");
        add("  ListTokens server time (TTFB)", samples, "listTtfb");
        if (c.tokens === o.listTokens) {
          verdicts.push({
            target: `token list page load in the app p95 under 300 ms, ${c.tokens.toLocaleString("en")} tokens: ${name}`,
            value: `median ${ms(s.p50)} ms, p95 ${ms(s.p95)} ms`,
            pass: s.p95 !== null && s.p95 < TARGETS.listP95Ms,
          });
        }
      }
      add("token list in-app: sidebar click -> rows", c.listNav, "rows");
      add("  click -> ListTokens sent", c.listNav, "listStart");
      add("  ListTokens server time (TTFB)", c.listNav, "listTtfb");
      add("  ListTokens answered -> rows painted", c.listNav, "afterList");
      if (c.tokens === o.listTokens) {
        const s = summary(c.listNav, "rows");
        verdicts.push({
          target: `token list in-app navigation p95 under 300 ms, ${c.tokens.toLocaleString("en")} tokens`,
          value: `median ${ms(s.p50)} ms, p95 ${ms(s.p95)} ms`,
          pass: s.p95 !== null && s.p95 < TARGETS.listP95Ms,
        });
      }
    }
  }
  lines.push("");
  lines.push(`initial JavaScript: ${js.initial.kb} kB gzip (budget ${TARGETS.initialJsKb} kB)`);
  for (const [name, kb] of Object.entries(js.lazy)) lines.push(`  loaded lazily by ${name}: ${kb.toFixed(1)} kB gzip`);
  verdicts.push({
    target: "initial JavaScript at most 350 kB gzip",
    value: `${js.initial.kb} kB`,
    pass: js.initial.kb !== null && js.initial.kb <= TARGETS.initialJsKb,
  });
  lines.push("");
  for (const v of verdicts) lines.push(`${v.pass ? "PASS" : "MISS"}  ${v.target}: ${v.value}`);
  lines.push("");
  lines.push(
    `${run.date}, commit ${run.commit}${run.dirty ? " (+ uncommitted changes)" : ""}, ${run.nproc} CPUs (${run.cpu}), ${run.chromium}, node ${run.node}, binaries ${run.binDir}, loadavg ${run.loadStart} -> ${run.loadEnd}, total ${run.totalSecs.toFixed(0)} s`,
  );
  return { text: lines.join("\n"), verdicts };
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  if (!existsSync(join(DIST, "index.html"))) throw new Error("dist/index.html missing: npm run build first");
  const started = Date.now();
  const run = { date: new Date().toISOString(), loadStart: la(), command: `npm run bench:ui -- ${process.argv.slice(2).join(" ")}`.trim(), ...describeRun() };
  console.error(`keygate admin UI benchmark, ${run.date}, commit ${run.commit}${run.dirty ? " (dirty)" : ""}, binaries ${run.binDir}, loadavg ${run.loadStart}`);
  if (!run.binDir.includes("release")) console.error("  note: debug binaries; build release ones for the figures (KEYGATE_BIN_DIR=../target/release)");
  const js = { initial: initialJs(), lazy: {} };
  const browser = await launch();
  run.chromium = `Chromium ${browser.version()} (${run.chromium})`;
  const cases = [];
  try {
    if (o.signinTokens !== o.listTokens) cases.push(await runCase(browser, o.signinTokens, o, false));
    cases.push(await runCase(browser, o.listTokens, o, true));
  } finally {
    await browser.close();
  }
  const initialSet = new Set(js.initial.output.split("\n").map((l) => l.trim().split(/\s+/).pop()).filter((f) => f.startsWith("assets/")).map((f) => `/${f}`));
  const lazyOf = (names) => [...new Set(names)].filter((n) => !initialSet.has(n)).reduce((a, n) => a + gzipKb(n), 0);
  const last = cases[cases.length - 1];
  js.lazy["sign-in -> dashboard"] = lazyOf(cases[0].signin[0]?.js ?? []);
  if (last.list) js.lazy["a /tokens load"] = lazyOf(Object.values(last.list)[0].samples[0]?.js ?? []);
  for (const c of cases) {
    for (const s of [...c.signin, ...Object.values(c.list ?? {}).flatMap((v) => v.samples)]) delete s.js;
  }
  run.loadEnd = la();
  run.totalSecs = (Date.now() - started) / 1000;
  const { text, verdicts } = report(o, run, cases, js);
  console.log(text);
  if (o.jsonOut) {
    writeFileSync(o.jsonOut, JSON.stringify({ run, options: o, targets: TARGETS, javascript: js, cases, verdicts }, null, 2) + "\n");
    console.error(`wrote ${o.jsonOut}`);
  }
}

main().catch((e) => {
  console.error(e.stack ?? e.message);
  process.exit(1);
});
