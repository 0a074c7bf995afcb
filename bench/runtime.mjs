// The bench runs the built Worker on workerd through Miniflare's API, configured from
// its wrangler.toml (bindings, vars, queue consumer settings) by wrangler's own
// translation, with local D1, KV and Queues persisted under a scratch directory.
//
// Why not `wrangler dev`, as the end-to-end tests do: the CLI puts its own work on the
// path being measured. Measured here (2,000 /notify at c16, CPU seconds per process):
// wrangler's node process used 7.5 s against workerd's 5.7 s, most of it appending
// every log line to its debug log file (a mkdir, an open and an append per line, even
// for lines below --log-level) and proxying the inspector; a bare JavaScript Worker
// doing the same KV + D1 + queue + Telegram work lost the same share. None of that
// exists when the Worker is deployed. Miniflare is the same workerd with the same
// local D1/KV/Queue simulators, without the CLI; `npm run bench` still prints one
// `wrangler dev` run of each Worker for reference.
//
// Miniflare runs on a thread of its own: workerd calls back into its node side (the
// local queue broker awaits a log call there after every batch), and those calls must
// not wait behind the load generator's event loop.
import { Worker, isMainThread, parentPort, workerData } from "node:worker_threads";
import { once } from "node:events";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { root, migrateLocal } from "../scripts/lib.mjs";

async function serve({ config, vars, persistTo }) {
  const { Miniflare, Log, LogLevel } = await import("miniflare");
  const { unstable_getMiniflareWorkerOptions } = await import("wrangler");
  const { workerOptions, main } = unstable_getMiniflareWorkerOptions(join(root, config));
  const mf = new Miniflare({
    ...workerOptions,
    modules: true,
    scriptPath: main,
    // worker-build emits ES modules with a .js extension beside the .wasm.
    modulesRules: [{ type: "ESModule", include: ["**/*.js", "**/*.mjs"] }, ...workerOptions.modulesRules],
    bindings: { ...workerOptions.bindings, ...vars },
    host: "127.0.0.1",
    port: 0,
    // The layout `wrangler d1 migrations apply --persist-to` writes.
    d1Persist: join(persistTo, "v3", "d1"),
    kvPersist: join(persistTo, "v3", "kv"),
    // Miniflare logs every request by a call from workerd into node (a subrequest per
    // request on workerd's one thread); a deployed Worker has no such thing.
    logRequests: false,
    // BENCH_LOG=1 prints the local queue broker's batches (size, time) to see where
    // POST-to-Telegram time goes.
    ...(process.env.BENCH_LOG ? { log: new Log(LogLevel.INFO, { prefix: `mf ${Date.now()}` }) } : {}),
    // The Worker's log lines would flood the bench's output.
    handleRuntimeStdio(stdout, stderr) {
      stdout.resume();
      stderr.resume();
    },
  });
  const url = await mf.ready;
  parentPort.once("message", async () => {
    await mf.dispose();
    parentPort.close();
  });
  parentPort.postMessage({ url: url.origin });
}

if (!isMainThread) await serve(workerData);

/** The state directories this process made, removed at its exit (one listener for all). */
const stateDirs = new Set();

/**
 * Where the local D1 and KV keep their files: in memory (/dev/shm) where there is one.
 * The local D1 is SQLite on this machine's disk; a deployed Worker's D1 is a remote
 * service, so the bench measures the Worker rather than this disk's fsyncs.
 */
function stateDir() {
  const dir = mkdtempSync(join(existsSync("/dev/shm") ? "/dev/shm" : tmpdir(), "edge-notifier-bench-"));
  if (!stateDirs.size) process.on("exit", () => { for (const d of stateDirs) rmSync(d, { recursive: true, force: true }); });
  stateDirs.add(dir);
  return dir;
}

/**
 * Starts the Worker of `config` with `vars` added; resolves to { url, persistTo, stop }.
 * `persistTo` runs it on the local state of an earlier run (the page bench seeds
 * it between two); by default the state is new.
 */
export async function startOnWorkerd({ config = "wrangler.toml", vars = {}, persistTo = stateDir() } = {}) {
  migrateLocal(persistTo, { quiet: true, config });
  const thread = new Worker(new URL(import.meta.url), { workerData: { config, vars, persistTo } });
  const [started] = await Promise.race([
    once(thread, "message"),
    once(thread, "error").then(([e]) => { throw e; }),
  ]);
  return {
    url: started.url,
    persistTo,
    async stop() {
      thread.postMessage("stop");
      await once(thread, "exit");
    },
  };
}
