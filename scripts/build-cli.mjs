// `npm run build:cli`: builds notify-deploy as static Linux binaries (musl, x86_64 and
// aarch64), copies them into their npm packages under npm/, stamps the three packages
// with the workspace version and packs them into target/npm/*.tgz. Installs what it
// needs first (rustup targets, Debian's musl-tools and an aarch64 cross linker);
// cargo rebuilds only what changed. Publishing is a separate, manual step (README).
import { spawnSync } from "node:child_process";
import { copyFileSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { ensureAptPackages, ensureRustTarget, log, root, run, toolEnv } from "./lib.mjs";

/** Where the tarballs go. */
export const packDir = join(root, "target", "npm");
export const launcherDir = join(root, "npm", "notify-deploy");

/**
 * One npm package per target. `env` points cargo and the cc crate (ring's C code) at
 * the C compiler and linker for the target, unless the caller set them.
 */
export const platforms = [
  {
    name: "@edge-notifier/notify-deploy-linux-x64",
    target: "x86_64-unknown-linux-musl",
    apt: ["musl-tools"],
    env: { CC_x86_64_unknown_linux_musl: "musl-gcc" },
  },
  {
    name: "@edge-notifier/notify-deploy-linux-arm64",
    target: "aarch64-unknown-linux-musl",
    apt: ["gcc-aarch64-linux-gnu", "libc6-dev-arm64-cross"], // libc headers for ring's C code
    env: {
      CC_aarch64_unknown_linux_musl: "aarch64-linux-gnu-gcc",
      AR_aarch64_unknown_linux_musl: "aarch64-linux-gnu-ar",
      CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER: "aarch64-linux-gnu-gcc",
    },
  },
].map((p) => ({ ...p, dir: join(root, "npm", p.name), binary: join(root, "npm", p.name, "bin", "notify-deploy") }));

/** The version in Cargo.toml's [workspace.package]. */
export function workspaceVersion() {
  const toml = readFileSync(join(root, "Cargo.toml"), "utf8");
  const m = toml.match(/\[workspace\.package\][^[]*?\nversion = "([^"]+)"/);
  if (!m) throw new Error("no version under [workspace.package] in Cargo.toml");
  return m[1];
}

/** Builds the static binaries (release, only notify-deploy) and copies them into npm/. */
export function buildBinaries() {
  ensureAptPackages(["file", ...platforms.flatMap((p) => p.apt)]);
  for (const p of platforms) {
    ensureRustTarget(p.target);
    const env = toolEnv(Object.fromEntries(Object.entries(p.env).filter(([k]) => !process.env[k])));
    log(`building notify-deploy for ${p.target}`);
    run("cargo", ["build", "--release", "--locked", "-p", "notify-deploy", "--target", p.target], { env });
    mkdirSync(join(p.dir, "bin"), { recursive: true });
    copyFileSync(join(root, "target", p.target, "release", "notify-deploy"), p.binary);
    log(`notify-deploy ${p.target}: ${(statSync(p.binary).size / 1024).toFixed(0)} KiB`);
  }
}

/** Writes the workspace version into the three package.json files (only if it changed). */
export function stampVersions(version = workspaceVersion()) {
  const stamp = (dir, edit) => {
    const file = join(dir, "package.json");
    const before = readFileSync(file, "utf8");
    const pkg = JSON.parse(before);
    pkg.version = version;
    edit(pkg);
    const after = `${JSON.stringify(pkg, null, 2)}\n`;
    if (after !== before) writeFileSync(file, after);
  };
  for (const p of platforms) stamp(p.dir, () => {});
  stamp(launcherDir, (pkg) => {
    pkg.optionalDependencies = Object.fromEntries(platforms.map((p) => [p.name, version]).sort());
  });
  return version;
}

/** Packs the three packages into target/npm/; answers the tarballs' paths. */
export function pack() {
  rmSync(packDir, { recursive: true, force: true });
  mkdirSync(packDir, { recursive: true });
  for (const dir of [...platforms.map((p) => p.dir), launcherDir]) {
    run("npm", ["pack", "--silent", "--pack-destination", packDir], { cwd: dir, stdio: ["ignore", "ignore", "inherit"] });
  }
  return readdirSync(packDir).filter((f) => f.endsWith(".tgz")).map((f) => join(packDir, f));
}

/**
 * Installs the packed tarballs into `dir` the way npm installs them for a user,
 * offline, from an empty cache and against `registry` (the tests and the bench pass a
 * closed port: nothing may come from a registry). `npm install --save-optional
 * ./*.tgz`: as optional dependencies, as they reach a user through the launcher's
 * optionalDependencies, so npm itself skips the other platform's package by its
 * os/cpu fields (as a plain dependency it would refuse it: EBADPLATFORM).
 */
export function installTarballs(dir, { registry, cache, env = {} }) {
  for (const t of readdirSync(packDir).filter((f) => f.endsWith(".tgz"))) copyFileSync(join(packDir, t), join(dir, t));
  const r = spawnSync("npm install --offline --no-audit --no-fund --save-optional ./*.tgz", {
    cwd: dir,
    shell: true,
    encoding: "utf8",
    timeout: 120_000,
    env: { ...env, npm_config_registry: registry, npm_config_cache: cache, npm_config_update_notifier: "false" },
  });
  if (r.status !== 0) throw new Error(`npm install ./*.tgz failed in ${dir}:\n${r.stdout}\n${r.stderr}`);
}

/** The whole release build: binaries, versions, tarballs. */
export function buildCli() {
  buildBinaries();
  const version = stampVersions();
  const tarballs = pack();
  log(`notify-deploy ${version} packed: ${tarballs.map((t) => t.slice(root.length + 1)).join(", ")}`);
  return tarballs;
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) buildCli();
