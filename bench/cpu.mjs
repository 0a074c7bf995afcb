// CPU time of the processes that run a Worker, from /proc/<pid>/stat (user + system,
// all threads). Workers bill CPU time, and the free plan allows 10 ms a request, so
// the bench divides workerd's CPU over a load run by the run's requests.
//
// Only workerd is counted: the bench's own node process (the load generator, the
// Telegram fake's thread, Miniflare's thread) is not, and `wrangler dev`'s node
// process is measured apart. Local D1, KV and Queues are simulated inside the same
// workerd process, so its figure includes them; the baseline Worker pays the same.
import { readFileSync, readdirSync } from "node:fs";
import { spawnSync } from "node:child_process";

const TICKS = Number(spawnSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).stdout.trim()) || 100;

/** { pid, ppid, comm, ms } of every process, or [] where there is no /proc. */
function processes() {
  let pids;
  try {
    pids = readdirSync("/proc").filter((d) => /^\d+$/.test(d));
  } catch {
    return [];
  }
  const out = [];
  for (const pid of pids) {
    let stat;
    try {
      stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    } catch {
      continue; // gone meanwhile
    }
    // "pid (comm) state ppid …": comm may hold spaces and parentheses.
    const open = stat.indexOf("(");
    const close = stat.lastIndexOf(")");
    const fields = stat.slice(close + 2).split(" ");
    // Fields after comm start at field 3 (state); utime is field 14, stime 15.
    out.push({
      pid: Number(pid),
      ppid: Number(fields[1]),
      comm: stat.slice(open + 1, close),
      ms: ((Number(fields[11]) + Number(fields[12])) * 1000) / TICKS,
    });
  }
  return out;
}

/** This process's descendants, each with its CPU milliseconds so far. */
function descendants() {
  const all = processes();
  const mine = new Set([process.pid]);
  // Parents are usually listed before their children; loop until nothing is added.
  for (let grew = true; grew;) {
    grew = false;
    for (const p of all) {
      if (!mine.has(p.pid) && mine.has(p.ppid)) {
        mine.add(p.pid);
        grew = true;
      }
    }
  }
  return all.filter((p) => p.pid !== process.pid && mine.has(p.pid));
}

const isWorkerd = (p) => p.comm.startsWith("workerd");

/**
 * Starts a Worker through `start(opts)` and finds the processes it added below this
 * one: workerd, and any other (wrangler dev's node process, its esbuild). The Worker
 * gets `cpu()` → { workerd_ms, other_ms } of those processes so far.
 */
export async function startMeasured(start, opts) {
  const before = new Set(descendants().map((p) => p.pid));
  const w = await start(opts);
  const added = descendants().filter((p) => !before.has(p.pid)).map((p) => p.pid);
  const pids = new Set(added);
  const workerd = new Set(descendants().filter((p) => pids.has(p.pid) && isWorkerd(p)).map((p) => p.pid));
  if (!workerd.size) throw new Error("no workerd process found below the bench for the Worker just started");
  const cpu = () => {
    let workerd_ms = 0;
    let other_ms = 0;
    for (const p of processes()) {
      if (workerd.has(p.pid)) workerd_ms += p.ms;
      else if (pids.has(p.pid)) other_ms += p.ms;
    }
    return { workerd_ms, other_ms };
  };
  return Object.assign(w, { cpu, pids: { workerd: [...workerd], other: added.filter((p) => !workerd.has(p)) } });
}

const per = (ms, n) => Math.round((ms / n) * 1000) / 1000;

/**
 * Runs `fn` and answers its result with `cpu`: workerd's CPU ms per request over the
 * run (`requests` taken from the result unless given), and the other processes' where
 * there are any (wrangler dev's node).
 */
export async function measured(worker, fn, requests) {
  const a = worker.cpu();
  const result = await fn();
  const b = worker.cpu();
  const n = requests ?? result.requests;
  const cpu = { workerd_ms: Math.round(b.workerd_ms - a.workerd_ms), workerd_ms_per_request: per(b.workerd_ms - a.workerd_ms, n) };
  if (worker.pids.other.length) {
    cpu.other_ms = Math.round(b.other_ms - a.other_ms);
    cpu.other_ms_per_request = per(b.other_ms - a.other_ms, n);
  }
  return { ...result, cpu };
}

/** CPU ms per request from a reading taken before a run (`worker.cpu()`) to now. */
export function cpuSince(worker, before, requests) {
  const now = worker.cpu();
  return { workerd_ms: Math.round(now.workerd_ms - before.workerd_ms), workerd_ms_per_request: per(now.workerd_ms - before.workerd_ms, requests) };
}
