// Idle CPU of the stack (bench/README.md, "Admin UI"): seeds N tokens with `keygate-bench
// ui-seed`, starts the stack of e2e/stack.mjs on it (release binaries: KEYGATE_BIN_DIR), leaves
// it idle 45 s, then prints each process's utime + stime (clock ticks) over 20 s. With PERF=1
// it also records the gateway for 10 s with `perf record -g` into /tmp/keygate-idle.perf.
// Usage: KEYGATE_BIN_DIR=../target/release node bench/idle.mjs [tokens, default 100000]
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startStack } from "../e2e/stack.mjs";
import { processCpuSecs, seed } from "./stack-tools.mjs";

const n = Number(process.argv[2] ?? 100_000);
const dir = mkdtempSync(join(tmpdir(), "keygate-idle-"));
// No traffic is sent: the routes' backend is never called.
process.env.DATABASE_URL = seed(dir, n, "http://127.0.0.1:9").db_url;
const stack = await startStack();
const ticks = () => stack.procs.map((p) => Math.round(processCpuSecs(p.child.pid) * 100));
try {
  await new Promise((r) => setTimeout(r, 45_000));
  const a = ticks();
  await new Promise((r) => setTimeout(r, 20_000));
  const b = ticks();
  console.log(`${n} tokens, clock ticks in 20 s:`, stack.procs.map((p, i) => `${p.name ?? i}=${b[i] - a[i]}`).join(" "));
  if (process.env.PERF) {
    const gateway = stack.procs[stack.procs.length - 1].child.pid;
    execFileSync("perf", ["record", "-g", "-o", "/tmp/keygate-idle.perf", "-p", String(gateway), "--", "sleep", "10"], { stdio: "inherit" });
  }
} finally {
  await stack.stop();
  rmSync(dir, { recursive: true, force: true });
}
