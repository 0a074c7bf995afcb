// `npm run bench`: /notify throughput and latency against the local Worker (workerd
// through wrangler dev, local D1/KV/Queues), POST-to-Telegram latency through the
// queue consumer, /github throughput, workerd's CPU milliseconds per request (beside
// the baseline Worker's, see cpu.mjs), the upload size `wrangler deploy --dry-run`
// reports, and 200-notification bursts into chats that keep Telegram's pace (one group;
// ten chats through routes; see paced.mjs), and the status page's pages over 1,000 jobs,
// 300 previews and 5,000 deliveries (see pages.mjs). Prints a table and writes
// bench/results.json. Targets are checked here, never in tests; CPU has no target.
import { writeFileSync, mkdtempSync, readFileSync } from "node:fs";
import { createHmac, randomUUID } from "node:crypto";
import { spawnSync } from "node:child_process";
import { tmpdir, cpus } from "node:os";
import { join } from "node:path";
import { ensureTools, buildWorker, toolEnv, root, log } from "../scripts/lib.mjs";
import { fakeTelegramThread as fakeTelegram } from "./telegram-thread.mjs";
import { startWorker } from "../tests/e2e/worker.mjs";
import { startOnWorkerd } from "./runtime.mjs";
import { startMeasured, measured } from "./cpu.mjs";
import {
  TOKEN, BOT, CHAT, round, percentile, median, load, paced, deployment, telegramLatency, mixedLoad, c16Run, c16Delivered, strip,
} from "./load.mjs";
import { pacedBurst, burst, spreadRoutes, PACE } from "./paced.mjs";
import { pagesBench, pageRows, PAGE_TARGETS } from "./pages.mjs";
// Today's rows measure the Worker into an unpaced fake (workerVars): no pace, no digests.
import { c16Rounds, roundRows, roundsOk, BASELINE, WORKER, WEBHOOK_SECRET, workerVars, baselineVars } from "./rounds.mjs";

const ADMIN = "bench-admin-token";
/** The paced runs' group chat (TELEGRAM_CHAT_ID) and how many notifications each sends. */
const PACED_GROUP = "-100555";
const PACED_N = 200;

const TARGETS = {
  github_hmac_vs_openssl_max: 1.5,
  c16_rps_min: 300,
  c16_p99_ms_max: 150,
  c1_p50_ms_max: 15,
  telegram_p50_ms_max: 1000,
  gzip_kib_max: 350,
  // The paced runs: delivered / failed / duplicated.
  paced_delivered: PACED_N,
  paced_failed_max: 0,
  paced_duplicated_max: 0,
};

function uploadSize() {
  const outdir = mkdtempSync(join(tmpdir(), "edge-notifier-dry-run-"));
  const r = spawnSync(join(root, "node_modules", ".bin", "wrangler"), ["deploy", "--dry-run", "--outdir", outdir], {
    cwd: root, env: toolEnv({ CI: "true", NO_COLOR: "1" }), encoding: "utf8",
  });
  const out = `${r.stdout}\n${r.stderr}`;
  const m = /Total Upload:\s*([\d.]+)\s*KiB\s*\/\s*gzip:\s*([\d.]+)\s*KiB/.exec(out);
  if (!m) throw new Error(`no upload size in wrangler deploy --dry-run output:\n${out}`);
  return { total_kib: Number(m[1]), gzip_kib: Number(m[2]) };
}

/** POST /github, signed; returns the status, latency and the Worker's verify time. */
async function github(url, event, body) {
  const t0 = performance.now();
  const r = await fetch(`${url}/github`, {
    method: "POST",
    headers: {
      "content-type": "application/json", "x-github-event": event, "x-github-delivery": randomUUID(),
      "x-hub-signature-256": `sha256=${createHmac("sha256", WEBHOOK_SECRET).update(body).digest("hex")}`,
    },
    body,
  });
  await r.arrayBuffer();
  const verify = /verify;dur=([\d.]+)/.exec(r.headers.get("server-timing") ?? "")?.[1];
  return { status: r.status, ms: performance.now() - t0, verifyMs: verify === undefined ? NaN : Number(verify) };
}

/** A ~25 KB push (the fixture with more commits) to a repository no app deploys. */
function push25kObject() {
  const p = JSON.parse(readFileSync(join(root, "tests", "fixtures", "github", "push.with-new-branch.json"), "utf8"));
  const c = p.commits[0];
  p.commits = Array.from({ length: 40 }, (_, i) => ({ ...c, id: i.toString(16).padStart(40, "a"), message: `Commit ${i}: ${"x".repeat(200)}` }));
  return p;
}

const push25k = () => JSON.stringify(push25kObject());

let freshPushes = 0;
/** `n` ~25 KB pushes, each with a head commit of its own, so none is a duplicate. */
function freshPushBodies(n) {
  const p = push25kObject();
  return Array.from({ length: n }, () => {
    const sha = (++freshPushes).toString(16).padStart(40, "b");
    return JSON.stringify({ ...p, after: sha, head_commit: { ...p.head_commit, id: sha } });
  });
}

/** Closed loop of signed `event` deliveries at `concurrency`, each under a fresh id. */
async function githubLoad(url, event, bodies, concurrency = 16) {
  const latencies = [];
  const statuses = {};
  let next = 0;
  const started = performance.now();
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < bodies.length) {
      const r = await github(url, event, bodies[next++]);
      latencies.push(r.ms);
      statuses[r.status] = (statuses[r.status] ?? 0) + 1;
    }
  }));
  const seconds = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  return { bytes: bodies[0].length, requests: bodies.length, concurrency, rps: round(bodies.length / seconds), p50_ms: round(percentile(latencies, 50)), p99_ms: round(percentile(latencies, 99)), statuses };
}

const GITHUB_N = 1000;

/**
 * /github under load, with workerd's CPU per request: `fresh`, 1,000 distinct pushes
 * (verify, parse, look up apps, record as ignored); `push`, 1,000 deliveries of one
 * and the same push under fresh ids (all but the first answered "Already processed").
 */
async function githubRuns(w) {
  await githubLoad(w.url, "push", freshPushBodies(50), 4);
  const distinct = freshPushBodies(GITHUB_N);
  const fresh = await measured(w, () => githubLoad(w.url, "push", distinct));
  const repeated = Array(GITHUB_N).fill(push25k());
  const push = await measured(w, () => githubLoad(w.url, "push", repeated));
  return { fresh, push };
}

async function githubBench(w) {
  const { fresh, push } = await githubRuns(w);
  const { url } = w;

  const hmac = {};
  for (const mib of [5, 25]) {
    const payload = JSON.stringify({ zen: "x".repeat(mib * 1024 * 1024 - 64), hook_id: 1 });
    const worker = [];
    const total = [];
    for (let i = 0; i < 5; i++) {
      const r = await github(url, "ping", payload);
      if (r.status !== 200) throw new Error(`signed ${mib} MiB ping answered ${r.status}`);
      worker.push(r.verifyMs);
      total.push(r.ms);
    }
    const buf = Buffer.from(payload);
    const native = [];
    for (let i = 0; i < 5; i++) {
      const t0 = performance.now();
      createHmac("sha256", WEBHOOK_SECRET).update(buf).digest();
      native.push(performance.now() - t0);
    }
    hmac[`${mib}MiB`] = {
      bytes: buf.length,
      worker_verify_ms: round(median(worker)),
      request_ms: round(median(total)),
      openssl_ms: round(median(native)),
      ratio: round(median(worker) / median(native)),
    };
  }
  return { fresh, push, hmac };
}

/**
 * The same loads against the least a /notify and a /github can do here
 * (bench/baseline); `withGithub` adds the /github runs.
 */
async function baseline(start, { withGithub = false } = {}) {
  const tg = await fakeTelegram({ token: BOT, chatId: CHAT });
  const w = await startMeasured(start, {
    config: "bench/baseline/wrangler.toml",
    vars: baselineVars(tg),
  });
  try {
    const c16 = await c16Run(w, "base");
    const { latency, cpu_with_sends } = await c16Delivered(w, tg, c16);
    const github = withGithub ? await githubRuns(w) : undefined;
    return { ...strip(c16), cpu_with_sends, post_to_telegram: latency, github };
  } finally {
    await w.stop();
    await tg.close();
  }
}

/** For reference only: the same c16 runs through the `wrangler dev` CLI (see runtime.mjs). */
async function throughWranglerDev() {
  const base = await baseline(startWorker);
  const tg = await fakeTelegram({ token: BOT, chatId: CHAT });
  const w = await startMeasured(startWorker, { vars: workerVars(tg) });
  try {
    const c16 = await c16Run(w, "dev");
    const { latency, cpu_with_sends } = await c16Delivered(w, tg, c16);
    return { baseline_c16: base, notify_c16: { ...strip(c16), cpu_with_sends }, post_to_telegram_c16: latency };
  } finally {
    await w.stop();
    await tg.close();
  }
}

ensureTools();
buildWorker();
log("baseline: a bare KV + D1 + queue Worker on workerd, 2,000 /notify at concurrency 16; 1,000 fresh and 1,000 repeated signed /github pushes");
const base = await baseline(startOnWorkerd, { withGithub: true });
const tg = await fakeTelegram({ token: BOT, chatId: CHAT });
const worker = await startMeasured(startOnWorkerd, { vars: workerVars(tg) });
let c16, tgC16, paced300, tgPaced, c1, tgC1, gh;
try {
  log("2,000 POST /notify at concurrency 16, 20% duplicates (after 50 to warm up)");
  c16 = await c16Run(worker, "worker");
  const delivered = await c16Delivered(worker, tg, c16);
  tgC16 = delivered.latency;
  c16 = { ...strip(c16), cpu_with_sends: delivered.cpu_with_sends };

  log(`2,000 POST /notify sent at a steady ${TARGETS.c16_rps_min}/s (the target throughput), 20% duplicates`);
  paced300 = await paced(worker.url, mixedLoad(`paced-${Date.now().toString(36)}`), TARGETS.c16_rps_min);
  tgPaced = await telegramLatency(tg, paced300.sentAt);

  log("200 POST /notify at concurrency 1");
  const run = Date.now().toString(36);
  c1 = await load(worker.url, Array.from({ length: 200 }, (_, i) => deployment(`c1-${run}-${i}`, i)), 1);
  tgC1 = await telegramLatency(tg, c1.sentAt);

  log("/github: 1,000 fresh and 1,000 repeated signed 25 KB pushes at concurrency 16; HMAC of 5 and 25 MiB bodies");
  gh = await githubBench(worker);
  const { violations } = await tg.snapshot();
  if (violations.length) console.log(`Telegram fake violations: ${violations.slice(0, 5).join("; ")}`);
} finally {
  await worker.stop();
  await tg.close();
}

log("for reference: the baseline and the Worker at concurrency 16 through wrangler dev");
const dev = await throughWranglerDev();

log("upload size (wrangler deploy --dry-run)");
const size = uploadSize();

const pacedTokens = { notify: TOKEN, admin: ADMIN, bot: BOT, webhook: WEBHOOK_SECRET };
log(`${PACED_N} notifications into one group chat through a paced fake (${PACE.perMinute} a minute, ${PACE.perSecond} a second)`);
const pacedGroup = await pacedBurst({
  tokens: pacedTokens, defaultChat: PACED_GROUP, expectedChat: () => PACED_GROUP,
  items: burst("group", PACED_N, (i) => `bench-g${i % 4}`),
});
log(`the same spread over 10 chats: 10 routes, project bench-p<k> to chat ${PACED_GROUP}<k>, ${PACED_N / 10} notifications each`);
const routes = spreadRoutes(10);
const pacedSpread = await pacedBurst({
  tokens: pacedTokens, defaultChat: PACED_GROUP, routes,
  chats: routes.map((r) => r.definition.destinations[0].chat_id),
  expectedChat: (it) => `${PACED_GROUP}${it.project.slice("bench-p".length)}`,
  items: burst("spread", PACED_N, (i) => `bench-p${i % 10}`),
});

log("pages: each page's p50 over 50 sequential requests and its D1 round trips, signed in, over 1,000 jobs, 300 previews and 5,000 deliveries");
const pages = await pagesBench();

const ROUNDS = 5;
log(`${ROUNDS} interleaved rounds of the c16 load, each Worker started afresh, the order rotating: the baseline and the Worker (one run's POST→Telegram p50 is mostly noise; see rounds.mjs)`);
const rounds = await c16Rounds([BASELINE, WORKER], { rounds: ROUNDS, progress: log });

{
  const results = {
    when: new Date().toISOString(),
    machine: { cpus: cpus().length, model: cpus()[0]?.model, node: process.version },
    baseline_c16: base,
    notify_c16: c16,
    notify_c1: { ...c1, sentAt: undefined },
    post_to_telegram_c16: tgC16,
    post_to_telegram_c1: tgC1,
    notify_paced: { ...paced300, sentAt: undefined },
    post_to_telegram_paced: tgPaced,
    github: gh,
    upload: size,
    through_wrangler_dev: dev,
    paced_one_group: pacedGroup,
    paced_ten_chats: pacedSpread,
    pages,
    c16_rounds: rounds,
    targets: { ...TARGETS, ...PAGE_TARGETS },
  };
  const ratio = (a, b) => Math.round((a / b) * 100) / 100;
  const cpuPair = (w, b) => ({ worker: w.workerd_ms_per_request, baseline: b.workerd_ms_per_request, ratio: ratio(w.workerd_ms_per_request, b.workerd_ms_per_request) });
  // Throughput as a ratio to the baseline of this same run (the machine's load cancels
  // out), and workerd's CPU ms per request beside the baseline's (Workers bill CPU
  // time; the free plan allows 10 ms a request). No target: read, not checked.
  results.vs_baseline = {
    notify_c16_rps: ratio(c16.rps, base.rps),
    github_fresh_rps: ratio(gh.fresh.rps, base.github.fresh.rps),
    github_repeated_rps: ratio(gh.push.rps, base.github.push.rps),
    cpu_ms_per_request: {
      notify_c16: cpuPair(c16.cpu, base.cpu),
      notify_c16_with_sends: cpuPair(c16.cpu_with_sends, base.cpu_with_sends),
      github_fresh: cpuPair(gh.fresh.cpu, base.github.fresh.cpu),
      github_repeated: cpuPair(gh.push.cpu, base.github.push.cpu),
      wrangler_dev_notify_c16: {
        ...cpuPair(dev.notify_c16.cpu, dev.baseline_c16.cpu),
        wrangler_node_worker: dev.notify_c16.cpu.other_ms_per_request,
        wrangler_node_baseline: dev.baseline_c16.cpu.other_ms_per_request,
      },
    },
  };
  results.checks = {
    c16_rps: c16.rps >= TARGETS.c16_rps_min,
    c16_p99: c16.p99_ms <= TARGETS.c16_p99_ms_max,
    c1_p50: c1.p50_ms <= TARGETS.c1_p50_ms_max,
    telegram_p50: tgC1.p50_ms < TARGETS.telegram_p50_ms_max && tgC16.p50_ms < TARGETS.telegram_p50_ms_max,
    gzip: size.gzip_kib <= TARGETS.gzip_kib_max,
    github_hmac: Object.values(gh.hmac).every((h) => h.ratio <= TARGETS.github_hmac_vs_openssl_max),
    all_delivered: tgC16.delivered === tgC16.expected && tgC1.delivered === tgC1.expected &&
      tgPaced.delivered === tgPaced.expected,
    no_errors: Object.keys(c16.statuses).every((s) => s === "202" || s === "200") &&
      c16.statuses["202"] === 1600 && c16.statuses["200"] === 400,
    c16_rounds: Object.values(roundsOk(rounds, TARGETS.telegram_p50_ms_max)).every(Boolean),
    paced_one_group: pacedGroup.ok,
    paced_ten_chats: pacedSpread.ok,
    pages: pages.ok,
  };
  writeFileSync(join(root, "bench", "results.json"), `${JSON.stringify(results, null, 2)}\n`);
  const row = (name, value, target, ok) => console.log(`${name.padEnd(36)} ${String(value).padStart(10)}   ${target.padEnd(12)} ${ok ? "ok" : "MISSED"}`);
  console.log(`\n${"measure".padEnd(36)} ${"value".padStart(10)}   ${"target".padEnd(12)}`);
  row("baseline c16 throughput (req/s)", base.rps, "(machine)", true);
  row("baseline c16 p99 (ms)", base.p99_ms, "(machine)", true);
  row("baseline POST→Telegram c16 p50 (ms)", base.post_to_telegram.p50_ms, "(machine)", true);
  row("/notify c16 throughput (req/s)", c16.rps, `>= ${TARGETS.c16_rps_min}`, results.checks.c16_rps);
  row("/notify c16 p50 (ms)", c16.p50_ms, "", true);
  row("/notify c16 p99 (ms)", c16.p99_ms, `<= ${TARGETS.c16_p99_ms_max}`, results.checks.c16_p99);
  row("/notify c16 statuses", JSON.stringify(c16.statuses), "1600/400", results.checks.no_errors);
  row("/notify c1 throughput (req/s)", c1.rps, "", true);
  row("/notify c1 p50 (ms)", c1.p50_ms, `<= ${TARGETS.c1_p50_ms_max}`, results.checks.c1_p50);
  row("/notify c1 p99 (ms)", c1.p99_ms, "", true);
  row("POST→Telegram c16 p50 (ms)", tgC16.p50_ms, `< ${TARGETS.telegram_p50_ms_max}`, tgC16.p50_ms < TARGETS.telegram_p50_ms_max);
  row("POST→Telegram c16 p99 (ms)", tgC16.p99_ms, "", true);
  roundRows(rounds, row, { p50Max: TARGETS.telegram_p50_ms_max });
  row(`/notify at ${TARGETS.c16_rps_min}/s statuses`, JSON.stringify(paced300.statuses), "", true);
  row(`POST→Telegram at ${TARGETS.c16_rps_min}/s p50 (ms)`, tgPaced.p50_ms, "", true);
  row(`POST→Telegram at ${TARGETS.c16_rps_min}/s p99 (ms)`, tgPaced.p99_ms, "", true);
  row("POST→Telegram c1 p50 (ms)", tgC1.p50_ms, `< ${TARGETS.telegram_p50_ms_max}`, tgC1.p50_ms < TARGETS.telegram_p50_ms_max);
  row("POST→Telegram c1 p99 (ms)", tgC1.p99_ms, "", true);
  row("delivered", `${tgC16.delivered + tgC1.delivered + tgPaced.delivered}/${tgC16.expected + tgC1.expected + tgPaced.expected}`, "all", results.checks.all_delivered);
  const vs = results.vs_baseline;
  row("/notify c16 throughput vs baseline", `${vs.notify_c16_rps}x`, "(ratio)", true);
  row("baseline /github fresh c16 (req/s)", base.github.fresh.rps, "(machine)", true);
  row("/github fresh 25 KB c16 (req/s)", gh.fresh.rps, "", true);
  row("/github fresh c16 vs baseline", `${vs.github_fresh_rps}x`, "(ratio)", true);
  row("/github fresh 25 KB c16 p99 (ms)", gh.fresh.p99_ms, "", true);
  row("/github fresh statuses", JSON.stringify(gh.fresh.statuses), "", true);
  row("baseline /github repeat c16 (req/s)", base.github.push.rps, "(machine)", true);
  row("/github repeat 25 KB c16 (req/s)", gh.push.rps, "", true);
  row("/github repeat c16 vs baseline", `${vs.github_repeated_rps}x`, "(ratio)", true);
  row("/github repeat 25 KB c16 p99 (ms)", gh.push.p99_ms, "", true);
  row("/github repeat statuses", JSON.stringify(gh.push.statuses), "", true);
  // workerd's CPU per request (free plan: 10 ms), beside the baseline's.
  const cpuRows = (name, c) => {
    row(`${name} CPU ms/req (workerd)`, c.worker, "(free: 10)", true);
    row(`baseline ${name} CPU ms/req`, c.baseline, "(machine)", true);
    row(`${name} CPU vs baseline`, `${c.ratio}x`, "(ratio)", true);
  };
  cpuRows("/notify c16", vs.cpu_ms_per_request.notify_c16);
  cpuRows("/notify+sends", vs.cpu_ms_per_request.notify_c16_with_sends);
  cpuRows("/github fresh", vs.cpu_ms_per_request.github_fresh);
  cpuRows("/github repeat", vs.cpu_ms_per_request.github_repeated);
  for (const [k, h] of Object.entries(gh.hmac)) {
    row(`HMAC ${k}: Worker (WebCrypto) ms`, h.worker_verify_ms, "", true);
    row(`HMAC ${k}: OpenSSL (node) ms`, h.openssl_ms, "", true);
    row(`HMAC ${k}: ratio`, h.ratio, `<= ${TARGETS.github_hmac_vs_openssl_max}`, h.ratio <= TARGETS.github_hmac_vs_openssl_max);
    row(`HMAC ${k}: whole request ms`, h.request_ms, "", true);
  }
  row("upload total (KiB)", size.total_kib, "", true);
  row("upload gzip (KiB)", size.gzip_kib, `<= ${TARGETS.gzip_kib_max}`, results.checks.gzip);
  row("wrangler dev: baseline c16 (req/s)", dev.baseline_c16.rps, "(reference)", true);
  row("wrangler dev: baseline POST→Telegram c16", dev.baseline_c16.post_to_telegram.p50_ms, "(reference)", true);
  row("wrangler dev: /notify c16 (req/s)", dev.notify_c16.rps, "(reference)", true);
  row("wrangler dev: /notify c16 p99 (ms)", dev.notify_c16.p99_ms, "(reference)", true);
  row("wrangler dev: POST→Telegram c16 p50", dev.post_to_telegram_c16.p50_ms, "(reference)", true);
  const devCpu = vs.cpu_ms_per_request.wrangler_dev_notify_c16;
  row("wrangler dev: /notify workerd ms/req", devCpu.worker, "(reference)", true);
  row("wrangler dev: base workerd ms/req", devCpu.baseline, "(reference)", true);
  row("wrangler dev: /notify node ms/req", devCpu.wrangler_node_worker, "(reference)", true);
  row("wrangler dev: base node ms/req", devCpu.wrangler_node_baseline, "(reference)", true);
  // The paced runs: delivered / failed / duplicated, the time until the last is in a
  // message, and the sends and edits Telegram accepted beside the most the pace allows.
  const pacedTarget = `${TARGETS.paced_delivered}/${TARGETS.paced_failed_max}/${TARGETS.paced_duplicated_max}`;
  const pacedRows = (name, r) => {
    const value = r.error ? "error" : `${r.delivered}/${r.failed}/${r.duplicated}`;
    row(`${name}: deliv/failed/dup`, value, pacedTarget, r.ok);
    if (!r.error) {
      row(`${name}: last in message (s)`, r.last_in_message_seconds ?? `${r.in_messages} in`, "", true);
      row(`${name}: messages used`, r.messages_used, `(pace: ${r.pace_allows})`, true);
      row(`${name}: 429s answered`, r.answered_429, "", true);
    }
    for (const p of r.problems) console.log(`  ${name}: ${p}`);
  };
  pacedRows("paced 1 group", pacedGroup);
  pacedRows("paced 10 chats", pacedSpread);
  // The status page, beside this run's /notify c1 p50.
  pageRows(pages, row, c1.p50_ms);
  console.log("\nwritten to bench/results.json");
}

// What a build pays to announce itself: the bare notify-deploy binary, the npm
// launcher, npx, and the Node hook they replace (bench/cli.mjs, also `npm run bench:cli`).
log("notify-deploy: bare binary, npm launcher, npx, Node hook (whole-process times)");
const cli = spawnSync(process.execPath, [join(root, "bench", "cli.mjs")], { cwd: root, stdio: "inherit" });
if (cli.status !== 0) {
  console.error(`bench/cli.mjs exited with ${cli.status ?? cli.signal}`);
  process.exitCode = 1;
}
