// `npm test`: installs what is missing (the build's tools, and Chromium for the browser
// tests), then runs every check and test in order:
// rustfmt, the module-cycle check, clippy (native and wasm32), the native tests, one release build of the
// Worker, the CLI build, its static musl binaries packed for npm (build-cli.mjs), the
// scripts' own tests, and the end-to-end suite on workerd.
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { ensureTools, ensureChromium, buildWorker, run, log, root } from "./lib.mjs";
import { buildCli } from "./build-cli.mjs";

const started = Date.now();
const step = (name, fn) => {
  const t = Date.now();
  log(`${name}…`);
  fn();
  log(`${name}: done in ${((Date.now() - t) / 1000).toFixed(1)} s`);
};

step("tools", () => {
  ensureTools();
  ensureChromium();
});
step("cargo fmt --check", () => run("cargo", ["fmt", "--all", "--", "--check"]));
step("module cycles", () => run(process.execPath, [join("scripts", "check-cycles.mjs")]));
step("cargo clippy", () => run("cargo", ["clippy", "--workspace", "--all-targets", "--locked", "--", "-D", "warnings"]));
step("cargo clippy (wasm32 Worker)", () =>
  run("cargo", ["clippy", "-p", "edge-notifier", "--target", "wasm32-unknown-unknown", "--locked", "--", "-D", "warnings"]));
step("native tests", () => run("cargo", ["test", "--workspace", "--locked"]));
step("worker build", () => buildWorker());
step("notify-deploy build", () => run("cargo", ["build", "-p", "notify-deploy", "--locked"]));
step("notify-deploy npm packages (static binaries, tarballs)", buildCli);
step("script tests", () => {
  const files = readdirSync(join(root, "tests"))
    .filter((f) => f.endsWith(".test.mjs"))
    .map((f) => join("tests", f));
  run(process.execPath, ["--test", ...files]);
});
step("end-to-end tests", () => {
  const files = readdirSync(join(root, "tests", "e2e"))
    .filter((f) => f.endsWith(".test.mjs"))
    .map((f) => join("tests", "e2e", f));
  run(process.execPath, ["--test", "--test-concurrency=1", ...files]);
});
log(`all checks passed in ${((Date.now() - started) / 1000).toFixed(0)} s`);
