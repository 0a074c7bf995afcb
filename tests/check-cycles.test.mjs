// Self-test of scripts/check-cycles.mjs on tiny crates written to a scratch directory.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, mkdirSync, writeFileSync, rmSync } from "node:fs";
import { spawnSync } from "node:child_process";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { cyclesIn } from "../scripts/check-cycles.mjs";

const script = join(dirname(fileURLToPath(import.meta.url)), "..", "scripts", "check-cycles.mjs");

/** Writes `files` ({ "a/b.rs": source }) under a fresh src/ and answers its path. */
function crate(files) {
  const dir = mkdtempSync(join(tmpdir(), "check-cycles-"));
  test.after(() => rmSync(dir, { recursive: true, force: true }));
  const src = join(dir, "src");
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(src, path)), { recursive: true });
    writeFileSync(join(src, path), text);
  }
  return src;
}

const check = (...args) => spawnSync(process.execPath, [script, ...args], { encoding: "utf8" });
const paths = (src) => cyclesIn(src).map((c) => c.path.join(" → "));

test("two modules using each other's items fail the check, printed as a path", () => {
  const src = crate({
    "lib.rs": "pub mod a;\npub mod b;\n",
    "a.rs": "use crate::b::B;\npub struct A;\npub fn f(_: B) {}\n",
    "b.rs": "pub struct B;\npub fn g(_: crate::a::A) {}\n",
  });
  const r = check(src);
  assert.equal(r.status, 1, r.stdout + r.stderr);
  assert.match(r.stdout, /a → b → a/);
  assert.match(r.stdout, /a → b {3}.*a\.rs:1/);
  assert.match(r.stdout, /b → a {3}.*b\.rs:2/);
});

test("--report prints the cycles and does not fail", () => {
  const src = crate({
    "lib.rs": "mod a;\nmod b;\n",
    "a.rs": "pub fn f() { crate::b::g() }\n",
    "b.rs": "pub fn g() { crate::a::f() }\n",
  });
  const r = check("--report", src);
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /a → b → a/);
});

test("a layered crate passes: façades, tests, comments, strings and module imports are no edges", () => {
  const src = crate({
    "lib.rs": "pub mod flow;\npub mod names;\npub mod deploy;\n",
    "names.rs": "pub struct AppName;\n// uses crate::deploy in a comment only\nconst S: &str = \"crate::deploy::Step\";\n",
    // The parent re-exports its children's items and holds what they share.
    "deploy/mod.rs": "pub mod pipeline;\npub mod runs;\npub use pipeline::Deps;\npub use runs::{find, Run};\npub enum StepOutcome { Done }\n",
    "deploy/pipeline.rs": "use super::StepOutcome;\nuse crate::names::AppName;\npub struct Deps;\npub fn run(_: AppName) -> StepOutcome { StepOutcome::Done }\n",
    "deploy/runs.rs": "use super::StepOutcome;\npub struct Run;\npub fn find() -> StepOutcome { super::StepOutcome::Done }\n#[cfg(test)]\nmod tests {\n    use super::*;\n    use crate::deploy::pipeline;\n    #[test] fn t() { let _ = (find(), pipeline::Deps); }\n}\n",
    // Imports a module's name; only what it reaches through it counts.
    "flow.rs": "use crate::deploy;\nuse crate::deploy::{self as d};\npub fn go() { let _ = deploy::Deps; let _ = d::find(); let _ = 'x'; let _: &'static str = r#\"crate::flow\"#; }\n",
  });
  const r = check(src);
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /no module cycles/);
});

test("a path names the deepest module it reaches, through super::super and re-exports", () => {
  const src = crate({
    "lib.rs": "pub mod top;\npub mod deep;\npub mod user;\n",
    "top.rs": "pub struct Top;\npub fn f() -> crate::deep::inner::Thing { crate::deep::inner::Thing }\n",
    "deep/mod.rs": "pub mod inner;\npub mod other;\npub mod shared;\npub use inner::Thing;\npub use shared::*;\n",
    "deep/inner.rs": "pub struct Thing;\nfn g(_: super::super::top::Top, _: crate::user::U) {}\n",
    "deep/shared.rs": "pub struct Shared;\nfn s(_: crate::user::U) {}\n",
    "deep/other.rs": "use crate::user::U;\npub struct Other;\n",
    "user.rs": "pub struct U;\npub fn h(_: crate::deep::other::Other, _: crate::deep::Thing, _: crate::deep::Shared) {}\n",
  });
  // user's `crate::deep::Thing` is deep::inner's and `crate::deep::Shared` (a glob
  // re-export) deep::shared's: the façade `deep` is in no cycle, they are.
  assert.deepEqual(paths(src).sort(), [
    "deep::inner → top → deep::inner",
    "deep::inner → user → deep::inner",
    "deep::other → user → deep::other",
    "deep::shared → user → deep::shared",
  ]);
});

test("a parent that uses its child's items while the child uses the parent's is a cycle", () => {
  const src = crate({
    "lib.rs": "pub mod engine;\n",
    "engine/mod.rs": "pub mod definition;\nuse definition::Step;\npub enum Kind { A }\npub fn run(_: Step) {}\n",
    "engine/definition.rs": "use super::Kind;\npub struct Step(pub Kind);\n",
  });
  assert.deepEqual(paths(src), ["engine → engine::definition → engine"]);
  // … unless a parent's uses of its submodules are left out.
  assert.deepEqual(cyclesIn(src, { parentsUseChildren: true }), []);
  const r = check("--parents-use-children", src);
  assert.equal(r.status, 0, r.stdout + r.stderr);
});

test("--parents-use-children still finds a cycle that crosses folders", () => {
  const src = crate({
    "lib.rs": "pub mod a;\npub mod b;\n",
    "a/mod.rs": "pub mod part;\n",
    "a/part.rs": "pub struct P;\npub fn f(_: crate::b::Q) {}\n",
    "b.rs": "pub struct Q;\npub fn g(_: crate::a::part::P) {}\n",
  });
  const r = check("--parents-use-children", src);
  assert.equal(r.status, 1, r.stdout + r.stderr);
  assert.match(r.stdout, /a::part → b → a::part/);
});

test("inline modules are modules of their own; super inside one is the file's module", () => {
  const src = crate({
    "lib.rs": "pub mod a;\npub mod b;\n",
    "a.rs": "pub struct A;\npub mod inner {\n    pub fn f(_: super::A) {}\n    pub fn g() { crate::b::h() }\n}\n",
    "b.rs": "pub fn h() {}\npub fn k() { crate::a::inner::f(crate::a::A) }\n",
  });
  assert.deepEqual(paths(src), ["a::inner → b → a::inner"]);
});
