// Runs the built Worker under workerd through `wrangler dev`, with local D1, KV,
// Queues and the /__scheduled trigger, configured through --var.
import { spawn } from "node:child_process";
import { createServer } from "node:net";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { root, toolEnv, migrateLocal } from "../../scripts/lib.mjs";

export function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.on("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

const created = [];
// Scratch directories (local D1/KV state, CLI projects) go when the run ends.
process.on("exit", () => {
  for (const dir of created) rmSync(dir, { recursive: true, force: true });
});

export function tempDir(prefix) {
  const dir = mkdtempSync(join(tmpdir(), `edge-notifier-${prefix}-`));
  created.push(dir);
  return dir;
}

/**
 * Starts the Worker; resolves once /health answers. `config` picks another
 * wrangler.toml (relative to the project root).
 */
export async function startWorker({ vars = {}, persistTo, config = "wrangler.toml" } = {}) {
  persistTo ??= tempDir("state");
  migrateLocal(persistTo, { quiet: true, config });
  const port = await freePort();
  const inspector = await freePort();
  const args = [
    "dev", "-c", config, "--local", "--ip", "127.0.0.1", "--port", String(port),
    "--inspector-port", String(inspector), "--persist-to", persistTo, "--test-scheduled",
    "--show-interactive-dev-session=false", "--log-level", process.env.E2E_LOG_LEVEL ?? "log",
  ];
  for (const [k, v] of Object.entries(vars)) args.push("--var", `${k}:${v}`);
  const child = spawn(join(root, "node_modules", ".bin", "wrangler"), args, {
    cwd: root,
    env: toolEnv({ CI: "true", NO_COLOR: "1" }),
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  });
  const logs = [];
  const collect = (chunk) => logs.push(...chunk.toString().split("\n").filter(Boolean));
  child.stdout.on("data", collect);
  child.stderr.on("data", collect);
  let exited = null;
  child.on("exit", (code) => (exited = code));
  const url = `http://127.0.0.1:${port}`;
  const until = Date.now() + 90_000;
  for (;;) {
    if (exited !== null) throw new Error(`wrangler dev exited with ${exited}:\n${logs.join("\n")}`);
    if (Date.now() > until) throw new Error(`wrangler dev did not start:\n${logs.join("\n")}`);
    try {
      const r = await fetch(`${url}/health`);
      if (r.ok) break;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  return {
    url,
    persistTo,
    logs,
    // Waits until a log line contains `needle` (wrangler's output reaches us
    // asynchronously, after the response that caused it). Answers whether it came.
    async waitForLog(needle, ms = 10_000) {
      const until = Date.now() + ms;
      while (!logs.some((l) => l.includes(needle))) {
        if (Date.now() > until) return false;
        await new Promise((r) => setTimeout(r, 50));
      }
      return true;
    },
    // Runs the cron handler once, as the every-five-minutes trigger would.
    async scheduled() {
      const r = await fetch(`${url}/__scheduled?cron=${encodeURIComponent("*/5 * * * *")}`);
      if (!r.ok) throw new Error(`/__scheduled answered ${r.status}`);
      await r.text();
    },
    async stop() {
      if (exited !== null) return;
      const done = new Promise((r) => child.on("exit", r));
      try {
        process.kill(-child.pid, "SIGTERM");
      } catch {
        return;
      }
      const timer = setTimeout(() => {
        try { process.kill(-child.pid, "SIGKILL"); } catch { /* gone */ }
      }, 5000);
      await done;
      clearTimeout(timer);
    },
  };
}
