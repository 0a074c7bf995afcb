// The real-browser harness of the status page: Debian's Chromium driven by
// playwright-core (which downloads no browser of its own), one browser per test file.
// The pages carry no JavaScript, so anything the browser reports (a console error, a
// page error, a Content-Security-Policy violation, a request that failed, a dialog)
// is a bug: it is recorded in `problems`, and `assertClean()` fails the test on it.
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import assert from "node:assert/strict";
import { chromium } from "playwright-core";
import { CHROMIUM, ensureChromium, root } from "../../scripts/lib.mjs";
import { tempDir } from "./worker.mjs";

/** Where `screenshot()` writes (ignored by git): for a person to look at. */
export const SCREENSHOTS = join(root, "tests", "e2e", "screenshots");

/**
 * The flags this machine needs: no sandbox (root in a VM), no GPU, and none of the
 * browser's own traffic (QUIC, component updates, sync, background fetches), whose
 * connections are refused here many at a time and slow every page down.
 */
export const CHROMIUM_ARGS = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
];

/** A desktop and a phone viewport (an iPhone 13's CSS pixels). */
export const DESKTOP = { width: 1280, height: 900 };
export const PHONE = { width: 390, height: 844 };

/**
 * Reports a CSP violation as a console error the harness can see: Chromium prints
 * some violations itself, this catches every one. Injected through the DevTools
 * protocol, so the page's own CSP does not apply to it; it opens nothing and
 * changes nothing on the page.
 */
const CSP_WATCH = `document.addEventListener("securitypolicyviolation", (e) => {
  console.error("CSP violation: " + e.violatedDirective + " blocked " + (e.blockedURI || "inline"));
});`;

/**
 * Starts Chromium with a fresh profile. Answers { context, problems, page(), close(),
 * assertClean() }: `page()` opens a page watched for problems; `problems` lists them
 * as text.
 */
export async function startBrowser() {
  ensureChromium();
  const context = await chromium.launchPersistentContext(tempDir("chromium"), {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: DESKTOP,
    // The pages say their times in UTC; the browser's zone must not matter.
    timezoneId: "UTC",
    locale: "en-GB",
  });
  const problems = [];
  // A page of this Worker answers in milliseconds: a locator that finds nothing for
  // ten seconds has found a missing element, not a slow page.
  context.setDefaultTimeout(10_000);
  await context.addInitScript(CSP_WATCH);
  const watch = (page) => {
    page.on("console", (m) => {
      // A resource that answered an error status is reported below, by its response
      // (a page's own status, a 401 or a 404 page, is the scenario's to check).
      if (m.type() === "error" && m.text().startsWith("Failed to load resource:")) return;
      if (m.type() === "error" || m.type() === "warning") problems.push(`console ${m.type()} on ${page.url()}: ${m.text()}`);
    });
    page.on("response", (r) => {
      if (r.status() >= 400 && !r.request().isNavigationRequest()) {
        problems.push(`${r.request().resourceType()} ${r.url()} answered ${r.status()} on ${page.url()}`);
      }
    });
    page.on("pageerror", (e) => problems.push(`page error on ${page.url()}: ${e.message}`));
    page.on("requestfailed", (r) => problems.push(`request failed: ${r.method()} ${r.url()}: ${r.failure()?.errorText}`));
    page.on("dialog", async (d) => {
      problems.push(`a ${d.type()} dialog opened on ${page.url()}: ${d.message()}`);
      await d.dismiss();
    });
  };
  // The persistent context opens with one blank page; every page gets the watch.
  for (const p of context.pages()) watch(p);
  context.on("page", watch);
  return {
    context,
    problems,
    async page() {
      return context.newPage();
    },
    /** Fails the test if the browser reported anything since the last call. */
    assertClean() {
      const seen = problems.splice(0);
      assert.deepEqual(seen, [], "the browser reported problems");
    },
    close: () => context.close(),
  };
}

/**
 * Saves a PNG of the whole of `page` as tests/e2e/screenshots/<name>.png, at the
 * viewport it has (the caller sets a phone one, or dark mode, beforehand), and its
 * HTML as <name>.html.
 */
export async function screenshot(page, name) {
  mkdirSync(SCREENSHOTS, { recursive: true });
  const path = join(SCREENSHOTS, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  // The HTML beside it, to read what the picture shows.
  writeFileSync(join(SCREENSHOTS, `${name}.html`), await page.content());
  return path;
}

/** Opens `path` of `base` and answers the response (its status, headers). */
export async function visit(page, base, path) {
  const response = await page.goto(`${base}${path}`, { waitUntil: "load" });
  assert.ok(response, `no response for ${path}`);
  return response;
}
