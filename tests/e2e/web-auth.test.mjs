// Who sees the status page, end to end on workerd: Cloudflare Access tokens signed
// here and checked against a strict fake keys endpoint, and the sign-in form with
// its session cookie, rate limit, CSRF-checked sign-out and security headers.
import { test, before, after, describe } from "node:test";
import assert from "node:assert/strict";
import { fakeAccess } from "./fakes.mjs";
import { startWorker } from "./worker.mjs";

const TEAM = "e2e-team.cloudflareaccess.com";
const AUD = "e2e-access-aud-0123456789";
const ADMIN = "e2e-web-auth-admin-token";

const SECURITY_HEADERS = {
  "content-security-policy": "default-src 'self'; frame-ancestors 'none'",
  "cache-control": "no-store",
  "x-content-type-options": "nosniff",
  "referrer-policy": "same-origin",
};

/** A page request that never follows redirects; every answer must carry the page headers. */
async function page(worker, path, { method = "GET", headers = {}, form } = {}) {
  const init = { method, headers: { ...headers }, redirect: "manual" };
  if (form !== undefined) {
    init.body = typeof form === "string" ? form : new URLSearchParams(form).toString();
    init.headers["content-type"] ??= "application/x-www-form-urlencoded";
  }
  const r = await fetch(`${worker.url}${path}`, init);
  const body = await r.text();
  for (const [name, value] of Object.entries(SECURITY_HEADERS)) {
    assert.equal(r.headers.get(name), value, `${method} ${path} (${r.status}) has ${name}`);
  }
  return { status: r.status, headers: r.headers, body, cookies: r.headers.getSetCookie() };
}

/** The hidden CSRF field of a page's sign-out form. */
function csrfOf(html) {
  const m = html.match(/name="csrf" value="([^"]+)"/);
  assert.ok(m, "the page has a sign-out form with its CSRF token");
  return m[1];
}

describe("Cloudflare Access", () => {
  let worker;
  let access;

  before(async () => {
    access = await fakeAccess({ team: TEAM, aud: AUD });
    worker = await startWorker({
      vars: {
        ACCESS_TEAM_DOMAIN: TEAM,
        ACCESS_AUD: AUD,
        ACCESS_OPERATORS: "Ops@Example.com, lead@example.com",
        ACCESS_CERTS_URL: access.certsUrl,
      },
    });
  });

  after(async () => {
    if (process.env.E2E_DEBUG) console.log(worker?.logs.join("\n"));
    await worker?.stop();
    await access?.close();
    assert.deepEqual(access?.violations ?? [], []);
  });

  const as = (token) => ({ "cf-access-jwt-assertion": token });

  test("a valid token shows the page and names its email; an operator is marked", async () => {
    const ops = await page(worker, "/", { headers: as(access.token({ email: "ops@example.com" })) });
    assert.equal(ops.status, 200);
    assert.match(ops.body, /<h1>Overview<\/h1>/);
    assert.match(ops.body, /ops@example\.com · operator/);
    assert.equal(access.fetches(), 1, "the keys were fetched once");

    const dev = await page(worker, "/", { headers: as(access.token({ email: "dev@example.com" })) });
    assert.equal(dev.status, 200);
    assert.match(dev.body, /dev@example\.com/);
    assert.doesNotMatch(dev.body, /operator/);
    assert.equal(access.fetches(), 1, "the second token used the keys cached in KV");
  });

  test("no token, an expired one, one for another application and a forged one are refused", async () => {
    const cases = [
      ["missing", {}, "no Cf-Access-Jwt-Assertion header"],
      ["expired", as(access.token({ claims: { exp: Math.floor(Date.now() / 1000) - 600 } })), "the token has expired"],
      ["wrong aud", as(access.token({ claims: { aud: ["another-app"] } })), "the token is for another application"],
      ["bad signature", as(access.token({ kid: "key-1", signWith: "key-2" })), "the token's signature does not verify"],
    ];
    for (const [what, headers, reason] of cases) {
      const r = await page(worker, "/", { headers });
      assert.equal(r.status, 403, what);
      assert.match(r.body, /Not allowed/, what);
      assert.ok(await worker.waitForLog(`page refused: ${reason}`), `${what} is logged with its reason`);
    }
    for (const [, headers] of cases) {
      const token = headers["cf-access-jwt-assertion"];
      if (token) assert.ok(!worker.logs.some((l) => l.includes(token.split(".")[2].slice(0, 24))), "no token in the logs");
    }
  });

  test("a rotated key is let in at its first token; invented kids right after are refused without a fetch", async () => {
    const before = access.fetches();
    access.served.push("key-2");
    const rotated = await page(worker, "/", { headers: as(access.token({ kid: "key-2", email: "lead@example.com" })) });
    assert.equal(rotated.status, 200);
    assert.match(rotated.body, /lead@example\.com · operator/);
    assert.equal(access.fetches(), before + 1, "the new key was fetched on its first token");

    // The copy was fetched for an unknown kid a moment ago: for half a minute another
    // unknown kid is refused from it (a flood of invented kids costs two fetches a minute).
    access.makeKey("key-9");
    for (const kid of ["key-9", "invented-1", "invented-2"]) {
      const r = await page(worker, "/", { headers: as(access.token({ kid, signWith: "key-9" })) });
      assert.equal(r.status, 403, kid);
      assert.match(r.body, /Not allowed/, kid);
    }
    assert.ok(await worker.waitForLog("page refused: the token's kid is not among the team's keys"));
    assert.equal(access.fetches(), before + 1, "no fetch for the invented kids");
    const still = await page(worker, "/", { headers: as(access.token({ kid: "key-1", email: "ops@example.com" })) });
    assert.equal(still.status, 200, "a known kid is let in from the cache meanwhile");
    assert.equal(access.fetches(), before + 1);
  });

  test("signing out under Access needs the CSRF token and goes to Access's logout", async () => {
    const headers = as(access.token({ email: "ops@example.com" }));
    const home = await page(worker, "/", { headers });
    const refused = await page(worker, "/signout", { method: "POST", headers, form: { csrf: "forged" } });
    assert.equal(refused.status, 403);
    const out = await page(worker, "/signout", { method: "POST", headers, form: { csrf: csrfOf(home.body) } });
    assert.equal(out.status, 303);
    assert.equal(out.headers.get("location"), "/cdn-cgi/access/logout");
    // There is no sign-in form under Access.
    const signin = await page(worker, "/signin");
    assert.equal(signin.status, 303);
    assert.equal(signin.headers.get("location"), "/");
  });
});

describe("the sign-in form", () => {
  let worker;

  before(async () => {
    worker = await startWorker({ vars: { ADMIN_TOKEN: ADMIN } });
  });

  after(async () => {
    if (process.env.E2E_DEBUG) console.log(worker?.logs.join("\n"));
    await worker?.stop();
  });

  /** Signs in from `ip` and answers the session cookie (`name=value`). */
  async function signIn(ip, next = "/") {
    const r = await page(worker, "/signin", { method: "POST", headers: { "cf-connecting-ip": ip }, form: { token: ADMIN, next } });
    assert.equal(r.status, 303);
    assert.equal(r.headers.get("location"), next);
    assert.equal(r.cookies.length, 1);
    return r.cookies[0];
  }

  test("without a session every page goes to the sign-in form, which comes back to it", async () => {
    const home = await page(worker, "/");
    assert.equal(home.status, 303);
    assert.equal(home.headers.get("location"), "/signin");
    const job = await page(worker, "/jobs/42?before=7");
    assert.equal(job.status, 303);
    assert.equal(job.headers.get("location"), "/signin?next=/jobs/42%3Fbefore%3D7");
    const form = await page(worker, "/signin?next=%2Fjobs%2F42%3Fbefore%3D7");
    assert.equal(form.status, 200);
    assert.match(form.body, /type="password" name="token"/);
    assert.match(form.body, /name="next" value="\/jobs\/42\?before=7"/);
    const evil = await page(worker, "/signin?next=//evil.example/x");
    assert.match(evil.body, /name="next" value="\/"/, "no open redirect");
  });

  test("a wrong token is a 401 that never echoes it; the right one sets the session cookie", async () => {
    const wrong = await page(worker, "/signin", { method: "POST", headers: { "cf-connecting-ip": "198.51.100.1" }, form: { token: "e2e-guess-<b>", next: "/" } });
    assert.equal(wrong.status, 401);
    assert.match(wrong.body, /Wrong token/);
    assert.ok(!wrong.body.includes("e2e-guess"), "the token is not put back in the page");
    assert.deepEqual(wrong.cookies, []);

    const cookie = await signIn("198.51.100.1", "/jobs/42");
    assert.match(cookie, /^__Host-edge-session=v1\.\d+\.\d+\.[0-9a-f]{32}\.[\w-]+; /);
    for (const attr of ["HttpOnly", "Secure", "SameSite=Strict", "Path=/", "Max-Age=43200"]) {
      assert.ok(cookie.split("; ").includes(attr), `the cookie is ${attr}`);
    }
    assert.ok(!cookie.includes(ADMIN));
    const home = await page(worker, "/", { headers: { cookie: cookie.split(";")[0] } });
    assert.equal(home.status, 200);
    assert.match(home.body, /<h1>Overview<\/h1>/);
    assert.match(home.body, /admin · operator/);
  });

  test("a tampered session cookie is sent back to sign in", async () => {
    const pair = (await signIn("198.51.100.2")).split(";")[0];
    const [name, value] = pair.split("=");
    const parts = value.split(".");
    parts[2] = String(Number(parts[2]) + 86400);
    for (const forged of [`${name}=${parts.join(".")}`, `${pair.slice(0, -2)}xx`, `${name}=v1.1.2.3.4`]) {
      const r = await page(worker, "/", { headers: { cookie: forged } });
      assert.equal(r.status, 303, forged);
      assert.equal(r.headers.get("location"), "/signin");
    }
  });

  test("a sign-in POST must be a same-origin urlencoded form of a few KiB", async () => {
    const cross = await page(worker, "/signin", { method: "POST", headers: { "sec-fetch-site": "cross-site" }, form: { token: ADMIN } });
    assert.equal(cross.status, 403);
    assert.deepEqual(cross.cookies, []);
    const otherOrigin = await page(worker, "/signin", { method: "POST", headers: { origin: "https://evil.example" }, form: { token: ADMIN } });
    assert.equal(otherOrigin.status, 403);
    const json = await page(worker, "/signin", { method: "POST", headers: { "content-type": "application/json" }, form: JSON.stringify({ token: ADMIN }) });
    assert.equal(json.status, 415);
    const huge = await page(worker, "/signin", { method: "POST", form: `token=${"a".repeat(5000)}` });
    assert.equal(huge.status, 413);
    const bad = await page(worker, "/signin", { method: "POST", form: "token=%zz" });
    assert.equal(bad.status, 400);
  });

  test("the sixth attempt from one address in 15 minutes is a 429, even with the right token", async () => {
    const ip = "203.0.113.77";
    for (let i = 1; i <= 5; i++) {
      const r = await page(worker, "/signin", { method: "POST", headers: { "cf-connecting-ip": ip }, form: { token: `guess-${i}` } });
      assert.equal(r.status, 401, `attempt ${i}`);
    }
    const limited = await page(worker, "/signin", { method: "POST", headers: { "cf-connecting-ip": ip }, form: { token: ADMIN } });
    assert.equal(limited.status, 429);
    assert.match(limited.body, /Too many sign-in attempts/);
    const retryAfter = Number(limited.headers.get("retry-after"));
    assert.ok(retryAfter > 800 && retryAfter <= 900, `Retry-After ${retryAfter}`);
    assert.deepEqual(limited.cookies, []);
    // Another address is not held back.
    await signIn("203.0.113.78");
  });

  test("signing out needs the CSRF token, then clears the cookie", async () => {
    const anonymous = await page(worker, "/signout", { method: "POST", form: { csrf: "x" } });
    assert.equal(anonymous.status, 303);
    assert.equal(anonymous.headers.get("location"), "/signin", "a POST's path is no way back");
    const cookie = (await signIn("198.51.100.3")).split(";")[0];
    const home = await page(worker, "/", { headers: { cookie } });
    const csrf = csrfOf(home.body);
    const without = await page(worker, "/signout", { method: "POST", headers: { cookie }, form: {} });
    assert.equal(without.status, 403);
    assert.deepEqual(without.cookies, []);
    const wrong = await page(worker, "/signout", { method: "POST", headers: { cookie }, form: { csrf: `${csrf.slice(0, -2)}AA` } });
    assert.equal(wrong.status, 403);
    const out = await page(worker, "/signout", { method: "POST", headers: { cookie }, form: { csrf } });
    assert.equal(out.status, 303);
    assert.equal(out.headers.get("location"), "/signin");
    assert.equal(out.cookies.length, 1);
    assert.match(out.cookies[0], /^__Host-edge-session=; /);
    assert.ok(out.cookies[0].includes("Max-Age=0"));
  });

  test("an unknown page is a 404 page, signed in or not, as the API's unknown paths are", async () => {
    const anonymous = await page(worker, "/assets/missing.css");
    assert.equal(anonymous.status, 404);
    assert.match(anonymous.body, /There is no page here/);
    // The icon browsers ask for on every page is not a 404 page each time.
    const icon = await fetch(`${worker.url}/favicon.ico`);
    assert.equal(icon.status, 204);
    assert.equal(await icon.text(), "");
    const cookie = (await signIn("198.51.100.4")).split(";")[0];
    const missing = await page(worker, "/assets/missing.css", { headers: { cookie } });
    assert.match(missing.body, /There is no page here/);
    assert.equal(missing.status, 404);
  });
});

describe("a misconfigured Access", () => {
  let worker;

  before(async () => {
    worker = await startWorker({ vars: { ACCESS_TEAM_DOMAIN: "not a host name", ACCESS_AUD: AUD } });
  });

  after(async () => {
    await worker?.stop();
  });

  test("a misconfigured Access closes the pages with a 503 that says what is wrong, and /health shows it", async () => {
    const r = await page(worker, "/");
    assert.equal(r.status, 503);
    assert.match(r.body, /ACCESS_TEAM_DOMAIN must be a host name/);
    const health = await (await fetch(`${worker.url}/health`)).json();
    assert.ok(health.problems.some((p) => p.startsWith("ACCESS_TEAM_DOMAIN must be a host name")));
    assert.equal(health.settings.ACCESS_AUD, true);
  });
});
