// Regenerates src/gen from the protos and fails when the result differs from what git has
// (a changed proto whose client code was not regenerated and committed).
import { execFileSync } from "node:child_process";

const run = (cmd, args) => execFileSync(cmd, args, { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] });

run("npx", ["--no-install", "buf", "generate"]);
let failed = false;
try {
  run("git", ["diff", "--exit-code", "--stat", "--", "src/gen"]);
} catch (e) {
  process.stderr.write(e.stdout ?? "");
  failed = true;
}
const untracked = run("git", ["ls-files", "--others", "--exclude-standard", "--", "src/gen"]).trim();
if (untracked) {
  process.stderr.write(`untracked generated files:\n${untracked}\n`);
  failed = true;
}
if (failed) {
  process.stderr.write("src/gen is out of date: run `npm run gen` and commit src/gen\n");
  process.exit(1);
}
console.log("src/gen matches the protos");
