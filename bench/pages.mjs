// The status page's rows of `npm run bench`: each page's p50 over sequential requests,
// signed in, and the D1 round trips it needed (its `Server-Timing: d1;desc="N"`), with
// 1,000 deploy jobs, 300 previews and 5,000 deliveries (GitHub deliveries and
// notifications) in the local D1, beside a /notify c1 p50 of the same Worker.
//
// The data: the apps, the notifications and the GitHub deliveries go in through the
// Worker's own intake (PUT /api/apps, POST /notify, signed POST /github), so they are
// what the Worker writes; the jobs with their steps and the previews, which only the
// queue's flows make, are generated as SQL for the schema in migrations/ and run with
// `wrangler d1 execute --local --persist-to … --file …` while the Worker is stopped,
// then the Worker starts again on that state and is measured.
//
// `node bench/pages.mjs` runs just these rows (building the Worker if it is stale);
// `bench/run.mjs` calls `pagesBench()` and prints them in its table.
import { createHmac, randomUUID, generateKeyPairSync } from "node:crypto";
import { spawnSync } from "node:child_process";
import { writeFileSync, readFileSync, existsSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { ensureTools, buildWorker, toolEnv, root, log } from "../scripts/lib.mjs";
import { startOnWorkerd } from "./runtime.mjs";
import { round, percentile } from "./load.mjs";

export const PAGE_TARGETS = { page_p50_ms_max: 25, page_d1_round_trips_max: 3 };

/** How much data the pages are measured over (the issue's numbers). */
export const PAGE_DATA = { jobs: 1000, previews: 300, deliveries: 5000, apps: 10 };

/** Sequential requests per page, after `WARM` unmeasured ones. */
const REQUESTS = 50;
const WARM = 5;

const ADMIN = "bench-pages-admin-token";
const NOTIFY = "bench-pages-notify-token";
const WEBHOOK = "bench-pages-webhook-secret";
const DAY = 86_400_000;
/** The orchestration workflow the bench starts (its service name). */
const WORKFLOW = "bench-svc";


const appName = (i) => `bench-app-${i}`;
const repoOf = (i) => `bench-org/app-${i}`;
const hex = (n, width = 40) => n.toString(16).padStart(width, "0").slice(-width);
const q = (s) => (s === null || s === undefined ? "NULL" : `'${String(s).replaceAll("'", "''")}'`);

/** An app as PUT /api/apps takes it: a deploy hook nobody calls, and previews. */
const appConfig = (i) => ({
  repository: repoOf(i),
  production_branch: "main",
  environment: "production",
  deploy_on: "push",
  deploy: { type: "deploy_hook", url: "https://hooks.example.com/never-called" },
  preview: { org: "bench", image: `registry.fly.io/app-${i}:{sha}`, region: "ams", internal_port: 8080 },
});

/** Runs `fn` over `items` in `lanes` closed-loop lanes. */
async function lanes(items, n, fn) {
  let next = 0;
  await Promise.all(Array.from({ length: n }, async () => {
    while (next < items.length) await fn(items[next++]);
  }));
}

async function call(url, path, { method = "GET", headers = {}, body } = {}) {
  const r = await fetch(`${url}${path}`, { method, headers, body, redirect: "manual" });
  const text = await r.text();
  return { status: r.status, headers: r.headers, text };
}

/** A signed push to a repository no app watches: recorded, answered 202 Ignored. */
function push(i) {
  const after = hex(0xb0000000 + i);
  return JSON.stringify({
    ref: "refs/heads/main", before: hex(0), after, created: true, deleted: false, forced: false,
    repository: { full_name: `bench-org/unwatched-${i % 13}`, name: `unwatched-${i % 13}`, owner: { login: "bench-org" } },
    pusher: { name: "bench" }, sender: { login: "bench" },
    head_commit: { id: after, message: `Commit ${i}`, timestamp: "2026-01-01T00:00:00Z", author: { name: "Bench", email: "bench@example.com" } },
    commits: [{ id: after, message: `Commit ${i}`, timestamp: "2026-01-01T00:00:00Z", author: { name: "Bench", email: "bench@example.com" } }],
  });
}

/** Through the Worker's intake: the apps, half the deliveries as notifications, half as GitHub deliveries. */
async function intake(url) {
  for (let i = 0; i < PAGE_DATA.apps; i++) {
    const r = await call(url, `/api/apps/${appName(i)}`, {
      method: "PUT",
      headers: { authorization: `Bearer ${ADMIN}`, "content-type": "application/json" },
      body: JSON.stringify(appConfig(i)),
    });
    if (r.status !== 201) throw new Error(`PUT /api/apps/${appName(i)} answered ${r.status}: ${r.text}`);
  }
  const notifications = PAGE_DATA.deliveries / 2;
  const statuses = {};
  const count = (s) => (statuses[s] = (statuses[s] ?? 0) + 1);
  await lanes(Array.from({ length: notifications }, (_, i) => i), 8, async (i) => {
    const r = await call(url, "/notify", {
      method: "POST",
      headers: { authorization: `Bearer ${NOTIFY}`, "content-type": "application/json" },
      body: JSON.stringify({
        deployment: {
          type: i % 5 === 0 ? "pages" : "worker", projectName: appName(i % PAGE_DATA.apps), deploymentId: `bench-page-${i}`,
          branch: "main", commitHash: hex(0xc0000000 + i), commitMessage: `Release ${i}\n\nBody`,
          author: "bench@example.com", environment: "production", isCI: true,
        },
      }),
    });
    count(`notify ${r.status}`);
  });
  await lanes(Array.from({ length: PAGE_DATA.deliveries - notifications }, (_, i) => i), 8, async (i) => {
    const body = push(i);
    const r = await call(url, "/github", {
      method: "POST",
      headers: {
        "content-type": "application/json", "x-github-event": "push", "x-github-delivery": randomUUID(),
        "x-hub-signature-256": `sha256=${createHmac("sha256", WEBHOOK).update(body).digest("hex")}`,
      },
      body,
    });
    count(`github ${r.status}`);
  });
  // A workflow for its page: GitHub is a closed port here, so its steps fail and are
  // retried, which is what a page of a workflow in trouble shows.
  const wf = await call(url, "/api/services", {
    method: "POST",
    headers: { authorization: `Bearer ${ADMIN}`, "content-type": "application/json" },
    body: JSON.stringify({ repositoryName: WORKFLOW, serviceType: "node", owningTeam: "bench-team" }),
  });
  count(`services ${wf.status}`);
  if (statuses["services 202"] !== 1 || statuses["notify 202"] !== notifications || statuses["github 202"] !== PAGE_DATA.deliveries - notifications) {
    throw new Error(`the intake answered ${JSON.stringify(statuses)}`);
  }
}

/**
 * The jobs (each with the five steps of a deploy-hook job), and the previews, as SQL
 * for the schema in migrations/: one job in eight failed and was reverted, one in
 * forty failed with nothing to revert to; every app's newest job is finalized.
 */
export function seedSql(now = Date.now()) {
  const lines = [];
  const steps = ["create_deployment", "trigger", "await_result", "verify_health", "finalize"];
  const jobs = [];
  for (let i = 0; i < PAGE_DATA.jobs; i++) {
    const app = i % PAGE_DATA.apps;
    const created = now - (PAGE_DATA.jobs - i) * 37 * 60_000;
    const newest = i >= PAGE_DATA.jobs - PAGE_DATA.apps;
    const status = newest ? "finalized" : i % 40 === 7 ? "failed" : i % 8 === 3 ? "reverted" : "finalized";
    const sha = hex(0xa0000000 + i);
    const commits = JSON.stringify([{ id: sha, subject: `Change ${i} of ${appName(app)}`, author: "Bench Author", timestamp: new Date(created).toISOString() }]);
    const error = status === "finalized" ? null : status === "failed" ? "Trigger deploy: deploy hook answered 422; nothing to revert to" : "Verify health: 503 from the health URL";
    const revert = status === "reverted" ? hex(0xa0000000 + i - PAGE_DATA.apps) : null;
    jobs.push(`(${i + 1}, ${q(appName(app))}, 'production', ${q(sha)}, 'refs/heads/main', 'bench', ${q(commits)}, ${q(status)}, ` +
      `${q(revert)}, ${9000 + i}, ${q(error)}, ${created}, ${created + 90_000}, ${created + 1_000}, ${created + 90_000})`);
    const failAt = status === "failed" ? 1 : status === "reverted" ? 3 : -1;
    steps.forEach((name, position) => {
      const start = created + 1_000 + position * 15_000;
      const state = failAt === -1 ? (name === "await_result" ? "skipped" : "done")
        : position < failAt ? (name === "await_result" ? "skipped" : "done") : position === failAt ? "failed" : "skipped";
      const ran = state === "done" || state === "failed";
      lines.push(`INSERT INTO deploy_steps (job_id, position, name, state, attempts, error, started_at, finished_at, updated_at) VALUES ` +
        `(${i + 1}, ${position}, ${q(name)}, ${q(state)}, ${ran ? (state === "failed" ? 3 : 1) : 0}, ${q(state === "failed" ? error : null)}, ` +
        `${ran ? start : "NULL"}, ${ran ? start + 12_000 : "NULL"}, ${start + 12_000});`);
    });
  }
  for (let k = 0; k < jobs.length; k += 100) {
    lines.unshift(`INSERT INTO deploy_jobs (id, app, environment, sha, git_ref, pusher, commits, status, revert_sha, github_deployment_id, error, created_at, updated_at, started_at, finished_at) VALUES ${jobs.slice(k, k + 100).join(",\n")};`);
  }
  const previews = [];
  for (let i = 0; i < PAGE_DATA.previews; i++) {
    const app = i % PAGE_DATA.apps;
    const pr = 100 + i;
    const created = now - (PAGE_DATA.previews - i) * 2 * 3_600_000;
    const live = i >= PAGE_DATA.previews - 40;
    const status = live ? (i % 9 === 0 ? "failed" : "ready") : "destroyed";
    const fly = `${appName(app)}-pr-${pr}`;
    const head = hex(0xd0000000 + i);
    previews.push(`(${q(appName(app))}, ${q(repoOf(app))}, ${pr}, ${q(`feature-${i}`)}, ${q(head)}, ${q(live ? "live" : "closed")}, 1, 1, ${q(status)}, ` +
      `${q(fly)}, ${q(`https://${fly}.fly.dev`)}, ${q(status === "ready" ? `m-${i}` : null)}, ${q(status === "ready" ? head : null)}, ` +
      `${q(status === "failed" ? "Fly 422: machine create refused" : null)}, ${created}, ${live ? created + 7 * DAY : "NULL"}, ${created}, ${created + 60_000})`);
  }
  for (let k = 0; k < previews.length; k += 100) {
    lines.push(`INSERT INTO previews (app, repository, pr_number, head_ref, head_sha, wanted, revision, done_revision, status, fly_app, url, machine_id, deployed_sha, error, queued_at, expires_at, created_at, updated_at) VALUES ${previews.slice(k, k + 100).join(",\n")};`);
  }
  return `${lines.join("\n")}\n`;
}

function d1File(persistTo, file) {
  const r = spawnSync(
    join(root, "node_modules", ".bin", "wrangler"),
    ["d1", "execute", "DB", "--local", "--persist-to", persistTo, "--file", file],
    { cwd: root, env: toolEnv({ CI: "true" }), encoding: "utf8" },
  );
  if (r.status !== 0) throw new Error(`wrangler d1 execute --file failed:\n${r.stdout}\n${r.stderr}`);
}

/** Signs in through the form with ADMIN_TOKEN; answers the Cookie header to send. */
async function signIn(url) {
  const form = await call(url, "/signin");
  const csrf = /name="csrf"\s+value="([^"]+)"/.exec(form.text)?.[1];
  const fields = new URLSearchParams({ token: ADMIN });
  if (csrf) fields.set("csrf", csrf);
  const r = await call(url, "/signin", {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded", ...(form.headers.get("set-cookie") ? { cookie: form.headers.get("set-cookie").split(";")[0] } : {}) },
    body: fields.toString(),
  });
  const cookies = r.headers.getSetCookie().map((c) => c.split(";")[0]);
  if (r.status !== 303 || cookies.length === 0) throw new Error(`sign-in answered ${r.status} with no cookie: ${r.text.slice(0, 300)}`);
  return cookies.join("; ");
}

/** `d1;desc="N"` and `render;dur=X` of a page's Server-Timing header. */
export function serverTiming(header) {
  const d1 = /(?:^|,)\s*d1;desc="?(\d+)"?/.exec(header ?? "")?.[1];
  const render = /(?:^|,)\s*render;dur=([\d.]+)/.exec(header ?? "")?.[1];
  return { d1: d1 === undefined ? NaN : Number(d1), render_ms: render === undefined ? NaN : Number(render) };
}

/** One page, `REQUESTS` times in a row: p50 and p99 of the whole request, its D1 round trips (the most seen). */
async function measurePage(url, path, cookie) {
  const latencies = [];
  const renders = [];
  let d1 = 0;
  for (let i = 0; i < WARM + REQUESTS; i++) {
    const t0 = performance.now();
    const r = await call(url, path, { headers: { cookie } });
    const ms = performance.now() - t0;
    if (r.status !== 200) throw new Error(`GET ${path} answered ${r.status}: ${r.text.slice(0, 300)}`);
    if (i < WARM) continue;
    latencies.push(ms);
    const timing = serverTiming(r.headers.get("server-timing"));
    d1 = Math.max(d1, timing.d1);
    renders.push(timing.render_ms);
  }
  latencies.sort((a, b) => a - b);
  renders.sort((a, b) => a - b);
  return { path, requests: REQUESTS, p50_ms: round(percentile(latencies, 50)), p99_ms: round(percentile(latencies, 99)), render_p50_ms: round(percentile(renders, 50)), d1_round_trips: d1 };
}

/** 100 POST /notify in a row on the same Worker: the reference the pages stand beside. */
async function notifyC1(url) {
  const latencies = [];
  const run = Date.now().toString(36);
  for (let i = 0; i < 100; i++) {
    const t0 = performance.now();
    const r = await call(url, "/notify", {
      method: "POST",
      headers: { authorization: `Bearer ${NOTIFY}`, "content-type": "application/json" },
      body: JSON.stringify({ deployment: { type: "worker", projectName: "bench-c1", deploymentId: `c1-${run}-${i}`, isCI: true } }),
    });
    if (r.status !== 202) throw new Error(`/notify answered ${r.status}: ${r.text}`);
    latencies.push(performance.now() - t0);
  }
  latencies.sort((a, b) => a - b);
  return round(percentile(latencies, 50));
}

/** The id of the newest seeded job whose index matches `pick` (ids are index + 1). */
function jobId(pick) {
  for (let i = PAGE_DATA.jobs - 1; i >= 0; i--) if (pick(i)) return i + 1;
  throw new Error("no such seeded job");
}

/** The pages over the seeded data: a reverted and a failed job, and the deliveries' second page. */
async function pagesToMeasure(url, cookie) {
  const reverted = jobId((i) => i % 8 === 3 && i % 40 !== 7 && i < PAGE_DATA.jobs - PAGE_DATA.apps);
  const failed = jobId((i) => i % 40 === 7 && i < PAGE_DATA.jobs - PAGE_DATA.apps);
  const pages = [
    ["overview", "/"], ["app", `/apps/${appName(3)}`], ["job reverted", `/jobs/${reverted}`], ["job failed", `/jobs/${failed}`],
    ["previews", "/previews"], ["workflow", `/workflows/${WORKFLOW}`], ["deliveries", "/deliveries"],
  ];
  // The cursor the first page of the deliveries links to.
  const first = await call(url, "/deliveries", { headers: { cookie } });
  const next = /href="(\/deliveries\?[^"]*before=[^"]+)"/.exec(first.text)?.[1];
  if (!next) throw new Error("the deliveries page links to no next page (?before=)");
  pages.push(["deliveries p2", next.replaceAll("&amp;", "&")]);
  return pages;
}

/**
 * Seeds, starts the Worker on the seeded state, signs in and measures every page.
 * `start` is how a Worker is started ({ vars, persistTo } → { url, persistTo, stop }).
 */
export async function pagesBench({ start = startOnWorkerd } = {}) {
  const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048, privateKeyEncoding: { type: "pkcs1", format: "pem" }, publicKeyEncoding: { type: "spki", format: "pem" } });
  const vars = {
    ADMIN_TOKEN: ADMIN, DEPLOY_NOTIFY_TOKEN: NOTIFY, GITHUB_WEBHOOK_SECRET: WEBHOOK, TELEGRAM_PACE: "off",
    // Orchestration against a GitHub that refuses every connection (port 9 on loopback).
    GITHUB_APP_ID: "1", GITHUB_APP_PRIVATE_KEY: privateKey, GITHUB_API_BASE: "http://127.0.0.1:9",
    ORCHESTRATE_OWNER: "bench-org", ORCHESTRATE_INSTALLATION_ID: "1", SERVICE_TEMPLATES: "node=templates/node",
  };
  log(`pages: ${PAGE_DATA.apps} apps, ${PAGE_DATA.deliveries / 2} notifications and ${PAGE_DATA.deliveries / 2} GitHub deliveries through the intake`);
  const first = await start({ vars });
  let persistTo;
  try {
    await intake(first.url);
    persistTo = first.persistTo;
  } finally {
    await first.stop();
  }
  log(`pages: ${PAGE_DATA.jobs} jobs (5 steps each) and ${PAGE_DATA.previews} previews as SQL (wrangler d1 execute --file)`);
  const file = join(persistTo, "seed.sql");
  writeFileSync(file, seedSql());
  d1File(persistTo, file);
  const w = await start({ vars, persistTo });
  try {
    const cookie = await signIn(w.url);
    const rows = [];
    for (const [name, path] of await pagesToMeasure(w.url, cookie)) rows.push({ name, ...(await measurePage(w.url, path, cookie)) });
    const notify_c1_p50_ms = await notifyC1(w.url);
    const ok = rows.every((r) => r.p50_ms <= PAGE_TARGETS.page_p50_ms_max && r.d1_round_trips <= PAGE_TARGETS.page_d1_round_trips_max);
    return { data: PAGE_DATA, pages: rows, notify_c1_p50_ms, targets: PAGE_TARGETS, ok };
  } finally {
    await w.stop();
  }
}

/** The rows as `bench/run.mjs` prints them: `row(name, value, target, ok)`. */
export function pageRows(result, row, notifyC1P50) {
  row("/notify c1 p50, pages' Worker (ms)", result.notify_c1_p50_ms, "(reference)", true);
  if (notifyC1P50 !== undefined) row("/notify c1 p50, this run (ms)", notifyC1P50, "(reference)", true);
  for (const p of result.pages) {
    const name = p.name;
    row(`page ${name} p50 (ms)`, p.p50_ms, `<= ${PAGE_TARGETS.page_p50_ms_max}`, p.p50_ms <= PAGE_TARGETS.page_p50_ms_max);
    row(`page ${name} D1 trips`, p.d1_round_trips, `<= ${PAGE_TARGETS.page_d1_round_trips_max}`, p.d1_round_trips <= PAGE_TARGETS.page_d1_round_trips_max);
  }
}

export const printRow = (name, value, target, ok) =>
  console.log(`${name.padEnd(36)} ${String(value).padStart(10)}   ${target.padEnd(12)} ${ok ? "ok" : "MISSED"}`);

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  ensureTools();
  buildWorker();
  const result = await pagesBench();
  // Alone, the rows are merged into bench/results.json beside the rest of the last run.
  const path = join(root, "bench", "results.json");
  const results = existsSync(path) ? JSON.parse(readFileSync(path, "utf8")) : {};
  results.pages = { when: new Date().toISOString(), ...result };
  writeFileSync(path, `${JSON.stringify(results, null, 2)}\n`);
  console.log(`\n${"measure".padEnd(36)} ${"value".padStart(10)}   ${"target".padEnd(12)}`);
  pageRows(result, printRow);
  console.log("\nwritten to bench/results.json (pages)");
  if (!result.ok) process.exitCode = 1;
}
