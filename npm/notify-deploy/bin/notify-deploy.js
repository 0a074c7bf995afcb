#!/usr/bin/env node
// The `notify-deploy` launcher: runs the prebuilt binary from the platform package
// npm installed through optionalDependencies (@edge-notifier/notify-deploy-<os>-<cpu>),
// passing every argument and the exit code through. Without a binary it says so in one
// line on stderr and exits 0, so the build goes on (1 with --strict, as the CLI's own
// failures do). Plain Node, no dependencies.
"use strict";
const { spawnSync } = require("node:child_process");
const { existsSync } = require("node:fs");
const { dirname, join } = require("node:path");

const args = process.argv.slice(2);
const platform = `${process.platform}-${process.arch}`;
const pkg = `@edge-notifier/notify-deploy-${platform}`;

function binary() {
  try {
    const bin = join(dirname(require.resolve(`${pkg}/package.json`)), "bin", "notify-deploy");
    return existsSync(bin) ? bin : null;
  } catch {
    return null;
  }
}

function giveUp(why) {
  const strict = args.includes("--strict");
  process.stderr.write(`notify-deploy: ${why}${strict ? "" : " (the build goes on; --strict fails it)"}\n`);
  process.exit(strict ? 1 : 0);
}

const bin = binary();
if (!bin) {
  const supported = Object.keys(require("../package.json").optionalDependencies ?? {});
  giveUp(supported.includes(pkg)
    ? `not sent: no binary for ${platform} (${pkg} is not installed; were optional dependencies turned off?)`
    : `not sent: no binary for ${platform} (there are binaries for ${supported.map((p) => p.split("notify-deploy-")[1]).join(", ")})`);
}
const r = spawnSync(bin, args, { stdio: "inherit" });
if (r.error) giveUp(`not sent: cannot run ${bin}: ${r.error.message}`);
if (r.signal) process.kill(process.pid, r.signal);
process.exit(r.status ?? 1);
