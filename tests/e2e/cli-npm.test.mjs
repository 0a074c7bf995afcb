// notify-deploy the way a user installs it: the three npm tarballs `npm run build:cli`
// packs (the launcher and the static binaries), installed offline into a fresh copy of
// tests/sample-hook-project/ whose [build] command runs `npx notify-deploy`, then
// `wrangler deploy --dry-run` against the Worker on workerd and the Telegram fake.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { cpSync, existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fakeTelegram } from "./fakes.mjs";
import { startWorker, tempDir, freePort } from "./worker.mjs";
import { root, toolEnv } from "../../scripts/lib.mjs";
import { installTarballs, packDir, platforms, workspaceVersion } from "../../scripts/build-cli.mjs";

const TOKEN = "e2e-npm-notify-token-0123456789";
const BOT = "123456:e2e-npm-bot-token";
const CHAT = "-1001234567890";
const here = `${process.platform}-${process.arch}`;
const ownPackage = `@edge-notifier/notify-deploy-${here}`;

let tg;
let worker;
let tarballs;
// Nothing may reach a registry: every npm and npx here is pointed at a closed port.
let deadRegistry;

before(async () => {
  tarballs = existsSync(packDir) ? readdirSync(packDir).filter((f) => f.endsWith(".tgz")) : [];
  assert.equal(tarballs.length, 3, `run \`npm run build:cli\` first: ${packDir} holds ${tarballs.join(", ") || "nothing"}`);
  deadRegistry = `http://127.0.0.1:${await freePort()}/`;
  tg = await fakeTelegram({ token: BOT, chatId: CHAT });
  worker = await startWorker({
    vars: { DEPLOY_NOTIFY_TOKEN: TOKEN, TELEGRAM_BOT_TOKEN: BOT, TELEGRAM_CHAT_ID: CHAT, TELEGRAM_API_BASE: tg.base },
  });
});

after(async () => {
  await worker?.stop();
  await tg?.close();
});

/** The environment of a build: no CI variables from whatever runs the suite, no registry. */
function buildEnv(extra = {}) {
  return {
    PATH: toolEnv().PATH,
    HOME: process.env.HOME,
    npm_config_registry: deadRegistry,
    npm_config_update_notifier: "false",
    ...extra,
  };
}

/**
 * A fresh copy of the sample project with the tarballs installed as npm installs them
 * for a user (`npm install --save-optional ./*.tgz`, offline, from an empty cache).
 */
function installedProject() {
  const dir = tempDir("npm-project");
  cpSync(join(root, "tests", "sample-hook-project"), dir, { recursive: true });
  const toml = join(dir, "wrangler.toml");
  const config = readFileSync(toml, "utf8").replace(/^command = .*$/m, 'command = "npx notify-deploy --environment production"');
  assert.match(config, /command = "npx notify-deploy --environment production"/);
  writeFileSync(toml, config);
  installTarballs(dir, { registry: deadRegistry, cache: tempDir("npm-cache"), env: buildEnv() });
  return dir;
}

function deployDryRun(cwd, env) {
  const r = spawnSync(join(root, "node_modules", ".bin", "wrangler"), ["deploy", "--dry-run", "--outdir", tempDir("npm-out")], {
    cwd,
    encoding: "utf8",
    timeout: 120_000,
    env: buildEnv({ CI: "true", WRANGLER_SEND_METRICS: "false", ...env }),
  });
  return { ...r, output: `${r.stdout}${r.stderr}` };
}

const npx = (cwd, args, env = {}) =>
  spawnSync("npx", ["notify-deploy", ...args], { cwd, encoding: "utf8", timeout: 60_000, env: buildEnv(env) });

test("installed from its tarballs, `npx notify-deploy` in the [build] command announces the deployment", async () => {
  const dir = installedProject();
  // npm placed this machine's binary and skipped the other platform's package.
  assert.ok(existsSync(join(dir, "node_modules", ownPackage, "bin", "notify-deploy")));
  for (const p of platforms.filter((p) => p.name !== ownPackage)) {
    assert.ok(!existsSync(join(dir, "node_modules", p.name)), `${p.name} installed on ${here}`);
  }
  // Every package carries the workspace version; the launcher pins its platform packages to it.
  const version = workspaceVersion();
  const launcher = JSON.parse(readFileSync(join(dir, "node_modules", "notify-deploy", "package.json"), "utf8"));
  assert.equal(launcher.version, version);
  assert.deepEqual(launcher.optionalDependencies, Object.fromEntries(platforms.map((p) => [p.name, version]).sort()));
  assert.equal(JSON.parse(readFileSync(join(dir, "node_modules", ownPackage, "package.json"), "utf8")).version, version);
  const r = deployDryRun(dir, {
    NOTIFY_URL: worker.url,
    NOTIFY_TOKEN: TOKEN,
    WORKERS_CI: "1",
    WORKERS_CI_BUILD_UUID: "npm-build-0001",
    WORKERS_CI_BRANCH: "main",
  });
  assert.equal(r.status, 0, r.output);
  assert.match(r.output, /notify-deploy: announced worker sample-hook-app npm-build-0001/);
  const [m] = await tg.waitFor("npm-build-0001");
  assert.ok(m.visible.includes("Project: sample-hook-app"), m.visible);
  assert.ok(m.visible.includes("Environment: 🚀 production"), m.visible);
  assert.ok(m.visible.includes("Branch: main"), m.visible);
});

test("the launcher passes every argument and the exit code through", async () => {
  const dir = installedProject();
  const version = npx(dir, ["--version"]);
  assert.equal(version.status, 0, version.stderr);
  assert.equal(version.stdout, `notify-deploy ${workspaceVersion()}\n`);
  // A bad flag is the CLI's exit 2 under --strict, not the launcher's own 1.
  const bad = npx(dir, ["--strict", "--type", "lambda"]);
  assert.equal(bad.status, 2, bad.stderr);
  assert.equal(bad.stderr, 'notify-deploy: --type must be worker or pages, not "lambda"\n');
  // --strict against a Worker that is down fails the build; without it the build goes on.
  const env = { NOTIFY_URL: `http://127.0.0.1:${await freePort()}`, NOTIFY_TOKEN: TOKEN };
  const down = ["--deployment-id", "npm-down-1", "--timeout", "2"];
  const strict = npx(dir, [...down, "--strict"], env);
  assert.equal(strict.status, 1, strict.stderr);
  assert.match(strict.stderr, /^notify-deploy: could not announce worker sample-hook-app npm-down-1: could not reach 127\.0\.0\.1[^\n]*\n$/);
  const lenient = npx(dir, down, env);
  assert.equal(lenient.status, 0, lenient.stderr);
  assert.match(lenient.stderr, /\(the build goes on; --strict fails it\)\n$/);
  assert.ok(!`${strict.stderr}${lenient.stderr}`.includes(TOKEN));
});

test("without its platform package the launcher says so in one line and the build goes on", async () => {
  const dir = installedProject();
  rmSync(join(dir, "node_modules", ownPackage), { recursive: true, force: true });
  const line = `notify-deploy: not sent: no binary for ${here} (${ownPackage} is not installed; were optional dependencies turned off?)`;
  const r = deployDryRun(dir, { NOTIFY_URL: worker.url, NOTIFY_TOKEN: TOKEN });
  assert.equal(r.status, 0, r.output);
  assert.equal(r.output.split("\n").filter((l) => l.includes("notify-deploy:")).length, 1, r.output);
  assert.ok(r.output.includes(`${line} (the build goes on; --strict fails it)\n`), r.output);
  const strict = npx(dir, ["--strict"]);
  assert.equal(strict.status, 1);
  assert.equal(strict.stderr, `${line}\n`);
});

test("on a platform without a binary the launcher names it in one line and exits 0 (1 with --strict)", () => {
  const dir = installedProject();
  // The launcher as it would start on Linux s390x: npm installed no platform package.
  const s390x = join(tempDir("npm-arch"), "s390x.cjs");
  writeFileSync(s390x, 'Object.defineProperty(process, "arch", { value: "s390x" });\n');
  const launcher = join(dir, "node_modules", "notify-deploy", "bin", "notify-deploy.js");
  const line = "notify-deploy: not sent: no binary for linux-s390x (there are binaries for linux-arm64, linux-x64)";
  const lenient = spawnSync(process.execPath, ["--require", s390x, launcher, "--version"], { cwd: dir, encoding: "utf8", env: buildEnv() });
  assert.equal(lenient.status, 0, lenient.stderr);
  assert.equal(lenient.stdout, "");
  assert.equal(lenient.stderr, `${line} (the build goes on; --strict fails it)\n`);
  const strict = spawnSync(process.execPath, ["--require", s390x, launcher, "--strict"], { cwd: dir, encoding: "utf8", env: buildEnv() });
  assert.equal(strict.status, 1);
  assert.equal(strict.stderr, `${line}\n`);
});

test("the packed binaries are static: no glibc, no interpreter", () => {
  const arch = { "x86_64-unknown-linux-musl": /x86-64/, "aarch64-unknown-linux-musl": /ARM aarch64/ };
  for (const p of platforms) {
    const tgz = tarballs.find((t) => t.startsWith(`${p.name.slice(1).replace("/", "-")}-`));
    assert.ok(tgz, `no tarball for ${p.name}`);
    const out = tempDir("npm-unpack");
    const tar = spawnSync("tar", ["-xzf", join(packDir, tgz), "-C", out], { encoding: "utf8" });
    assert.equal(tar.status, 0, tar.stderr);
    const bin = join(out, "package", "bin", "notify-deploy");
    const file = spawnSync("file", ["-b", bin], { encoding: "utf8" });
    assert.equal(file.status, 0, file.stderr);
    assert.match(file.stdout, /^ELF 64-bit LSB (pie )?executable/, file.stdout);
    assert.match(file.stdout, arch[p.target], file.stdout);
    assert.match(file.stdout, /statically linked|static-pie linked/, file.stdout);
    assert.doesNotMatch(file.stdout, /interpreter|dynamically linked/, file.stdout);
    if (p.name === ownPackage) {
      // ldd names every shared library a dynamic binary needs; a static one has none.
      const ldd = spawnSync("ldd", [bin], { encoding: "utf8" });
      assert.match(`${ldd.stdout}${ldd.stderr}`, /not a dynamic executable|statically linked/);
      assert.doesNotMatch(ldd.stdout, /libc\.so|ld-linux/);
      const run = spawnSync(bin, ["--version"], { encoding: "utf8" });
      assert.equal(run.stdout, `notify-deploy ${workspaceVersion()}\n`, run.stderr);
    }
  }
});

test("the fake saw nothing unexpected and no secret reached the logs", () => {
  assert.deepEqual(tg.violations, []);
  const logs = worker.logs.join("\n");
  for (const secret of [TOKEN, BOT]) assert.ok(!logs.includes(secret), "a secret in the logs");
});
