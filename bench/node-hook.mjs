// The kind of build hook notify-deploy replaces, for `npm run bench:cli`: a Node script
// (`node notify-deploy.js`) that reads the project name from ./wrangler.toml and the
// commit from git, then POSTs /notify with fetch. Same inputs, same request, same
// answer handling as the binary, so the two differ only in what runs them.
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";

const git = (args) => {
  try {
    return execFileSync("git", args, { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] });
  } catch {
    return "";
  }
};
const [hash = "", author = "", ...message] = git(["log", "-1", "--format=%H%n%ae%n%B"]).split("\n");
const branch = git(["rev-parse", "--abbrev-ref", "HEAD"]).trim();
const name = readFileSync("wrangler.toml", "utf8").match(/^name\s*=\s*"([^"]+)"/m)?.[1];
const deployment = {
  type: "worker",
  projectName: name,
  deploymentId: `local-${hash.slice(0, 7)}-${Math.floor(Date.now() / 1000)}`,
  environment: "production",
  branch,
  commitHash: hash,
  commitMessage: message.join("\n").trim(),
  author,
  timestamp: new Date().toISOString(),
  isCI: false,
};
try {
  const r = await fetch(new URL("/notify", process.env.NOTIFY_URL), {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${process.env.NOTIFY_TOKEN}` },
    body: JSON.stringify({ deployment }),
    signal: AbortSignal.timeout(5000),
  });
  await r.text();
  process.stderr.write(r.status === 202 ? `notify-deploy: announced worker ${name}\n` : `notify-deploy: the Worker answered ${r.status}\n`);
} catch (e) {
  process.stderr.write(`notify-deploy: could not announce: ${e.message}\n`);
}
