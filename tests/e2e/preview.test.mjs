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

/** GitHub's date of an event that happens now (whole seconds, as GitHub sends it). */
const githubNow = (offsetMs = 0) => new Date(Date.now() + offsetMs).toISOString().replace(/\.\d+Z$/, "Z");

/**
 * A pull_request fixture for PR `number` at `head`, dated now (`updated_at`, which
 * orders a PR's events), optionally changed further.
 */
function pr(action, number, head, edit = () => {}) {
  const p = fixture(`pull_request.${action === "closed" || action === "reopened" || action === "synchronize" ? action : "opened"}.json`);
  p.action = action;
  p.number = number;
  p.pull_request.number = number;
  p.pull_request.head.sha = head;
  p.pull_request.html_url = `https://github.com/${REPO}/pull/${number}`;
  p.pull_request.updated_at = githubNow();
  edit(p);
  return p;
}

/** Waits until delivery `id` has a final outcome; returns it. */
async function delivered(id, timeoutMs = 20_000) {
  const until = Date.now() + timeoutMs;
  let last;
  while (Date.now() < until) {
    const r = await admin("GET", "/api/deliveries?limit=100");
    assert.equal(r.status, 200);
    last = r.json.deliveries.find((d) => d.id === id);
    if (last && last.outcome !== "queued") return last;
    await sleep(100);
  }
  throw new Error(`delivery ${id} is ${JSON.stringify(last)}`);
}

async function previews(app = "hello", client = admin) {
  const r = await client("GET", `/api/apps/${app}/previews`);
  assert.equal(r.status, 200, JSON.stringify(r.json));
  return r.json.previews;
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
      // The flows' messages unpaced: these scenarios are about the flows (the pace
      // has its own suite, telegram.test.mjs).
      TELEGRAM_PACE: "off",
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
      github_permissions: { pull_requests: "write" },
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
    for (const [permissions, field] of [
      [{ workflows: "write" }, "preview.github_permissions.workflows"],
      [{ administration: "read" }, "preview.github_permissions.administration"],
      [{ contents: "admin" }, "preview.github_permissions.contents"],
    ]) {
      const refused = await admin("PUT", "/api/apps/other", {
        repository: "o/r", preview: { org: "acme", image: "x:{sha}", github_permissions: permissions },
      });
      assert.equal(refused.status, 400, JSON.stringify(permissions));
      assert.ok(refused.json.error.startsWith(`${field}: `), refused.json.error);
    }
    const neither = await admin("PUT", "/api/apps/other", { repository: "o/r" });
    assert.deepEqual([neither.status, neither.json.error], [400, "deploy: an app needs `deploy`, `preview` or both"]);
    assert.equal((await admin("GET", "/api/apps/other")).status, 404, "nothing was stored");
  });

  test("preview names another app could make are refused with a 409 naming the field", async () => {
    const other = (app_name) => ({
      repository: "o/r", production_branch: "main", environment: "production", deploy_on: "push",
      deploy: { type: "deploy_hook", url: "https://x.example.com" },
      preview: { org: "acme", image: "x:{sha}", app_name },
    });
    // hello makes hello-pr-{pr}; so would this one.
    const clash = await admin("PUT", "/api/apps/other", other("hello-pr-{pr}"));
    assert.equal(clash.status, 409);
    assert.equal(clash.json.success, false);
    assert.match(clash.json.error, /preview\.app_name/);
    assert.match(clash.json.error, /hello/);
    assert.equal((await admin("GET", "/api/apps/other")).status, 404, "not stored");
    const fine = await admin("PUT", "/api/apps/other", other("other-pr-{pr}"));
    assert.equal(fine.status, 201);
    assert.equal((await admin("DELETE", "/api/apps/other")).status, 200);
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
    // Its own installation token, for this repository alone, reading it (plus
    // github_permissions); never the Worker's own token, which was asked with {}.
    const token = machine.config.env.GITHUB_TOKEN;
    const exchange = gh.state.exchanges.find((e) => e.token === token);
    assert.ok(exchange, "an installation token issued for the machine");
    assert.deepEqual(exchange.body, { repositories: ["Hello-World"], permissions: { contents: "read", pull_requests: "write" } });
    const own = gh.state.exchanges.filter((e) => e.token !== token);
    assert.ok(own.length >= 1 && own.every((e) => JSON.stringify(e.body) === "{}"), JSON.stringify(gh.state.exchanges));
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
    const first = await deliver("pull_request", event);
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
    assert.deepEqual([again.status, again.json.message], [200, "Already processed"], "the same body under a new id is recognised");
    const dup = await deliver("pull_request", event, { id: first.id });
    assert.equal(dup.status, 200, "the same delivery id is recognised");
    // Neither duplicate was recorded or queued: both answers above are final.
    await settled(first.id);
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

  test("a Fly app of that name the preview did not make is neither used nor deleted", async () => {
    fly.apps.set("hello-pr-11", { org: "someone-else", ips: [] });
    const seen = fly.requests.length;
    await deliver("pull_request", pr("opened", 11, sha("8")));
    const p = await waitFor(11, ["failed", "ready"]);
    assert.equal(p.status, "failed");
    assert.equal(p.fly_owned, false);
    assert.match(p.error, /hello-pr-11 already exists and this preview did not create it/);
    await commentSays(11, /failed[\s\S]*already exists/);
    const calls = fly.requests.slice(seen).map((q) => `${q.method} ${q.path}`);
    assert.deepEqual(calls, ["POST /v1/apps"], "only the create Fly refused");
    assert.deepEqual(fly.apps.get("hello-pr-11"), { org: "someone-else", ips: [] });
    assert.ok(!fly.machines.has("hello-pr-11"));
    await deliver("pull_request", pr("closed", 11, sha("8")));
    await waitFor(11, ["destroyed"]);
    assert.ok(fly.apps.has("hello-pr-11"), "closing leaves it alone too");
    assert.ok(!fly.requests.slice(seen).some((q) => q.method === "DELETE"));
  });

  test("a comment with the marker by someone else is left alone; our own is found again", async () => {
    const planted = `${MARKER}\nPreview moved: https://evil.example.com`;
    const theirs = gh.state.addComment(REPO, 12, planted, "mallory");
    await deliver("pull_request", pr("opened", 12, sha("9")));
    assert.equal((await waitFor(12, ["ready", "failed"])).status, "ready");
    await commentSays12();
    const list = gh.commentsOn(REPO, 12);
    assert.equal(list.length, 2, "ours is a new comment");
    assert.deepEqual(gh.state.comments.get(theirs), { repo: REPO, number: 12, body: planted, edits: 0, author: "mallory" });
    const ours = list.find((c) => c.author !== "mallory");
    assert.equal(ours.author, "edge-notifier-e2e[bot]");
    assert.ok(ours.body.startsWith(MARKER) && /ready/.test(ours.body));

    // A comment of ours the row does not know (a run died after posting it) is
    // edited, not doubled.
    const lost = gh.state.addComment(REPO, 13, `${MARKER}\nposted by a run that died`, "edge-notifier-e2e[bot]");
    await deliver("pull_request", pr("opened", 13, sha("a")));
    // Two slots: #12 and #2 hold them, so #13 waits queued, in the found comment.
    const p = await waitFor(13, ["queued", "ready"]);
    assert.equal(p.comment_id, lost);
    assert.equal(gh.commentsOn(REPO, 13).length, 1);
    assert.equal(gh.requests.filter((q) => q.path === "/app").length, 1, "the App's login is asked once, then cached");
    assert.ok(!gh.requests.some((q) => q.path === "/user"), "no /user with an installation token");
    await deliver("pull_request", pr("closed", 13, sha("a")));
    await waitFor(13, ["destroyed"]);
    await deliver("pull_request", pr("closed", 12, sha("9")));
    await waitFor(12, ["destroyed"]);
    assert.equal(gh.state.comments.get(theirs).body, planted);

    async function commentSays12() {
      const until = Date.now() + 10_000;
      const ready = () => gh.commentsOn(REPO, 12).some((c) => c.author !== "mallory" && /ready/.test(c.body));
      while (Date.now() < until && !ready()) await sleep(100);
      assert.ok(ready(), "our comment says ready");
    }
  });

  test("a synchronize delivered after the close (late or replayed) leaves the preview closed", async () => {
    await deliver("pull_request", pr("opened", 9, sha("3")));
    assert.equal((await waitFor(9, ["ready", "failed"])).status, "ready");
    // A push GitHub dated before the close, whose delivery comes after it.
    const late = pr("synchronize", 9, sha("4"), (p) => { p.pull_request.updated_at = githubNow(-60_000); });
    await deliver("pull_request", pr("closed", 9, sha("3")));
    await waitFor(9, ["destroyed"]);
    await commentSays(9, /destroyed[\s\S]*closed/);
    const before = { fly: fly.requests.length, machines: [...fly.machines.keys()] };
    const closed = (await previews()).find((p) => p.pr_number === 9);

    const r = await deliver("pull_request", late);
    assert.equal(r.status, 202);
    const outcome = await delivered(r.id);
    assert.equal(outcome.outcome, "processed");
    assert.match(outcome.detail, /ignored the event: the pull request is closed/);
    // The same signed body under a new delivery id changes nothing; the first one replayed.
    const again = await deliver("pull_request", late);
    assert.deepEqual([again.status, again.json.message], [200, "Already processed"]);
    const replay = await admin("POST", `/api/deliveries/${r.id}/replay`);
    assert.equal(replay.status, 202);
    const until = Date.now() + 20_000;
    let replayed;
    while (Date.now() < until) {
      replayed = await delivered(r.id);
      if (replayed.updated_at > outcome.updated_at) break;
      await sleep(100);
    }
    assert.ok(replayed.updated_at > outcome.updated_at, "the replay was processed");
    assert.match(replayed.detail, /the pull request is closed/);

    const p = (await previews()).find((x) => x.pr_number === 9);
    assert.deepEqual(p, closed, "the row is as the close left it");
    assert.equal(p.wanted, "closed");
    assert.equal(fly.requests.length, before.fly, "no Fly call: no app, no machine");
    assert.ok(!fly.apps.has("hello-pr-9"));
    assert.deepEqual([...fly.machines.keys()], before.machines);
  });

  test("an older synchronize delivered after a newer one does not deploy the older sha", async () => {
    await deliver("pull_request", pr("opened", 10, sha("5")));
    await waitFor(10, ["ready"]);
    const older = pr("synchronize", 10, sha("6"), (p) => { p.pull_request.updated_at = githubNow(-30_000); });
    await deliver("pull_request", pr("synchronize", 10, sha("7")));
    assert.equal((await waitFor(10, ["ready", "failed"], sha("7"))).deployed_sha, sha("7"));
    const seen = fly.requests.length;
    const r = await deliver("pull_request", older);
    assert.match((await delivered(r.id)).detail, /ignored the event: older than the one it follows/);
    const p = (await previews()).find((x) => x.pr_number === 10);
    assert.equal(p.head_sha, sha("7"));
    assert.equal(p.deployed_sha, sha("7"));
    assert.equal(fly.requests.length, seen, "no Fly call");
    assert.equal(fly.machines.get("hello-pr-10")[0].config.image, `registry.fly.io/hello:${sha("7")}`);
    await deliver("pull_request", pr("closed", 10, sha("7")));
    await waitFor(10, ["destroyed"]);
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
  const app = await admin("GET", "/api/apps/hello");
  const secrets = await admin("GET", "/api/apps/hello/secrets/preview");
  // A 404 would show no secret too: the answers must be the real ones.
  assert.equal(app.status, 200);
  assert.equal(secrets.status, 200);
  assert.ok(JSON.stringify(secrets.json).includes("DATABASE_PASSWORD"), "the secret is listed, by name");
  const all = JSON.stringify([await previews(), app.json, secrets.json]);
  assert.ok(!all.includes(SECRET_VALUE));
});

// With only a PAT: previews of an app that deploys nothing, and no GitHub token in
// the machine (the PAT is the Worker's own credential, and the machine runs PR code).
describe("a preview-only app, GitHub through a PAT", () => {
  const PAT = "ghp_e2e_preview_pat_Kx81";
  let w2, gh2, fly2;
  const c2 = clients(() => w2, { secret: SECRET, token: ADMIN });

  before(async () => {
    gh2 = await fakeGithub({ token: PAT });
    fly2 = await fakeFly({ token: FLY_TOKEN });
    w2 = await startWorker({
      vars: {
        GITHUB_WEBHOOK_SECRET: SECRET, ADMIN_TOKEN: ADMIN, GITHUB_TOKEN: PAT, GITHUB_API_BASE: gh2.base,
        FLY_API_TOKEN: FLY_TOKEN, FLY_API_BASE: fly2.base, SECRETS_KEY,
      },
    });
    const put = await c2.admin("PUT", "/api/apps/solo", {
      repository: REPO,
      preview: { org: "acme", image: "registry.fly.io/solo:{sha}", env: { NODE_ENV: "preview" } },
    });
    assert.equal(put.status, 201, JSON.stringify(put.json));
  });

  after(async () => {
    await w2?.stop();
    await gh2?.close();
    await fly2?.close();
  });

  test("an opened PR gets its preview, and nothing in the machine holds the PAT", async () => {
    const r = await c2.deliver("pull_request", pr("opened", 9, sha("9")));
    assert.equal(r.status, 202);
    let p;
    const until = Date.now() + 20_000;
    while (Date.now() < until) {
      p = (await previews("solo", c2.admin)).find((x) => x.pr_number === 9);
      if (p && ["ready", "failed"].includes(p.status) && p.done_revision === p.revision) break;
      await sleep(100);
    }
    assert.equal(p?.status, "ready", JSON.stringify(p));
    const [machine] = fly2.machines.get("solo-pr-9");
    assert.equal(machine.config.env.NODE_ENV, "preview");
    assert.equal(machine.config.env.GITHUB_TOKEN, undefined);
    const created = fly2.requests.filter((q) => q.method === "POST" && /^\/v1\/apps\/solo-pr-9\/machines/.test(q.path));
    assert.ok(created.length >= 1);
    for (const q of fly2.requests) assert.ok(!JSON.stringify(q).includes(PAT), `the PAT went to Fly: ${q.path}`);
    assert.deepEqual(gh2.state.exchanges, [], "no installation token without an App");
    assert.ok(gh2.commentsOn(REPO, 9).length === 1, "announced with the PAT");
  });

  test("a push to its repository deploys nothing", async () => {
    const push = fixture("push.with-new-branch.json");
    const r = await c2.deliver("push", push);
    assert.deepEqual([r.status, r.json.message], [202, `Ignored: no app deploys ${REPO} from master`]);
    const jobs = await c2.admin("GET", "/api/jobs");
    assert.equal(jobs.status, 200);
    assert.deepEqual(jobs.json.jobs, []);
  });

  test("its fakes saw nothing unexpected", () => {
    assert.deepEqual(gh2.violations, []);
    assert.deepEqual(fly2.violations, []);
    assert.ok(!w2.logs.join("\n").includes(PAT), "the PAT in the logs");
  });
});
