// `npm run bench:cli`: what a build pays to announce itself, as whole-process wall
// times (spawn to exit) over several runs, each POSTing /notify to a loopback server
// that answers 202 at once (the Worker's own time is `npm run bench`'s business):
// - the bare static binary;
// - the npm launcher run as `node_modules/.bin/notify-deploy` (what `npx notify-deploy`
//   ends up running: Node starts, resolves the platform package, spawns the binary);
// - `npx notify-deploy`, as the README's [build] command writes it (npx's own start
//   on top);
// - the Node hook it replaces (bench/node-hook.mjs: `node notify-deploy.js`);
// - an empty Node script, for Node's start-up alone.
// The runs are interleaved so that a busy machine weighs on every row alike. Writes
// bench/cli-results.json.
import { spawn, spawnSync } from "node:child_process";
import { createServer } from "node:http";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { root, log } from "../scripts/lib.mjs";
import { buildCli, installTarballs } from "../scripts/build-cli.mjs";

const RUNS = Number(process.env.BENCH_CLI_RUNS ?? 30);
const TOKEN = "bench-cli-token";

function project() {
  const dir = mkdtempSync(join(tmpdir(), "edge-notifier-bench-cli-"));
  writeFileSync(join(dir, "wrangler.toml"), 'name = "bench-cli-app"\nmain = "src/index.js"\n');
  writeFileSync(join(dir, "empty.mjs"), "");
  const git = (...args) => spawnSync("git", args, { cwd: dir, stdio: "ignore" });
  git("init", "-q", "-b", "main");
  git("-c", "user.email=bench@example.com", "-c", "user.name=bench", "commit", "-q", "--allow-empty", "-m", "Bench commit");
  return dir;
}

function fakeNotify() {
  let posts = 0;
  const server = createServer((req, res) => {
    req.resume();
    req.on("end", () => {
      posts++;
      res.writeHead(req.headers.authorization === `Bearer ${TOKEN}` ? 202 : 401, { "content-type": "application/json" });
      res.end('{"success":true,"message":"Notification queued"}');
    });
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () =>
    resolve({ url: `http://127.0.0.1:${server.address().port}`, posts: () => posts, close: () => server.close() })));
}

function timed(cmd, args, cwd, env) {
  return new Promise((resolve, reject) => {
    const start = process.hrtime.bigint();
    const child = spawn(cmd, args, { cwd, env, stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (d) => (stderr += d));
    child.on("error", reject);
    child.on("exit", (code) => {
      const ms = Number(process.hrtime.bigint() - start) / 1e6;
      if (code !== 0) reject(new Error(`${cmd} ${args.join(" ")} exited ${code}: ${stderr}`));
      else resolve({ ms, stderr });
    });
  });
}

const stats = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const at = (p) => s[Math.min(s.length - 1, Math.floor(p * s.length))];
  const round = (x) => Math.round(x * 10) / 10;
  return { runs: s.length, min_ms: round(s[0]), p50_ms: round(at(0.5)), p90_ms: round(at(0.9)) };
};

buildCli();
const dir = project();
const registry = `http://127.0.0.1:9/`;
installTarballs(dir, { registry, cache: join(dir, ".npm-cache"), env: process.env });
const server = await fakeNotify();
const env = {
  PATH: process.env.PATH,
  HOME: process.env.HOME,
  NOTIFY_URL: server.url,
  NOTIFY_TOKEN: TOKEN,
  npm_config_registry: registry,
  npm_config_update_notifier: "false",
};
const binary = join(dir, "node_modules", `@edge-notifier/notify-deploy-${process.platform}-${process.arch}`, "bin", "notify-deploy");
const rows = {
  "bare binary": [binary, []],
  "launcher (node_modules/.bin)": [join(dir, "node_modules", ".bin", "notify-deploy"), []],
  "npx notify-deploy": ["npx", ["notify-deploy"]],
  "Node hook (node notify-deploy.js)": [process.execPath, [join(root, "bench", "node-hook.mjs")]],
  "node, empty script": [process.execPath, [join(dir, "empty.mjs")]],
};
const times = Object.fromEntries(Object.keys(rows).map((k) => [k, []]));
try {
  log(`timing ${Object.keys(rows).length} commands, ${RUNS} interleaved runs each (after 2 warm-up rounds)`);
  for (let i = 0; i < RUNS + 2; i++) {
    for (const [name, [cmd, args]] of Object.entries(rows)) {
      const { ms, stderr } = await timed(cmd, args, dir, env);
      if (name !== "node, empty script" && !stderr.startsWith("notify-deploy: announced worker bench-cli-app")) {
        throw new Error(`${name} did not announce: ${stderr}`);
      }
      if (i >= 2) times[name].push(ms);
    }
  }
} finally {
  server.close();
  rmSync(dir, { recursive: true, force: true });
}

const results = Object.fromEntries(Object.entries(times).map(([k, v]) => [k, stats(v)]));
const p50 = (k) => results[k].p50_ms;
const ratio = (a, b) => Math.round((p50(a) / p50(b)) * 10) / 10;
results.ratios = {
  node_hook_over_bare_binary: ratio("Node hook (node notify-deploy.js)", "bare binary"),
  node_hook_over_launcher: ratio("Node hook (node notify-deploy.js)", "launcher (node_modules/.bin)"),
  node_hook_over_npx: ratio("Node hook (node notify-deploy.js)", "npx notify-deploy"),
  launcher_overhead_ms: Math.round((p50("launcher (node_modules/.bin)") - p50("bare binary")) * 10) / 10,
  npx_overhead_ms: Math.round((p50("npx notify-deploy") - p50("bare binary")) * 10) / 10,
};
writeFileSync(join(root, "bench", "cli-results.json"), `${JSON.stringify(results, null, 2)}\n`);
console.log(`\n${"command".padEnd(36)}${"p50 ms".padStart(9)}${"p90 ms".padStart(9)}${"min ms".padStart(9)}`);
for (const [k, r] of Object.entries(results)) {
  if (k === "ratios") continue;
  console.log(`${k.padEnd(36)}${String(r.p50_ms).padStart(9)}${String(r.p90_ms).padStart(9)}${String(r.min_ms).padStart(9)}`);
}
const q = results.ratios;
console.log(`\nNode hook / bare binary: ${q.node_hook_over_bare_binary}×; / launcher: ${q.node_hook_over_launcher}×; / npx: ${q.node_hook_over_npx}×`);
console.log(`the launcher adds ${q.launcher_overhead_ms} ms to the bare binary, npx ${q.npx_overhead_ms} ms (p50); ${server.posts()} posts answered`);
