// The c16 POST→Telegram latency in interleaved rounds. One run of it is mostly noise
// on these 2-core machines: the local queue broker (Miniflare's) works one batch at a
// time and awaits a log call into node after each, so under a saturated workerd
// thread the gaps between batches, not the batches, make the latency. The same build
// measured 269 and 829 ms p50 in two runs a minute apart. So each round starts every
// Worker afresh (new local state, new Telegram fake), runs the same mixed c16 load
// (run.mjs's, after the same warm-up) and waits for its sends; the order rotates from
// round to round, and the rows are the medians over the rounds, and the median of
// each round's ratio to the first variant (the machine's load in that round cancels).
//
// `npm run bench` runs the baseline and this Worker. `npm run bench:rounds` runs the
// same alone; `-- --against <checkout>` adds another checkout's built Worker (its
// build/, migrations/ and wrangler.toml, copied under bench/.against/ since the
// Worker's files must sit below the project root), for a before-and-after of a change
// measured in one sitting; `--rounds N` sets the rounds (default 5).
import { cpSync, existsSync, rmSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { fakeTelegramThread as fakeTelegram } from "./telegram-thread.mjs";
import { startOnWorkerd } from "./runtime.mjs";
import { startMeasured } from "./cpu.mjs";
import { BOT, CHAT, TOKEN, c16Run, c16Delivered, median, round } from "./load.mjs";

export const WEBHOOK_SECRET = "bench-webhook-secret";

/** A Worker of this project's build as the bench runs it: into an unpaced fake. */
export const workerVars = (tg) => ({
  TELEGRAM_PACE: "off",
  DEPLOY_NOTIFY_TOKEN: TOKEN, TELEGRAM_BOT_TOKEN: BOT, TELEGRAM_CHAT_ID: CHAT, TELEGRAM_API_BASE: tg.base,
  GITHUB_WEBHOOK_SECRET: WEBHOOK_SECRET,
});

/** The bare baseline Worker's vars (bench/baseline/worker.js reads no others). */
export const baselineVars = (tg) => ({
  TELEGRAM_API_BASE: tg.base, TELEGRAM_BOT_TOKEN: BOT, TELEGRAM_CHAT_ID: CHAT, GITHUB_WEBHOOK_SECRET: WEBHOOK_SECRET,
});

export const BASELINE = { name: "baseline", config: "bench/baseline/wrangler.toml", vars: baselineVars };
export const WORKER = { name: "worker", config: "wrangler.toml", vars: workerVars };

/** One fresh start of `variant`, its c16 load, and its sends' arrival. */
async function once(variant, label) {
  const tg = await fakeTelegram({ token: BOT, chatId: CHAT });
  const w = await startMeasured(startOnWorkerd, { config: variant.config, vars: variant.vars(tg) });
  try {
    const c16 = await c16Run(w, label);
    const { latency, cpu_with_sends } = await c16Delivered(w, tg, c16);
    const { violations } = await tg.snapshot();
    if (violations.length) throw new Error(`${variant.name}: Telegram fake violations: ${violations.slice(0, 5).join("; ")}`);
    return {
      rps: c16.rps, p99_ms: c16.p99_ms, statuses: c16.statuses,
      telegram_p50_ms: latency.p50_ms, telegram_p99_ms: latency.p99_ms,
      delivered: latency.delivered, expected: latency.expected,
      cpu_ms_per_request: c16.cpu.workerd_ms_per_request,
      cpu_with_sends_ms_per_request: cpu_with_sends.workerd_ms_per_request,
    };
  } finally {
    await w.stop();
    await tg.close();
  }
}

const ratio = (a, b) => Math.round((a / b) * 100) / 100;

/** The medians over the rounds of each round's figures in `runs` over those in `of`. */
function roundRatios(runs, of) {
  const per = (key) => median(runs.map((x, i) => ratio(x[key], of[i][key])));
  return { telegram_p50: per("telegram_p50_ms"), rps: per("rps"), cpu_with_sends: per("cpu_with_sends_ms_per_request") };
}

/**
 * `rounds` rounds of every variant, the order rotating each round; `progress(text)` is
 * told of each run. Answers every run, and per variant the medians and, beside the
 * first variant, the median of the rounds' ratios.
 */
export async function c16Rounds(variants, { rounds = 5, progress = () => {} } = {}) {
  const runs = Object.fromEntries(variants.map((v) => [v.name, []]));
  for (let r = 0; r < rounds; r++) {
    for (let k = 0; k < variants.length; k++) {
      const v = variants[(r + k) % variants.length];
      const run = await once(v, `${v.name}-r${r}`);
      runs[v.name].push(run);
      progress(`round ${r + 1}/${rounds} ${v.name}: POST→Telegram p50 ${run.telegram_p50_ms} ms, ${run.rps} req/s, ${run.cpu_with_sends_ms_per_request} CPU ms/req with sends`);
    }
  }
  const first = runs[variants[0].name];
  const summary = {};
  for (const v of variants) {
    const mine = runs[v.name];
    const med = (key) => round(median(mine.map((x) => x[key])));
    summary[v.name] = {
      rounds: mine.length,
      telegram_p50_ms: med("telegram_p50_ms"),
      telegram_p50_ms_range: [Math.min(...mine.map((x) => x.telegram_p50_ms)), Math.max(...mine.map((x) => x.telegram_p50_ms))],
      rps: med("rps"),
      cpu_with_sends_ms_per_request: Math.round(median(mine.map((x) => x.cpu_with_sends_ms_per_request)) * 1000) / 1000,
      all_delivered: mine.every((x) => x.delivered === x.expected),
      no_errors: mine.every((x) => x.statuses["202"] === 1600 && x.statuses["200"] === 400),
    };
    if (v !== variants[0]) summary[v.name].vs = { of: variants[0].name, ...roundRatios(mine, first) };
  }
  return { rounds, order: variants.map((v) => v.name), summary, runs };
}

/**
 * Whether each variant's rounds pass: every run delivered all its sends with 1,600
 * 202s and 400 200s, and the median p50 of each variant but the first (the baseline,
 * a yardstick) is under `p50Max` (the POST→Telegram target).
 */
export function roundsOk(result, p50Max = Infinity) {
  return Object.fromEntries(Object.entries(result.summary).map(([name, s]) => [
    name, s.all_delivered && s.no_errors && (name === result.order[0] || s.telegram_p50_ms < p50Max),
  ]));
}

/** Prints the rounds' rows through `row(name, value, target, ok)` (run.mjs's table). */
export function roundRows(result, row, { p50Max = Infinity } = {}) {
  const ok = roundsOk(result, p50Max);
  for (const [name, s] of Object.entries(result.summary)) {
    const label = `${result.rounds} rounds: ${name}`;
    const target = name === result.order[0] ? "(machine)" : Number.isFinite(p50Max) ? `< ${p50Max}` : "";
    row(`${label} POST→Telegram p50`, s.telegram_p50_ms, target, ok[name]);
    row(`${label} p50 range, ms`, s.telegram_p50_ms_range.join("–"), "", true);
    row(`${label} c16 req/s`, s.rps, "", true);
    row(`${label} CPU ms/req+sends`, s.cpu_with_sends_ms_per_request, "", true);
    if (s.vs) {
      row(`${label} p50 vs ${s.vs.of}`, `${s.vs.telegram_p50}x`, "(ratio)", true);
      row(`${label} req/s vs ${s.vs.of}`, `${s.vs.rps}x`, "(ratio)", true);
      row(`${label} CPU vs ${s.vs.of}`, `${s.vs.cpu_with_sends}x`, "(ratio)", true);
    }
  }
}

/** `--against <checkout>`: that checkout's built Worker, copied below the project root. */
function against(checkout, root) {
  const from = resolve(checkout);
  for (const f of ["build/worker/shim.mjs", "migrations", "wrangler.toml"]) {
    if (!existsSync(join(from, f))) throw new Error(`--against ${checkout}: no ${f} there (build it first: node scripts/build.mjs)`);
  }
  const to = join(root, "bench", ".against");
  rmSync(to, { recursive: true, force: true });
  for (const f of ["build", "migrations", "wrangler.toml"]) cpSync(join(from, f), join(to, f), { recursive: true });
  return { name: "against", config: "bench/.against/wrangler.toml", vars: workerVars };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({ options: { against: { type: "string" }, rounds: { type: "string", default: "5" } } });
  const rounds = Number(values.rounds);
  if (!Number.isInteger(rounds) || rounds < 1) throw new Error(`--rounds must be a positive whole number, not ${values.rounds}`);
  const { ensureTools, buildWorker, root, log } = await import("../scripts/lib.mjs");
  const { writeFileSync } = await import("node:fs");
  ensureTools();
  buildWorker();
  const variants = [BASELINE, WORKER];
  if (values.against) variants.push(against(values.against, root));
  log(`${rounds} interleaved rounds of the c16 load (2,000 POST /notify, 20% duplicates) into an unpaced fake: ${variants.map((v) => v.name).join(", ")}`);
  const result = await c16Rounds(variants, { rounds, progress: log });
  if (values.against) result.against = resolve(values.against);
  const row = (name, value, target, ok) => console.log(`${name.padEnd(44)} ${String(value).padStart(10)}   ${target.padEnd(12)} ${ok ? "ok" : "MISSED"}`);
  roundRows(result, row);
  if (values.against) {
    const a = result.summary.against;
    const w = result.summary.worker;
    result.worker_vs_against = roundRatios(result.runs.worker, result.runs.against);
    console.log(`\nthis Worker against ${result.against}: POST→Telegram p50 ${w.telegram_p50_ms} vs ${a.telegram_p50_ms} ms (medians); ` +
      `per-round ratios to the baseline ${w.vs.telegram_p50}x vs ${a.vs.telegram_p50}x; to each other ` +
      `${result.worker_vs_against.telegram_p50}x p50, ${result.worker_vs_against.rps}x req/s, ${result.worker_vs_against.cpu_with_sends}x CPU`);
  }
  writeFileSync(join(root, "bench", "rounds-results.json"), `${JSON.stringify(result, null, 2)}\n`);
  console.log("\nwritten to bench/rounds-results.json");
}
