// `npm start`: installs what is missing, builds the Worker, applies the D1
// migrations locally and serves the Worker with local D1, KV, Queues and the
// /__scheduled cron trigger. Arguments after `--` go to `wrangler dev`.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { spawn } from "node:child_process";
import { ensureTools, buildWorker, migrateLocal, toolEnv, log, root } from "./lib.mjs";

const passthrough = process.argv.slice(2);
const flag = (name) => {
  const i = passthrough.findIndex((a) => a === name || a.startsWith(`${name}=`));
  if (i < 0) return undefined;
  return passthrough[i].includes("=") ? passthrough[i].split("=")[1] : passthrough[i + 1];
};

ensureTools();
buildWorker();
migrateLocal(flag("--persist-to"));

const args = ["dev", "--local", "--test-scheduled", ...passthrough];
if (!existsSync(join(root, ".dev.vars"))) {
  // Safe local defaults: a random notify token (kept across restarts), no Telegram
  // (notifications are recorded as "not sent") and no Cloudflare API.
  const dir = join(root, ".wrangler");
  const file = join(dir, "local-notify-token");
  mkdirSync(dir, { recursive: true });
  if (!existsSync(file)) writeFileSync(file, randomBytes(24).toString("hex"), { mode: 0o600 });
  const token = readFileSync(file, "utf8").trim();
  args.push("--var", `DEPLOY_NOTIFY_TOKEN:${token}`);
  log("no .dev.vars: using local defaults (Telegram off; copy .dev.vars.example to .dev.vars to configure)");
  log(`local notify token: ${token}`);
}
const child = spawn(join(root, "node_modules", ".bin", "wrangler"), args, { cwd: root, env: toolEnv(), stdio: "inherit" });
for (const sig of ["SIGINT", "SIGTERM"]) process.on(sig, () => child.kill(sig));
child.on("exit", (code) => process.exit(code ?? 0));
