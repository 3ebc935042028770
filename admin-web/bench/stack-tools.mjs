// Shared by the UI benchmarks (ui.mjs, idle.mjs): where the binaries are, seeding a database
// with `keygate-bench ui-seed`, and the CPU a running stack (e2e/stack.mjs) has used.
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync, rmSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = resolve(fileURLToPath(new URL(".", import.meta.url)), "../..");

export function binDir() {
  return process.env.KEYGATE_BIN_DIR ? resolve(process.env.KEYGATE_BIN_DIR) : resolve(ROOT, "target/debug");
}

/** A new SQLite database in `dir` with `tokens` tokens (the data set of bench/src/ui_seed.rs),
 * routes pointing at `upstream`, and 20 real keys: `{ db_url, counts, wall_secs, keys }`. */
export function seed(dir, tokens, upstream) {
  const bin = join(binDir(), "keygate-bench");
  if (!existsSync(bin)) throw new Error(`${bin} missing: cargo build --release -p keygate-bench (and KEYGATE_BIN_DIR)`);
  const db = join(dir, "keygate.db");
  const keysOut = join(dir, "traffic-keys.txt");
  const started = Date.now();
  const out = execFileSync(bin, ["ui-seed", "--db", db, "--tokens", String(tokens), "--backend-url", upstream, "--traffic-keys", "20", "--keys-out", keysOut], {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "inherit"],
    maxBuffer: 1 << 24,
  });
  const seeded = JSON.parse(out);
  seeded.wall_secs = (Date.now() - started) / 1000;
  seeded.keys = readFileSync(keysOut, "utf8").split("\n").filter(Boolean);
  rmSync(keysOut);
  return seeded;
}

/** CPU seconds a process has used so far (utime + stime from /proc); 0 once it has exited. */
export function processCpuSecs(pid) {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = f.slice(f.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return 0;
  }
}

/** CPU seconds used so far by the stack's processes. */
export function stackCpuSecs(stack) {
  return stack.procs.reduce((sum, p) => sum + processCpuSecs(p.child.pid), 0);
}
