// The /notify loads the bench runs (closed loop at a concurrency, open loop at a rate),
// their bodies, and POST-to-Telegram latency read from the Telegram fake: shared by
// run.mjs and rounds.mjs.
import { measured, cpuSince } from "./cpu.mjs";

export const TOKEN = "bench-notify-token";
export const BOT = "999:bench-bot";
export const CHAT = "-100999";

export function percentile(sorted, p) {
  if (!sorted.length) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

export const round = (x) => Math.round(x * 10) / 10;

/** A request that got no answer (a connection reset), counted under its error code. */
export function failed(statuses, e) {
  const key = `error ${e.cause?.code ?? e.code ?? e.name}`;
  statuses[key] = (statuses[key] ?? 0) + 1;
}

/**
 * One POST /notify, recorded into `into` ({ latencies, statuses, sentAt }); one with
 * no answer is counted in `statuses` (the paced run's open loop can pile up more
 * connections than a busy machine's workerd accepts) rather than ending the bench.
 */
export async function post(url, body, into) {
  const t0 = performance.now();
  const wall = Date.now();
  let r;
  try {
    r = await fetch(`${url}/notify`, {
      method: "POST",
      headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    await r.arrayBuffer();
  } catch (e) {
    failed(into.statuses, e);
    return;
  }
  into.latencies.push(performance.now() - t0);
  into.statuses[r.status] = (into.statuses[r.status] ?? 0) + 1;
  if (r.status === 202) into.sentAt.set(body.deployment.deploymentId, wall);
}

export const record = () => ({ latencies: [], statuses: {}, sentAt: new Map() });

/** Closed loop: `concurrency` lanes, each sending its next body once answered. */
export async function load(url, bodies, concurrency) {
  const rec = record();
  let next = 0;
  const started = performance.now();
  async function lane() {
    while (next < bodies.length) await post(url, bodies[next++], rec);
  }
  await Promise.all(Array.from({ length: concurrency }, lane));
  const seconds = (performance.now() - started) / 1000;
  const latencies = rec.latencies.sort((a, b) => a - b);
  return {
    requests: bodies.length,
    concurrency,
    seconds: round(seconds),
    rps: round(bodies.length / seconds),
    p50_ms: round(percentile(latencies, 50)),
    p99_ms: round(percentile(latencies, 99)),
    statuses: rec.statuses,
    sentAt: rec.sentAt,
  };
}

/**
 * Open loop: `bodies` sent at a steady `rps` whatever the answers' latency (closed-loop
 * lanes measure the most the Worker can take; this measures how a deployment fares
 * at a given rate, here the throughput the targets ask for).
 */
export async function paced(url, bodies, rps) {
  const rec = record();
  const started = performance.now();
  await Promise.all(bodies.map(async (body, i) => {
    const wait = started + (i * 1000) / rps - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    await post(url, body, rec);
  }));
  const latencies = rec.latencies.sort((a, b) => a - b);
  return {
    requests: bodies.length, rps, p50_ms: round(percentile(latencies, 50)), p99_ms: round(percentile(latencies, 99)),
    statuses: rec.statuses, sentAt: rec.sentAt,
  };
}

export function deployment(id, i) {
  return {
    deployment: {
      type: i % 5 === 0 ? "pages" : "worker", projectName: `bench-app-${i % 7}`, deploymentId: id,
      branch: "main", commitHash: "abcdef1234567890", commitMessage: `Release ${id}\n\nBody`,
      author: "bench@example.com", environment: "production", isCI: true,
    },
  };
}

export async function telegramLatency(tg, sentAt, timeoutMs = 120_000) {
  const until = Date.now() + timeoutMs;
  const arrived = new Map();
  while (Date.now() < until) {
    for (const m of (await tg.snapshot()).messages) {
      const id = /Deployment ID:<\/b> <code>([^<]+)<\/code>/.exec(m.text)?.[1];
      if (id && sentAt.has(id) && !arrived.has(id) && m.answered === 200) arrived.set(id, m.at);
    }
    if ([...sentAt.keys()].every((id) => arrived.has(id))) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  const lat = [...arrived].map(([id, at]) => at - sentAt.get(id)).sort((a, b) => a - b);
  return { delivered: arrived.size, expected: sentAt.size, p50_ms: round(percentile(lat, 50)), p99_ms: round(percentile(lat, 99)) };
}

export const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** 2,000 requests in which every fifth repeats an id sent a little earlier. */
export function mixedLoad(prefix) {
  const bodies = [];
  for (let i = 0; i < 2000; i++) {
    const dup = i % 5 === 4;
    bodies.push(deployment(dup ? `${prefix}-${i - 4}` : `${prefix}-${i}`, dup ? i - 4 : i));
  }
  return bodies;
}

/**
 * Warms a Worker up, then runs the mixed c16 load against it, with workerd's CPU per
 * request over the load (`cpu`); `cpuStart` is the reading before it, so the CPU of
 * the queued sends can be added once they have arrived.
 */
export async function c16Run(w, label) {
  const run = `${label}-${Date.now().toString(36)}`;
  await load(w.url, Array.from({ length: 50 }, (_, i) => deployment(`warm-${run}-${i}`, i)), 4);
  const cpuStart = w.cpu();
  return { ...(await measured(w, () => load(w.url, mixedLoad(`c16-${run}`), 16))), cpuStart };
}

/** POST→Telegram latency of a c16 run, and workerd's CPU per request with the sends. */
export async function c16Delivered(w, tg, c16) {
  const latency = await telegramLatency(tg, c16.sentAt);
  return { latency, cpu_with_sends: cpuSince(w, c16.cpuStart, c16.requests) };
}

export const strip = ({ sentAt, cpuStart, ...rest }) => rest;
