// Fails when the JavaScript loaded on first paint (the entry script and what it preloads,
// as named in dist/index.html, plus their static imports) exceeds the budget, gzip-compressed.
import { readFileSync } from "node:fs";
import { gzipSync } from "node:zlib";
import { join } from "node:path";

const BUDGET_KB = 350;
const dist = new URL("../dist/", import.meta.url).pathname;
const html = readFileSync(join(dist, "index.html"), "utf8");
const seen = new Set();
const queue = [...html.matchAll(/(?:src|href)="\/(assets\/[^"]+\.js)"/g)].map((m) => m[1]);
while (queue.length) {
  const f = queue.shift();
  if (seen.has(f)) continue;
  seen.add(f);
  const code = readFileSync(join(dist, f), "utf8");
  // Static imports of other chunks (not dynamic import(): those are the code-split pages).
  for (const m of code.matchAll(/(?:^|[;\n}])\s*import\s*(?:[\w*{}\s,$]+from\s*)?["']\.\/([^"']+\.js)["']/g)) {
    queue.push(`assets/${m[1]}`);
  }
}
let total = 0;
for (const f of seen) {
  const gz = gzipSync(readFileSync(join(dist, f))).length;
  total += gz;
  console.log(`${(gz / 1024).toFixed(1).padStart(7)} kB  ${f}`);
}
console.log(`${(total / 1024).toFixed(1).padStart(7)} kB  initial JavaScript, gzip (budget ${BUDGET_KB} kB)`);
if (total > BUDGET_KB * 1024) {
  console.error(`over budget by ${((total - BUDGET_KB * 1024) / 1024).toFixed(1)} kB`);
  process.exit(1);
}
