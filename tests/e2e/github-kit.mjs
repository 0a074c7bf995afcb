// What the GitHub-facing end-to-end suites share: the real fixtures, a GitHub App key
// pair as GitHub hands it out, signed webhook deliveries, the admin API, and direct
// writes to the local D1 for clocks no test can wait out (hours of TTL, an hour of
// wait).
import { createHmac, randomUUID, generateKeyPairSync } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { spawnSync } from "node:child_process";
import { root, toolEnv } from "../../scripts/lib.mjs";

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
export const sha = (c) => c.repeat(40);
export const fixture = (name) => JSON.parse(readFileSync(join(root, "tests", "fixtures", "github", name), "utf8"));
export const sign = (body, secret) => `sha256=${createHmac("sha256", secret).update(body).digest("hex")}`;

/**
 * The workflow_run fixture as a run GitHub would send now: created now (after any
 * dispatch so far: a deploy's await step takes only runs of its workflow created at
 * or after its dispatch), with the given fields of `workflow_run` replaced
 * (`path`, `head_sha`, `id`, `conclusion`, ...) and optionally another repository.
 */
export function workflowRun({ repository, ...run } = {}) {
  const p = fixture("workflow_run.completed.json");
  Object.assign(p.workflow_run, { created_at: new Date().toISOString(), ...run });
  if (repository) {
    const [owner, name] = repository.split("/");
    Object.assign(p.repository, { full_name: repository, name });
    p.repository.owner.login = owner;
  }
  return p;
}

/** A GitHub App key pair: the private key as GitHub hands it out (PKCS#1 PEM). */
export function appKeyPair() {
  const { privateKey, publicKey } = generateKeyPairSync("rsa", {
    modulusLength: 2048,
    privateKeyEncoding: { type: "pkcs1", format: "pem" },
    publicKeyEncoding: { type: "spki", format: "pem" },
  });
  return { privateKey, publicKey };
}

/**
 * Clients of one Worker (`worker()` is read at each call, so a restarted Worker is
 * followed): `deliver` signs a webhook delivery with `secret`; `admin` calls the
 * admin API with `token`.
 */
export function clients(worker, { secret, token }) {
  async function deliver(event, payload, { id = randomUUID(), secret: key = secret, signature, headers = {} } = {}) {
    const body = typeof payload === "string" ? payload : JSON.stringify(payload);
    const h = { "content-type": "application/json", "x-github-event": event, "x-github-delivery": id, ...headers };
    const sig = signature === undefined ? sign(body, key) : signature;
    if (sig !== null) h["x-hub-signature-256"] = sig;
    const r = await fetch(`${worker().url}/github`, { method: "POST", headers: h, body });
    return { status: r.status, json: JSON.parse(await r.text()), id };
  }
  async function admin(method, path, body, bearer = token) {
    const headers = { "content-type": "application/json" };
    if (bearer) headers.authorization = `Bearer ${bearer}`;
    const r = await fetch(`${worker().url}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    return { status: r.status, json: JSON.parse(await r.text()) };
  }
  /**
   * Delivery `id` once its recorded outcome is final (no longer `queued`): the
   * positive signal to wait for before asserting that it caused nothing.
   */
  async function settled(id, timeoutMs = 20_000) {
    const until = Date.now() + timeoutMs;
    let d;
    while (Date.now() < until) {
      d = (await admin("GET", "/api/deliveries?limit=500")).json.deliveries.find((x) => x.id === id);
      if (d && d.outcome !== "queued") return d;
      await sleep(100);
    }
    throw new Error(`delivery ${id} is ${d?.outcome ?? "not recorded"} after ${timeoutMs} ms`);
  }
  /** Deploy job `id` as the admin API shows it. */
  async function job(id) {
    return (await admin("GET", `/api/jobs/${id}`)).json.job;
  }
  /** The job of app `name` at `commit` once `ready(job)` holds; `what` names the wait. */
  async function jobWhen(name, commit, ready, what, timeoutMs = 25_000) {
    const until = Date.now() + timeoutMs;
    let last;
    while (Date.now() < until) {
      const listed = (await admin("GET", `/api/jobs?app=${name}&limit=50`)).json.jobs.find((j) => j.sha === commit);
      last = listed && (await job(listed.id));
      if (last && ready(last)) return last;
      await sleep(100);
    }
    const seen = JSON.stringify({ status: last?.status, approval: last?.approval });
    throw new Error(`job of ${name} at ${commit.slice(0, 7)} is not ${what}: ${seen}`);
  }
  return { deliver, admin, settled, job, jobWhen };
}

/**
 * The push fixture, moved to `repo` and commit `after`, on top of `before` (the zero
 * sha, the default, makes it a new branch), with `commits`, or one commit saying
 * `message` (then the head commit says it too; default `Release <short sha>`).
 */
export function pushEvent(repo, after, { before = sha("0"), message, commits } = {}) {
  const p = fixture("push.with-new-branch.json");
  const [owner, name] = repo.split("/");
  p.repository.full_name = repo;
  p.repository.name = name;
  p.repository.owner.login = owner;
  p.before = before;
  p.after = after;
  p.created = before === sha("0");
  p.head_commit.id = after;
  if (message !== undefined) p.head_commit.message = message;
  p.commits = commits ?? [{ ...p.commits[0], id: after, message: message ?? `Release ${after.slice(0, 7)}` }];
  return p;
}

/** Runs one SQL statement on a stopped-clock row in the Worker's local D1. */
export function d1Execute(persistTo, sql) {
  const r = spawnSync(
    join(root, "node_modules", ".bin", "wrangler"),
    ["d1", "execute", "DB", "--local", "--persist-to", persistTo, "--command", sql],
    { cwd: root, env: toolEnv({ CI: "true" }), encoding: "utf8" },
  );
  if (r.status !== 0) throw new Error(`wrangler d1 execute failed:\n${r.stderr}`);
}
