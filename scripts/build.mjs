// The wrangler [build] command: installs missing tools, then builds incrementally.
import { ensureTools, buildWorker } from "./lib.mjs";

ensureTools();
buildWorker({ force: process.argv.includes("--force") });
