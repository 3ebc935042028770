// Idle CPU of the stack (bench/README.md, "Admin UI"): seeds N tokens with `keygate-bench
// ui-seed`, starts the stack of e2e/stack.mjs on it (release binaries: KEYGATE_BIN_DIR), leaves
// it idle 45 s, then prints each process's utime + stime (clock ticks) over 20 s. With PERF=1
// it also records the gateway for 10 s with `perf record -g` into /tmp/keygate-idle.perf.
// Usage: KEYGATE_BIN_DIR=../target/release node bench/idle.mjs [tokens, default 100000]
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startStack } from "../e2e/stack.mjs";
const n = process.argv[2] ?? "100000";
const dir = mkdtempSync(join(tmpdir(), "keygate-idle-"));
const out = JSON.parse(execFileSync(process.env.KEYGATE_BIN_DIR + "/keygate-bench", ["ui-seed", "--db", join(dir, "k.db"), "--tokens", n, "--backend-url", "http://127.0.0.1:9", "--traffic-keys", "1", "--keys-out", join(dir, "keys")], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }));
process.env.DATABASE_URL = out.db_url;
const stack = await startStack();
const ticks = (pid) => { const f = readFileSync(`/proc/${pid}/stat`, "utf8"); const x = f.slice(f.lastIndexOf(")") + 2).split(" "); return Number(x[11]) + Number(x[12]); };
try {
  await new Promise((r) => setTimeout(r, 45_000));
  const a = stack.procs.map((p) => ticks(p.child.pid));
  await new Promise((r) => setTimeout(r, 20_000));
  const b = stack.procs.map((p) => ticks(p.child.pid));
  console.log(n, "tokens, ticks in 20 s:", stack.procs.map((p, i) => `${p.name ?? i}=${b[i] - a[i]}`).join(" "), "pids", stack.procs.map((p) => p.child.pid).join(","));
  if (process.env.PERF) {
    const gw = stack.procs[stack.procs.length - 1].child.pid;
    execFileSync("perf", ["record", "-g", "-o", "/tmp/keygate-idle.perf", "-p", String(gw), "--", "sleep", "10"], { stdio: "inherit" });
  }
} finally {
  await stack.stop();
  rmSync(dir, { recursive: true, force: true });
}
