// Builds the Worker with worker-build, offline: wasm-bindgen-cli at the version pinned in
// Cargo.lock (WASM_BINDGEN_BIN), esbuild and wasm-opt from this folder's npm packages.
//
//   node scripts/build.mjs            -> build/       (what `wrangler deploy` uploads)
//   node scripts/build.mjs --test     -> build-test/  (adds POST /__keygate/vectors)
//   node scripts/build.mjs --no-opt   -> skip wasm-opt
//
// Prints the bundle's size, raw and gzip.
import { spawnSync, execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import zlib from "node:zlib";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const args = process.argv.slice(2);
const test = args.includes("--test");
const outDir = test ? "build-test" : "build";

function which(bin) {
  try {
    return execFileSync("sh", ["-c", `command -v ${bin}`], { encoding: "utf8" }).trim();
  } catch {
    return "";
  }
}
const home = process.env.HOME ?? "/root";
const env = {
  ...process.env,
  WASM_BINDGEN_BIN:
    process.env.WASM_BINDGEN_BIN || which("wasm-bindgen") || path.join(home, ".cargo/bin/wasm-bindgen"),
  ESBUILD_BIN: process.env.ESBUILD_BIN || path.join(root, "node_modules/@esbuild/linux-x64/bin/esbuild"),
  WASM_OPT_BIN: process.env.WASM_OPT_BIN || path.join(root, "node_modules/binaryen/bin/wasm-opt"),
};
for (const k of ["WASM_BINDGEN_BIN", "ESBUILD_BIN", "WASM_OPT_BIN"]) {
  if (!fs.existsSync(env[k])) {
    console.error(`build: ${k}=${env[k]} does not exist (run scripts/ensure-tools.sh, or npm ci here)`);
    process.exit(2);
  }
}
const wb = [ "--release", "--out-dir", outDir ];
if (args.includes("--no-opt")) wb.push("--no-opt");
if (test) wb.push("--features", "vectors");
const r = spawnSync("worker-build", wb, { cwd: root, env, stdio: "inherit" });
if (r.status !== 0) {
  console.error(`build: worker-build failed (exit ${r.status ?? r.signal})`);
  process.exit(1);
}

let raw = 0;
let gz = 0;
for (const f of fs.readdirSync(path.join(root, outDir))) {
  const p = path.join(root, outDir, f);
  if (!fs.statSync(p).isFile()) continue;
  const b = fs.readFileSync(p);
  raw += b.length;
  gz += zlib.gzipSync(b, { level: 9 }).length;
}
console.log(`build: ${outDir}/ ${(raw / 1024).toFixed(1)} KiB raw, ${(gz / 1024).toFixed(1)} KiB gzip`);
