// Shared set-up for `npm start`, `npm test` and `npm run bench`: installs what is
// missing (wasm target, wasm-bindgen-cli pinned to Cargo.lock, worker-build pinned to
// the `worker` crate, npm packages, Debian's Chromium for the browser tests), builds the Worker incrementally, applies the D1
// migrations locally. Every step is skipped when its result is already there.
import { spawnSync, spawn } from "node:child_process";
import { existsSync, readFileSync, statSync, readdirSync } from "node:fs";
import { homedir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";

export const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const cargoBin = join(process.env.CARGO_HOME ?? join(homedir(), ".cargo"), "bin");

/** The environment every tool runs with: no telemetry, local binaries for worker-build. */
export function toolEnv(extra = {}) {
  return {
    ...process.env,
    PATH: `${cargoBin}:${join(root, "node_modules", ".bin")}:${process.env.PATH}`,
    WRANGLER_SEND_METRICS: "false",
    WASM_BINDGEN_BIN: join(cargoBin, "wasm-bindgen"),
    WASM_OPT_BIN: join(root, "node_modules", ".bin", "wasm-opt"),
    ESBUILD_BIN: join(root, "node_modules", ".bin", "esbuild"),
    ...extra,
  };
}

export function log(msg) {
  process.stderr.write(`\x1b[1m[edge-notifier]\x1b[0m ${msg}\n`);
}

/** Runs a command to completion, inheriting stdio; throws on failure. */
export function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { stdio: "inherit", cwd: root, env: toolEnv(), ...opts });
  if (r.error) throw r.error;
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")} exited with ${r.status ?? r.signal}`);
  return r;
}

/** Runs a command and returns its trimmed stdout, or null if it cannot run. */
function capture(cmd, args) {
  const r = spawnSync(cmd, args, { cwd: root, env: toolEnv(), encoding: "utf8" });
  return r.status === 0 ? r.stdout.trim() : null;
}

/** The version of `name` that Cargo.lock pins. */
export function lockedVersion(name) {
  const lock = readFileSync(join(root, "Cargo.lock"), "utf8");
  const m = lock.match(new RegExp(`\\[\\[package\\]\\]\\nname = "${name}"\\nversion = "([^"]+)"`));
  if (!m) throw new Error(`${name} is not in Cargo.lock`);
  return m[1];
}

function ensureNpm() {
  const marker = join(root, "node_modules", ".package-lock.json");
  const lock = join(root, "package-lock.json");
  if (existsSync(marker) && existsSync(join(root, "node_modules", ".bin", "wrangler")) &&
      statSync(marker).mtimeMs >= statSync(lock).mtimeMs) return;
  log("installing npm packages (npm ci)");
  run("npm", ["ci", "--no-audit", "--no-fund"]);
}

function ensureCargoInstall(crate, bin, version, extra = []) {
  const have = capture(join(cargoBin, bin), ["--version"]);
  if (have && have.split(/\s+/).includes(version)) return;
  log(`installing ${crate} ${version} (a few minutes, once)`);
  run("cargo", ["install", crate, "--version", `=${version}`, ...extra]);
}

/** Adds a rustup target unless it is installed. */
export function ensureRustTarget(target) {
  const targets = capture("rustup", ["target", "list", "--installed"]) ?? "";
  if (targets.split("\n").includes(target)) return;
  log(`adding the ${target} target`);
  run("rustup", ["target", "add", target]);
}

/** Installs the Debian packages that are missing (through sudo when not root). */
export function ensureAptPackages(packages) {
  const missing = packages.filter((p) =>
    capture("dpkg-query", ["-W", "-f=${Status}", p]) !== "install ok installed");
  if (missing.length === 0) return;
  if (!existsSync("/usr/bin/apt-get")) {
    // Not Debian: the tools may be there under other names; the build says if not.
    log(`no apt-get to install ${missing.join(", ")} with; going on with what the machine has`);
    return;
  }
  const env = toolEnv({ DEBIAN_FRONTEND: "noninteractive" });
  const apt = (args) => (process.getuid?.() === 0 ? run("apt-get", args, { env }) : run("sudo", ["apt-get", ...args], { env }));
  log(`installing ${missing.join(", ")} (apt-get)`);
  apt(["update", "-qq"]);
  apt(["install", "-y", "-qq", "--no-install-recommends", ...missing]);
}

/** Where the browser tests and the page bench find Chromium (Debian's `chromium` package). */
export const CHROMIUM = "/usr/bin/chromium";

/**
 * Installs Debian's `chromium` unless it is there: the browser tests drive it
 * through playwright-core, which downloads no browser of its own. With it, a colour
 * emoji font, so the screenshots show the ✅ and ❌ of the pages' Telegram messages.
 */
export function ensureChromium() {
  ensureAptPackages(["chromium", "fonts-noto-color-emoji"]);
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is still missing after installing Debian's chromium`);
}

/** Everything the build and the tests need. */
export function ensureTools() {
  ensureNpm();
  ensureRustTarget("wasm32-unknown-unknown");
  ensureCargoInstall("wasm-bindgen-cli", "wasm-bindgen", lockedVersion("wasm-bindgen"));
  ensureCargoInstall("worker-build", "worker-build", lockedVersion("worker"), ["--locked"]);
}

function newestMtime(path) {
  if (!existsSync(path)) return 0;
  const st = statSync(path);
  if (!st.isDirectory()) return st.mtimeMs;
  let newest = st.mtimeMs;
  for (const entry of readdirSync(path)) newest = Math.max(newest, newestMtime(join(path, entry)));
  return newest;
}

const buildOutputs = ["build/worker/shim.mjs", "build/index_bg.wasm"];

/** Builds the Worker (release, wasm32) unless build/ is newer than every source. */
export function buildWorker({ force = false } = {}) {
  const sources = ["src", "core/src", "Cargo.toml", "core/Cargo.toml", "Cargo.lock", "scripts/build.mjs", "scripts/lib.mjs"];
  const newestSource = Math.max(...sources.map((s) => newestMtime(join(root, s))));
  const outputs = buildOutputs.map((o) => join(root, o));
  if (!force && outputs.every(existsSync) &&
      Math.min(...outputs.map((o) => statSync(o).mtimeMs)) > newestSource) {
    log("worker build is up to date");
    return;
  }
  log("building the worker (worker-build --release)");
  run(join(cargoBin, "worker-build"), ["--release"]);
}

/** Applies the D1 migrations to the local database (optionally under persistTo). */
export function migrateLocal(persistTo, { quiet = false, config } = {}) {
  const args = ["d1", "migrations", "apply", "DB", "--local"];
  if (config) args.push("-c", config);
  if (persistTo) args.push("--persist-to", persistTo);
  const wrangler = join(root, "node_modules", ".bin", "wrangler");
  // CI=true: apply without the interactive confirmation.
  const env = toolEnv({ CI: "true" });
  if (!quiet) return run(wrangler, args, { env });
  const r = spawnSync(wrangler, args, { cwd: root, env, encoding: "utf8" });
  if (r.status !== 0) throw new Error(`migrations failed:\n${r.stdout}\n${r.stderr}`);
}

export { spawn };
