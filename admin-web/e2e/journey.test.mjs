// The admin's journey end to end, in Debian's Chromium against the real stack (control plane
// serving the built UI, kv-sync, native gateway, an HTTP upstream), as issue 13 asks:
// first-start setup and sign-in; a team, a route with a backend secret and a token created in
// the UI; the copied token calls the gateway; the call shows in usage; revoke and the gateway
// refuses; the audit entries; a VIEWER invited and accepted in a second browser context sees
// no create/edit controls and the server refuses a forced call; the session cookie is
// HttpOnly and no credential is in localStorage/sessionStorage.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { launch, storageKeys, watch, styleElements } from "./lib.mjs";
import { eventually, startStack } from "./stack.mjs";
import { callFromPage, stringFields } from "./grpcweb.mjs";

const ADMIN = { email: "admin@example.com", name: "Ada Admin", password: "correct horse battery staple" };
const VIEWER = { email: "viewer@example.com", name: "Vic Viewer", password: "viewer password 12345" };
const BACKEND_SECRET = "backend-secret-e2e-0123456789";
/** What may be in Web Storage: preferences, never a credential. */
const ALLOWED_STORAGE = new Set(["mantine-color-scheme-value", "kg-sidebar-collapsed", "tsr-scroll-restoration-v1_3"]);
/** Every page, for the screenshot and accessibility walk (after the journey, with its data). */
const PAGES = [
  ["dashboard", "/"],
  ["tokens", "/tokens"],
  ["routes", "/routes"],
  ["teams", "/teams"],
  ["users", "/users"],
  ["service-accounts", "/service-accounts"],
  ["usage", "/usage"],
  ["usage-token", null], // filled with the journey's token
  ["audit", "/audit"],
  ["system", "/system"],
  ["account-password", "/account/password"],
  ["account-sessions", "/account/sessions"],
  ["not-found", "/no-such-page"],
];
const SCREENSHOTS = new URL("./out/screenshots/", import.meta.url).pathname;
const AXE = readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");

let stack;
let browser;
let admin; // { ctx, page, problems }
const state = {};

async function newSession() {
  const ctx = await browser.newContext({ baseURL: stack.base });
  await ctx.grantPermissions(["clipboard-read", "clipboard-write"], { origin: stack.base });
  const page = await ctx.newPage();
  page.setDefaultTimeout(15_000);
  const problems = await watch(page);
  return { ctx, page, problems };
}

/** The control labelled exactly `label` (Mantine appends " *" to required fields' labels). */
function field(scope, label) {
  return scope.getByLabel(new RegExp(`^${label.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}( \\*)?$`));
}

/** Picks `option` in the Mantine Select/MultiSelect labelled `label` inside `scope`. */
async function pick(page, scope, label, option) {
  await field(scope, label).click();
  await page.getByRole("option", { name: option }).first().click();
}

async function gatewayCall(token) {
  const res = await fetch(`${stack.gatewayUrl}/echo/hello`, { headers: { "X-API-Key": token } });
  await res.arrayBuffer();
  return res.status;
}

/** Checks the session cookie's attributes and that Web Storage holds no credential. */
async function assertNoCredentialInJs(s) {
  const cookies = await s.ctx.cookies(stack.base);
  const session = cookies.filter((c) => c.httpOnly);
  assert.ok(session.length >= 1, `an HttpOnly session cookie is set (cookies: ${cookies.map((c) => c.name)})`);
  for (const c of session) assert.equal(c.sameSite, "Strict", `cookie ${c.name} is SameSite=Strict`);
  const notHttpOnly = cookies.filter((c) => !c.httpOnly);
  assert.deepEqual(notHttpOnly.map((c) => c.name), [], "every cookie is HttpOnly");
  const visible = await s.page.evaluate(() => document.cookie);
  assert.equal(visible, "", "document.cookie shows nothing");
  const keys = await storageKeys(s.page);
  for (const k of [...keys.local, ...keys.session]) assert.ok(ALLOWED_STORAGE.has(k), `unexpected Web Storage key ${k}`);
  const values = await s.page.evaluate(() => [...Object.values(localStorage), ...Object.values(sessionStorage)].join("\n"));
  for (const c of session) assert.ok(!values.includes(c.value), "the session secret is not in Web Storage");
}

before(async () => {
  stack = await startStack();
  browser = await launch();
  admin = await newSession();
});

after(async () => {
  await browser?.close();
  await stack?.stop();
});

test("first start: setup code creates the admin, who signs out and in again", async () => {
  const { page } = admin;
  await page.goto(`/setup?code=${encodeURIComponent(stack.setupCode)}`);
  await field(page, "Email").fill(ADMIN.email);
  await field(page, "Display name").fill(ADMIN.name);
  await field(page, "Password").fill(ADMIN.password);
  await field(page, "Repeat password").fill(ADMIN.password);
  await page.getByRole("button", { name: "Create admin and sign in" }).click();
  await page.waitForURL((u) => !u.pathname.startsWith("/setup"));
  await assertNoCredentialInJs(admin);

  await page.getByTestId("user-menu").click();
  await page.getByRole("menuitem", { name: "Sign out" }).click();
  await page.waitForURL((u) => u.pathname.startsWith("/sign-in"));
  assert.equal((await admin.ctx.cookies(stack.base)).filter((c) => c.httpOnly).length, 0, "sign-out clears the cookie");

  await field(page, "Email").fill(ADMIN.email);
  await page.locator("input[autocomplete=current-password]").fill(ADMIN.password);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.waitForURL((u) => !u.pathname.startsWith("/sign-in"));
  await assertNoCredentialInJs(admin);
});

test("a team, a route with a backend secret and a token, created in the UI", async () => {
  const { page } = admin;
  await page.goto("/teams");
  await page.getByRole("button", { name: "Create team" }).first().click();
  let dialog = page.getByRole("dialog", { name: "Create team" });
  // Escape in the colour picker closes the picker, not the dialog.
  await field(dialog, "Colour").focus();
  const swatch = page.locator('[data-swatch][aria-label="#4c6ef5"]');
  await swatch.waitFor();
  await page.keyboard.press("Escape");
  await swatch.waitFor({ state: "hidden" });
  // A closing dialog would be gone after its 200 ms transition.
  await page.waitForTimeout(600);
  assert.ok(await dialog.isVisible(), "the Create team dialog stays open after Escape in the colour picker");
  // The picker still opens again and sets the colour.
  await field(dialog, "Colour").click();
  await swatch.click();
  assert.equal(await field(dialog, "Colour").inputValue(), "#4c6ef5");
  await field(dialog, "Name").fill("Payments");
  await field(dialog, "Slug").fill("payments");
  await dialog.getByRole("button", { name: "Create team" }).click();
  await dialog.waitFor({ state: "detached" });
  await page.getByText("Payments").first().waitFor();

  await page.goto("/routes");
  await page.getByRole("button", { name: "Create route" }).first().click();
  dialog = page.getByRole("dialog", { name: "Create route" });
  await field(dialog, "Name").fill("echo");
  await pick(page, dialog, "Team", /Payments/);
  await field(dialog, "Path prefix").fill("/echo");
  await field(dialog, "Backend URL").fill(stack.upstream.url);
  await dialog.getByText("API key header").click();
  await field(dialog, "Header").fill("X-Backend-Key");
  await field(dialog, "Key").fill(BACKEND_SECRET);
  await dialog.getByRole("button", { name: "Create route" }).click();
  await dialog.waitFor({ state: "detached" });
  await page.getByText("/echo").first().waitFor();
  assert.ok(!(await page.content()).includes(BACKEND_SECRET), "the backend secret is never shown");

  for (const name of ["e2e-workflow", "e2e-spare"]) {
    await page.goto("/tokens");
    await page.getByRole("button", { name: "Create token" }).first().click();
    dialog = page.getByRole("dialog", { name: "Create token" });
    await field(dialog, "Name").fill(name);
    await pick(page, dialog, "Team", /Payments/);
    await pick(page, dialog, "Scopes", /^echo/);
    await page.keyboard.press("Escape"); // closes the scope dropdown, not the dialog
    await dialog.getByRole("button", { name: /Create token/ }).click();
    const shown = page.getByRole("dialog", { name: "Token created" });
    await shown.getByRole("button", { name: "Copy token" }).click();
    const copied = await page.evaluate(() => navigator.clipboard.readText());
    assert.match(copied, /^\S{20,}$/, "the copied plaintext looks like a token");
    state[name] = copied;
    assert.equal(await shown.getByTestId("token-plaintext").innerText(), copied, "the copy button copies the shown token");
    await shown.getByRole("button", { name: "I have copied it" }).click();
  }
});

test("the copied token calls the gateway, which adds the backend secret", async () => {
  const token = state["e2e-workflow"];
  await eventually("the gateway accepts the new token", async () => (await gatewayCall(token)) === 200, 20_000);
  const last = stack.upstream.seen.at(-1);
  assert.equal(last.headers["x-backend-key"], BACKEND_SECRET, "the upstream got the backend secret");
  assert.equal(last.headers["x-api-key"], undefined, "the client's key is not forwarded");
});

test("the call shows in usage within 15 s", async () => {
  const { page } = admin;
  for (const [name, key] of [["e2e-spare", "spareId"], ["e2e-workflow", "tokenId"]]) {
    await page.goto("/tokens");
    await page.getByText(name, { exact: true }).first().click();
    state[key] = await eventually(`${name}'s id in the URL`, async () => new URL(page.url()).searchParams.get("open"));
  }
  const tokenId = state.tokenId;
  await page.goto(`/usage/tokens/${tokenId}`);
  // The Calls card's hint: "<n> in <range>".
  await eventually(
    "the call appears on the token's usage page",
    async () => {
      await page.reload();
      const hint = page.getByText(/^\d[\d,]* in /).first();
      await hint.waitFor({ timeout: 3_000 });
      return Number((await hint.innerText()).split(" ")[0].replace(/,/g, "")) >= 1;
    },
    15_000,
    1_000,
  );
});

test("revoke in the UI, and the gateway refuses the token", async () => {
  const { page } = admin;
  await page.goto(`/tokens?open=${state.tokenId}`);
  await page.getByRole("button", { name: "Revoke" }).first().click();
  const dialog = page.getByRole("dialog", { name: 'Revoke "e2e-workflow"?' });
  await dialog.getByRole("button", { name: /^Revoke/ }).click();
  await dialog.waitFor({ state: "detached" });
  await eventually("the gateway refuses the revoked token", async () => (await gatewayCall(state["e2e-workflow"])) === 401, 20_000);
});

test("the audit log holds the creation and the revocation", async () => {
  const { page } = admin;
  await page.goto(`/audit?entity_type=token&entity_id=${state.tokenId}`);
  await page.getByRole("button", { name: /: token\.create, details$/ }).first().waitFor();
  await page.getByRole("button", { name: /: token\.revoke, details$/ }).first().waitFor();
  // Only this token's entries are listed.
  const other = page.getByRole("button", { name: /: (team|route)\.\w+, details$/ });
  assert.equal(await other.count(), 0);
});

test("a viewer, invited and accepted in a second browser, sees no create or edit controls, and the server refuses a forced call", async () => {
  const { page } = admin;
  await page.goto("/users");
  await page.getByRole("button", { name: /^Invite/ }).first().click();
  const dialog = page.getByRole("dialog", { name: "Invite someone" });
  await field(dialog, "Email").fill(VIEWER.email);
  await pick(page, dialog, "Team 1", /Payments/);
  await pick(page, dialog, "Role in team 1", "Viewer");
  await dialog.getByRole("button", { name: "Create invitation" }).click();
  const link = (await page.getByTestId("invitation-link").innerText()).trim();
  assert.match(link, /\/accept-invitation\?code=/);
  await page.getByRole("button", { name: "I have copied it" }).click();

  const viewer = await newSession();
  try {
    await viewer.page.goto(link);
    await field(viewer.page, "Your name").fill(VIEWER.name);
    await field(viewer.page, "Password").fill(VIEWER.password);
    const repeat = field(viewer.page, "Repeat password");
    if (await repeat.count()) await repeat.fill(VIEWER.password);
    await viewer.page.getByRole("button", { name: "Create account" }).click();
    await viewer.page.waitForURL((u) => !u.pathname.startsWith("/accept-invitation"));
    await assertNoCredentialInJs(viewer);

    for (const [path, what] of [
      ["/tokens", "e2e-spare"],
      ["/routes", "echo"],
      ["/teams", "Payments"],
    ]) {
      await viewer.page.goto(path);
      await viewer.page.getByText(what).first().waitFor();
      for (const name of [/^Create( |$)/, /^Edit( |$)/, /^Revoke( |$)/, /^Delete( |$)/, /^Rotate( |$)/, /^Invite/]) {
        const found = viewer.page.getByRole("button", { name });
        if (await found.count()) await viewer.page.screenshot({ path: "/tmp/e2edbg/viewer.png" });
        assert.deepEqual(await found.allInnerTexts(), [], `${path}: no ${name} button for a viewer`);
      }
    }

    // A token row's menu (mounted on the first click) offers a viewer only what it may do.
    await viewer.page.goto("/tokens");
    await viewer.page.getByRole("button", { name: "Actions for e2e-spare" }).click();
    await viewer.page.getByRole("menuitem", { name: "Usage" }).waitFor();
    assert.deepEqual(await viewer.page.getByRole("menuitem").allInnerTexts(), ["Details", "Usage"], "a viewer's token menu");
    await viewer.page.keyboard.press("Escape");

    // The server refuses what the UI hides: revoking the spare token, creating a team.
    const revoke = await callFromPage(viewer.page, "keygate.v1.TokenService", "RevokeToken", stringFields({ 1: state.spareId }));
    assert.equal(revoke.status, 7, `RevokeToken as a viewer: PERMISSION_DENIED (got ${JSON.stringify(revoke)})`);
    const create = await callFromPage(viewer.page, "keygate.v1.TeamService", "CreateTeam", stringFields({ 1: "forced", 2: "Forced" }));
    assert.equal(create.status, 7, `CreateTeam as a viewer: PERMISSION_DENIED (got ${JSON.stringify(create)})`);
    // A forged cross-site request (no grpc-web header) is refused even with the cookie.
    const forged = await callFromPage(viewer.page, "keygate.v1.TeamService", "CreateTeam", stringFields({ 1: "forged", 2: "Forged" }), {
      "content-type": "application/grpc-web+proto",
    });
    assert.notEqual(forged.status, 0, "a request without x-grpc-web is refused");
    assert.deepEqual(viewer.problems, [], "no console errors or CSP violations for the viewer");
  } finally {
    await viewer.ctx.close();
  }
  assert.equal(await styleElements(page), 0, "no injected <style> elements");
  assert.deepEqual(admin.problems.filter((p) => !/status of 40[13]/.test(p)), [], "no console errors or CSP violations for the admin");
});

test("every page, light and dark: screenshots, no CSP violation or injected style, axe-core finds no serious violation", async () => {
  mkdirSync(SCREENSHOTS, { recursive: true });
  const failures = [];
  for (const scheme of ["light", "dark"]) {
    const ctx = await browser.newContext({ baseURL: stack.base, viewport: { width: 1400, height: 900 }, colorScheme: scheme });
    // The admin's session, without signing in again.
    await ctx.addCookies(await admin.ctx.cookies(stack.base));
    const page = await ctx.newPage();
    const problems = await watch(page);
    for (const [name, path] of PAGES) {
      const url = path ?? `/usage/tokens/${state.tokenId}`;
      await page.goto(url, { waitUntil: "networkidle" });
      try {
        await page.locator("main").or(page.getByText("Page not found")).first().waitFor();
      } catch (e) {
        await page.screenshot({ path: `${SCREENSHOTS}FAILED-${name}-${scheme}.png` });
        throw new Error(`${url} (${scheme}): no <main> at ${page.url()}: ${e.message}`);
      }
      await page.screenshot({ path: `${SCREENSHOTS}${name}-${scheme}.png` });
      if (await styleElements(page)) problems.push(`${url}: injected <style>`);
      // evaluate() runs through the DevTools protocol, outside the page's CSP.
      const violations = await page.evaluate(async (src) => {
        if (!window.axe) (0, eval)(src);
        const r = await window.axe.run(document, { resultTypes: ["violations"] });
        return r.violations
          .filter((v) => v.impact === "serious" || v.impact === "critical")
          .map((v) => `${v.id} (${v.impact}): ${v.nodes.slice(0, 3).map((n) => n.target.join(" ")).join(", ")}`);
      }, AXE);
      for (const v of violations) problems.push(`${url}: axe ${v}`);
      failures.push(...problems.splice(0).map((p) => `${scheme} ${p}`));
    }
    await ctx.close();
  }
  assert.deepEqual(failures, []);
});
