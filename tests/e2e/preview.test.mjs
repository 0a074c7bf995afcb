// Preview environments end to end on the real runtime: the pull_request fixtures
// from tests/fixtures/github, signed here, drive the Worker against strict fakes
// of GitHub (App auth, comments, deployments, environments), Fly.io and Telegram.
import { test, before, after, describe } from "node:test";
import assert from "node:assert/strict";
import { fakeTelegram, fakeGithub, fakeFly } from "./fakes.mjs";
import { startWorker } from "./worker.mjs";
import { appKeyPair, clients, d1Execute, fixture, sha, sleep } from "./github-kit.mjs";

const SECRET = "e2e preview webhook secret";
const ADMIN = "e2e-preview-admin";
const APP_ID = "515151";
const { privateKey: APP_KEY, publicKey: APP_PUBLIC } = appKeyPair();
const BOT = "43:e2e-preview-bot";
const CHAT = "-100888";
const FLY_TOKEN = "fly_e2e_preview_token";
const SECRETS_KEY = Buffer.alloc(32, 9).toString("base64");
const SECRET_VALUE = "preview-db-password-Zq8s3cr3t";
const REPO = "Codertocat/Hello-World";
const MARKER = "<!-- edge-notifier:preview:hello -->";

let worker, gh, tg, fly;
const { deliver, admin, settled } = clients(() => worker, { secret: SECRET, token: ADMIN });

/** A pull_request fixture for PR `number` at `head`, optionally changed further. */
function pr(action, number, head, edit = () => {}) {
  const p = fixture(`pull_request.${action === "closed" || action === "reopened" || action === "synchronize" ? action : "opened"}.json`);
  p.action = action;
  p.number = number;
  p.pull_request.number = number;
  p.pull_request.head.sha = head;
  p.pull_request.html_url = `https://github.com/${REPO}/pull/${number}`;
  edit(p);
  return p;
}

async function previews() {
  return (await admin("GET", "/api/apps/hello/previews")).json.previews;
}

/** Waits until PR `number`'s preview, at `head` if given, has settled in one of `statuses`. */
async function waitFor(number, statuses, head, timeoutMs = 20_000) {
  const until = Date.now() + timeoutMs;
  let last;
  while (Date.now() < until) {
    last = (await previews()).find((p) => p.pr_number === number);
    const current = last && (head === undefined || last.head_sha === head);
    if (current && statuses.includes(last.status) && last.done_revision === last.revision) return last;
    await sleep(100);
  }
  throw new Error(`preview #${number} is ${JSON.stringify(last)}, not ${statuses}`);
}

const comment = (number) => {
  const list = gh.commentsOn(REPO, number);
  assert.equal(list.length, 1, `one comment on #${number}`);
  assert.ok(list[0].body.startsWith(MARKER));
  return list[0];
};

/** Waits until PR `number`'s one comment matches `pattern`: the comment is edited after the row settles. */
async function commentSays(number, pattern, timeoutMs = 10_000) {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until && !pattern.test(comment(number).body)) await sleep(100);
  assert.match(comment(number).body, pattern);
}

before(async () => {
  gh = await fakeGithub({ appId: APP_ID, publicKey: APP_PUBLIC });
  tg = await fakeTelegram({ token: BOT, chatId: CHAT });
  fly = await fakeFly({ token: FLY_TOKEN });
  worker = await startWorker({
    vars: {
      GITHUB_WEBHOOK_SECRET: SECRET,
      ADMIN_TOKEN: ADMIN,
      GITHUB_APP_ID: APP_ID,
      GITHUB_APP_PRIVATE_KEY: APP_KEY,
      GITHUB_API_BASE: gh.base,
      TELEGRAM_BOT_TOKEN: BOT,
      TELEGRAM_CHAT_ID: CHAT,
      TELEGRAM_API_BASE: tg.base,
      FLY_API_TOKEN: FLY_TOKEN,
      FLY_API_BASE: fly.base,
      SECRETS_KEY,
      SWEEP_AFTER_SECONDS: "2",
    },
  });
  const app = {
    repository: REPO,
    production_branch: "master",
    environment: "production",
    deploy_on: "push",
    deploy: { type: "deploy_hook", url: "https://hooks.example.com/never-called" },
    preview: {
      org: "acme",
      image: "registry.fly.io/hello:{sha}",
      region: "ams",
      internal_port: 3000,
      env: { NODE_ENV: "preview" },
      max_concurrent: 2,
      skip_drafts: true,
    },
  };
  assert.equal((await admin("PUT", "/api/apps/hello", app)).status, 201);
  assert.equal((await admin("PUT", "/api/apps/hello/secrets/preview/DATABASE_PASSWORD", { value: SECRET_VALUE })).status, 201);
});

after(async () => {
  await worker?.stop();
  await gh?.close();
  await tg?.close();
  await fly?.close();
});

describe("previews", () => {
  test("bad preview settings are refused, naming the field", async () => {
    const bad = await admin("PUT", "/api/apps/other", {
      repository: "o/r", production_branch: "main", environment: "production", deploy_on: "push",
      deploy: { type: "deploy_hook", url: "https://x.example.com" },
      preview: { org: "acme", image: "x:{version}" },
    });
    assert.equal(bad.status, 400);
    assert.match(bad.json.error, /preview\.image/);
  });

  test("an opened pull request gets a preview with its secrets, one comment, a deployment and a quiet message", async () => {
    const r = await deliver("pull_request", pr("opened", 2, sha("a")));
    assert.equal(r.status, 202);
    const p = await waitFor(2, ["ready", "failed"]);
    assert.equal(p.status, "ready", p.error);
    assert.equal(p.url, "https://hello-pr-2.fly.dev");
    assert.ok(fly.apps.has("hello-pr-2"));
    assert.deepEqual(fly.apps.get("hello-pr-2").ips.map((i) => i.type), ["shared_v4", "v6"]);
    const [machine] = fly.machines.get("hello-pr-2");
    assert.equal(machine.region, "ams");
    assert.equal(machine.config.image, `registry.fly.io/hello:${sha("a")}`);
    assert.equal(machine.config.env.DATABASE_PASSWORD, SECRET_VALUE);
    assert.equal(machine.config.env.NODE_ENV, "preview");
    assert.ok(gh.state.issued.has(machine.config.env.GITHUB_TOKEN), "an installation token for the runtime");
    assert.equal(machine.config.services[0].internal_port, 3000);
    assert.deepEqual(machine.config.services[0].ports.map((x) => x.port), [443, 80]);
    assert.ok(fly.requests.some((q) => q.path === `/v1/apps/hello-pr-2/machines/${machine.id}/wait` && q.search.includes("state=started")));

    const c = comment(2);
    assert.match(c.body, /ready/);
    assert.ok(c.body.includes("https://hello-pr-2.fly.dev") && c.body.includes(sha("a").slice(0, 7)));
    const deployments = [...gh.state.deployments.values()].filter((d) => d.environment === "pr-2");
    assert.equal(deployments.length, 1);
    assert.equal(deployments[0].transient, true);
    assert.deepEqual(deployments[0].statuses.map((s) => s.state), ["in_progress", "success"]);
    assert.equal(deployments[0].statuses[1].environment_url, "https://hello-pr-2.fly.dev");
    const [msg] = tg.messages.filter((m) => m.text.includes("#2"));
    assert.equal(msg.body.disable_notification, true, "preview messages are quiet");
  });

  test("synchronize updates the machine and edits the same comment; a duplicate delivery changes nothing", async () => {
    const event = pr("synchronize", 2, sha("b"));
    await deliver("pull_request", event);
    await sleep(200);
    let p;
    const until = Date.now() + 20_000;
    while (Date.now() < until) {
      p = (await previews()).find((x) => x.pr_number === 2);
      if (p.deployed_sha === sha("b") && p.done_revision === p.revision) break;
      await sleep(100);
    }
    assert.equal(p.status, "ready", p.error);
    const machines = fly.machines.get("hello-pr-2");
    assert.equal(machines.length, 1, "updated, not added");
    assert.equal(machines[0].config.image, `registry.fly.io/hello:${sha("b")}`);
    assert.equal(machines[0].config.env.DATABASE_PASSWORD, SECRET_VALUE);
    const c = comment(2);
    assert.ok(c.edits >= 2 && c.body.includes(sha("b").slice(0, 7)));

    const seen = [gh.requests.length, fly.requests.length];
    const again = await deliver("pull_request", event);
    assert.equal(again.status, 202);
    const dup = await deliver("pull_request", event, { id: again.id });
    assert.equal(dup.status, 200, "the same delivery id is recognised");
    await settled(again.id);
    assert.deepEqual([gh.requests.length, fly.requests.length], seen, "no call for a duplicate");
  });

  test("closing tears it down everywhere; reopening brings it back", async () => {
    await deliver("pull_request", pr("closed", 2, sha("b")));
    const p = await waitFor(2, ["destroyed"]);
    assert.equal(p.machine_id, null);
    assert.ok(!fly.apps.has("hello-pr-2"), "the Fly app is deleted");
    assert.ok(gh.state.deletedEnvironments.includes(`${REPO}:pr-2`));
    const latest = [...gh.state.deployments.values()].filter((d) => d.environment === "pr-2").at(-1);
    assert.equal(latest.statuses.at(-1).state, "inactive");
    await commentSays(2, /destroyed[\s\S]*closed/);

    await deliver("pull_request", pr("reopened", 2, sha("b")));
    assert.equal((await waitFor(2, ["ready", "failed"])).status, "ready");
    assert.ok(fly.apps.has("hello-pr-2"));
    await commentSays(2, /ready/);
  });

  test("beyond max_concurrent a preview waits queued and starts when a slot frees", async () => {
    await deliver("pull_request", pr("opened", 3, sha("c")));
    await waitFor(3, ["ready"]);
    await deliver("pull_request", pr("opened", 4, sha("d")));
    const queued = await waitFor(4, ["queued"]);
    assert.equal(queued.queue_ahead, 0);
    assert.ok(!fly.apps.has("hello-pr-4"));
    await commentSays(4, /queued[\s\S]*next in line; at most 2 previews run at once/);

    await deliver("pull_request", pr("closed", 3, sha("c")));
    await waitFor(3, ["destroyed"]);
    assert.equal((await waitFor(4, ["ready", "failed"])).status, "ready");
    assert.ok(fly.apps.has("hello-pr-4"));
    await commentSays(4, /ready/);
  });

  test("a failure midway marks it failed, says why and leaves no Fly app behind", async () => {
    await deliver("pull_request", pr("closed", 4, sha("d")));
    await waitFor(4, ["destroyed"]);
    fly.state.fail.createMachine = { status: 422, error: "image registry.fly.io/hello not found" };
    try {
      await deliver("pull_request", pr("opened", 5, sha("e")));
      const p = await waitFor(5, ["failed", "ready"]);
      assert.equal(p.status, "failed");
      assert.match(p.error, /image registry.fly.io\/hello not found/);
      assert.ok(!fly.apps.has("hello-pr-5"), "the half-made app is deleted");
      await commentSays(5, /failed[\s\S]*not found/);
      const d = [...gh.state.deployments.values()].find((x) => x.environment === "pr-5");
      assert.equal(d.statuses.at(-1).state, "failure");
    } finally {
      fly.state.fail.createMachine = undefined;
    }
    // The next push tries again.
    await deliver("pull_request", pr("synchronize", 5, sha("f")));
    assert.equal((await waitFor(5, ["ready", "failed"], sha("f"))).status, "ready");
  });

  test("forks and drafts get a comment saying why, and no preview", async () => {
    await deliver("pull_request", pr("opened", 6, sha("1"), (p) => {
      p.pull_request.head.repo.full_name = "stranger/Hello-World";
    }));
    assert.equal((await waitFor(6, ["skipped"])).fork, true);
    await commentSays(6, /forks/);
    await deliver("pull_request", pr("opened", 7, sha("2"), (p) => {
      p.pull_request.draft = true;
    }));
    await waitFor(7, ["skipped"]);
    await commentSays(7, /draft/);
    assert.ok(!fly.apps.has("hello-pr-6") && !fly.apps.has("hello-pr-7"));
  });

  test("the cron destroys an expired preview and says so", async () => {
    const live = await waitFor(5, ["ready"]);
    // Move the expiry into the past in the local D1 (the TTL is counted in hours).
    d1Execute(worker.persistTo, `UPDATE previews SET expires_at = 1000 WHERE id = ${live.id}`);
    await worker.scheduled();
    const p = await waitFor(5, ["destroyed"]);
    assert.equal(p.wanted, "expired");
    assert.ok(!fly.apps.has("hello-pr-5"));
    await commentSays(5, /destroyed[\s\S]*expired/);
  });
});

test("the fakes saw nothing unexpected, and the secret went only to Fly's machine API", () => {
  assert.deepEqual(gh.violations, []);
  assert.deepEqual(fly.violations, []);
  assert.deepEqual(tg.violations, []);
  const logs = worker.logs.join("\n");
  for (const secret of [SECRET, ADMIN, BOT, SECRETS_KEY, FLY_TOKEN, SECRET_VALUE, ...gh.state.issued]) {
    assert.ok(!logs.includes(secret), "a secret in the logs");
  }
  for (const c of gh.state.comments.values()) assert.ok(!c.body.includes(SECRET_VALUE));
  for (const m of tg.messages) assert.ok(!JSON.stringify(m).includes(SECRET_VALUE));
  for (const q of gh.requests) assert.ok(!JSON.stringify(q.body ?? "").includes(SECRET_VALUE));
  const elsewhere = fly.requests.filter((q) => JSON.stringify(q.body ?? "").includes(SECRET_VALUE));
  assert.ok(elsewhere.length > 0 && elsewhere.every((q) => /^\/v1\/apps\/[^/]+\/machines(\/[^/]+)?$/.test(q.path)));
});

test("the admin API never shows a secret value", async () => {
  const all = JSON.stringify([await previews(), await admin("GET", "/api/apps/hello"), await admin("GET", "/api/apps/hello/secrets/preview")]);
  assert.ok(!all.includes(SECRET_VALUE));
});
