// Fails when the modules of a Rust crate depend on each other in a cycle.
//
//   node scripts/check-cycles.mjs [--report] [--parents-use-children] [crate-src-dir …]
//   (default: core/src src)
//
// A module is a file (`a.rs` or `a/mod.rs` is `a`, `a/b.rs` is `a::b`) or an inline
// `mod x { … }`, found by following `mod` declarations from lib.rs (or main.rs). An
// edge is a real reference: a `use` of an item, or a `crate::…`, `super::…`, `self::…`
// path, or a path through a child module or an imported module name, in code. A path
// names the deepest module it reaches (`crate::a::b::C` is `a::b` when a/b.rs exists),
// following `use` imports and `pub use` re-exports to where the item is defined.
// Not edges: a `mod x;` declaration, a `use` of a module's name (the paths through
// it count instead), and a parent's `pub use` of its own submodules' items (a façade;
// it counts when the parent uses the name itself). Other crates (`edge_core::` from
// the Worker crate) are left out: crates cannot form cycles.
//
// `--parents-use-children` also leaves out a module's uses of its own submodules (the
// crate root routing to its handlers, a folder's mod.rs using its parts), so only a
// submodule's use of its ancestors or a cross-folder reference can close a cycle.
//
// Prints each cycle as a path a → b → a with where each step is written, and exits 1
// if there is one; `--report` prints them and exits 0.
import { readFileSync, existsSync } from "node:fs";
import { join, dirname, relative } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");

// ---------------------------------------------------------------- tokens

/** Identifiers and punctuation of Rust source, without comments or literals. */
export function tokenize(src) {
  const out = [];
  let i = 0;
  let line = 1;
  const n = src.length;
  const skipTo = (j) => {
    for (; i < j; i++) if (src[i] === "\n") line++;
  };
  while (i < n) {
    const c = src[i];
    if (c === "\n") { line++; i++; continue; }
    if (c === " " || c === "\t" || c === "\r") { i++; continue; }
    if (c === "/" && src[i + 1] === "/") {
      while (i < n && src[i] !== "\n") i++;
      continue;
    }
    if (c === "/" && src[i + 1] === "*") {
      let depth = 0;
      let j = i;
      while (j < n) {
        if (src[j] === "/" && src[j + 1] === "*") { depth++; j += 2; } else if (src[j] === "*" && src[j + 1] === "/") {
          depth--;
          j += 2;
          if (depth === 0) break;
        } else j++;
      }
      skipTo(j);
      continue;
    }
    // Raw strings: r"…", r#"…"#, br#"…"#, cr"…".
    const raw = /^(?:br|cr|r)(#*)"/.exec(src.slice(i, i + 260));
    if (raw) {
      const close = `"${raw[1]}`;
      const end = src.indexOf(close, i + raw[0].length);
      skipTo(end < 0 ? n : end + close.length);
      continue;
    }
    if (c === '"' || ((c === "b" || c === "c") && src[i + 1] === '"')) {
      let j = c === '"' ? i + 1 : i + 2;
      while (j < n && src[j] !== '"') j += src[j] === "\\" ? 2 : 1;
      skipTo(j + 1);
      continue;
    }
    if (c === "'" || (c === "b" && src[i + 1] === "'")) {
      const start = c === "'" ? i : i + 1;
      const ch = /^'(?:\\u\{[0-9a-fA-F_]+\}|\\x[0-9a-fA-F]{2}|\\.|[^\\'\n])'/u.exec(src.slice(start, start + 16));
      if (ch) { skipTo(start + ch[0].length); continue; }
      // A lifetime or label: 'a
      const lt = /^'[A-Za-z_][A-Za-z0-9_]*/.exec(src.slice(start, start + 100));
      skipTo(start + (lt ? lt[0].length : 1));
      continue;
    }
    const id = /^(?:r#)?[A-Za-z_][A-Za-z0-9_]*/.exec(src.slice(i, i + 200));
    if (id) {
      out.push({ t: "id", v: id[0].replace(/^r#/, ""), line });
      i += id[0].length;
      continue;
    }
    const num = /^[0-9][0-9A-Za-z_]*(?:\.[0-9][0-9A-Za-z_]*)?/.exec(src.slice(i, i + 100));
    if (num) { i += num[0].length; continue; }
    if (c === ":" && src[i + 1] === ":") {
      out.push({ t: "p", v: "::", line });
      i += 2;
      continue;
    }
    out.push({ t: "p", v: c, line });
    i++;
  }
  return out;
}

// ---------------------------------------------------------------- use trees

/**
 * Flattens the use tree starting at tokens[i] (just after `use`) into
 * { segs, alias, glob } entries; answers them and the index after the `;`.
 */
function parseUse(tokens, i) {
  const entries = [];
  function tree(prefix) {
    const segs = [...prefix];
    if (tokens[i]?.v === "::") i++; // a leading `::`
    for (;;) {
      const tk = tokens[i];
      if (!tk) return;
      if (tk.v === "{") {
        i++;
        while (tokens[i] && tokens[i].v !== "}") {
          tree(segs);
          if (tokens[i]?.v === ",") i++;
        }
        i++;
        return;
      }
      if (tk.v === "*") {
        i++;
        entries.push({ segs, alias: null, glob: true });
        return;
      }
      if (tk.t !== "id") return;
      i++;
      if (tk.v === "self" && prefix.length && segs.length === prefix.length && tokens[i]?.v !== "::") {
        // `a::{self, …}`: the module `a` itself.
        let alias = segs[segs.length - 1];
        if (tokens[i]?.v === "as") { alias = tokens[i + 1]?.v; i += 2; }
        entries.push({ segs, alias, glob: false });
        return;
      }
      segs.push(tk.v);
      if (tokens[i]?.v === "::") { i++; continue; }
      let alias = tk.v;
      if (tokens[i]?.v === "as") { alias = tokens[i + 1]?.v; i += 2; }
      entries.push({ segs, alias: alias === "_" ? null : alias, glob: false });
      return;
    }
  }
  tree([]);
  while (tokens[i] && tokens[i].v !== ";") i++;
  return { entries, next: i + 1 };
}

/** Whether the tokens before index `i` (a `use`) make it `pub`/`pub(…)`. */
function isPub(tokens, i) {
  let j = i - 1;
  if (tokens[j]?.v === ")") {
    while (j >= 0 && tokens[j].v !== "(") j--;
    j--;
  }
  return tokens[j]?.v === "pub";
}

// ---------------------------------------------------------------- modules

const ITEM_KEYWORDS = new Set(["struct", "enum", "fn", "trait", "type", "const", "static", "union"]);
const KEYWORDS_BEFORE_PATH = new Set(["crate", "super", "self"]);

function newModule(path, file) {
  return {
    path, // array of names; [] is the crate root
    file,
    children: new Map(), // name → module
    defs: new Set(),
    uses: [], // { segs, alias, glob, pub, line }
    paths: [], // { segs, line }
    idents: new Set(), // identifiers in code outside `use`
  };
}

const nameOf = (path) => (path.length ? path.join("::") : "crate");

/** Reads a crate from its source directory: every module, with its raw references. */
export function readCrate(srcDir) {
  const rootFile = ["lib.rs", "main.rs"].map((f) => join(srcDir, f)).find(existsSync);
  if (!rootFile) throw new Error(`${srcDir}: no lib.rs or main.rs`);
  const modules = new Map();
  const macros = new Map(); // #[macro_export] name → module (they live at the crate root)

  function readFile(file, path, dirForChildren) {
    const mod = newModule(path, file);
    modules.set(nameOf(path), mod);
    const tokens = tokenize(readFileSync(file, "utf8"));
    const stack = [{ mod, depth: -1 }];
    let depth = 0;
    let exported = false;
    for (let i = 0; i < tokens.length; i++) {
      const tk = tokens[i];
      const cur = stack[stack.length - 1].mod;
      if (tk.v === "{") { depth++; continue; }
      if (tk.v === "}") {
        depth--;
        if (stack.length > 1 && stack[stack.length - 1].depth === depth) stack.pop();
        continue;
      }
      if (tk.v === "#" && tokens[i + 1]?.v === "[" && tokens[i + 2]?.v === "macro_export") exported = true;
      if (tk.t !== "id") continue;
      if (tk.v === "macro_rules" && tokens[i + 1]?.v === "!" && tokens[i + 2]?.t === "id") {
        cur.defs.add(tokens[i + 2].v);
        if (exported) macros.set(tokens[i + 2].v, cur);
        exported = false;
        i += 2;
        continue;
      }
      if (tk.v === "mod" && tokens[i + 1]?.t === "id") {
        const name = tokens[i + 1].v;
        const childPath = [...cur.path, name];
        if (tokens[i + 2]?.v === ";") {
          // Only file modules declared in the file's own module (not in inline ones).
          const base = cur === mod ? dirForChildren : join(dirForChildren, ...cur.path.slice(path.length));
          const flat = join(base, `${name}.rs`);
          const nested = join(base, name, "mod.rs");
          const childFile = existsSync(flat) ? flat : existsSync(nested) ? nested : null;
          if (childFile) cur.children.set(name, readFile(childFile, childPath, join(base, name)));
          i += 2;
        } else if (tokens[i + 2]?.v === "{") {
          const inline = newModule(childPath, file);
          modules.set(nameOf(childPath), inline);
          cur.children.set(name, inline);
          stack.push({ mod: inline, depth });
          depth++;
          i += 2;
        }
        continue;
      }
      if (tk.v === "use") {
        const pub = isPub(tokens, i);
        const { entries, next } = parseUse(tokens, i + 1);
        for (const e of entries) cur.uses.push({ ...e, pub, line: tk.line });
        i = next - 1;
        continue;
      }
      if (ITEM_KEYWORDS.has(tk.v) && tokens[i + 1]?.t === "id") cur.defs.add(tokens[i + 1].v);
      cur.idents.add(tk.v);
      // The start of a path: `a::b…` not preceded by `::` (a leading `::` is external).
      if (tokens[i + 1]?.v === "::" && tokens[i - 1]?.v !== "::") {
        const segs = [tk.v];
        let j = i + 1;
        while (tokens[j]?.v === "::" && tokens[j + 1]?.t === "id") {
          segs.push(tokens[j + 1].v);
          j += 2;
        }
        cur.paths.push({ segs, line: tk.line });
        for (const s of segs) cur.idents.add(s);
        i = j - 1;
      }
    }
    return mod;
  }

  const root = readFile(rootFile, [], srcDir);
  return { srcDir, root, modules, macros };
}

// ---------------------------------------------------------------- resolution

const isPrefix = (a, b) => a.length < b.length && a.every((s, i) => b[i] === s);

/** The module an absolute path names, following imports to where items live. */
function resolveAbsolute(crate, segs, hops = 0) {
  let mod = crate.root;
  for (let i = 0; i < segs.length; i++) {
    const seg = segs[i];
    const child = mod.children.get(seg);
    if (child) { mod = child; continue; }
    if (hops > 16) break;
    const imp = mod.uses.find((u) => !u.glob && u.alias === seg && u.abs);
    if (imp) return resolveAbsolute(crate, [...imp.abs, ...segs.slice(i + 1)], hops + 1);
    if (!mod.defs.has(seg)) {
      for (const g of mod.uses.filter((u) => u.glob && u.abs)) {
        const target = resolveAbsolute(crate, g.abs, hops + 1).mod;
        if (target.children.has(seg) || target.defs.has(seg) || target.uses.some((u) => u.alias === seg)) {
          return resolveAbsolute(crate, [...g.abs, ...segs.slice(i)], hops + 1);
        }
      }
    }
    if (mod === crate.root && crate.macros.has(seg)) return { mod: crate.macros.get(seg), whole: false };
    return { mod, whole: false };
  }
  return { mod, whole: true };
}

/** Makes `segs`, written in `mod`, absolute; null where it names another crate or a local. */
function absolute(crate, mod, segs) {
  const [first, ...rest] = segs;
  if (first === "crate") return rest;
  if (first === "self") return [...mod.path, ...rest];
  if (first === "super") {
    let path = mod.path.slice(0, -1);
    let k = 1;
    while (segs[k] === "super") { path = path.slice(0, -1); k++; }
    return [...path, ...segs.slice(k)];
  }
  if (mod.children.has(first)) return [...mod.path, ...segs];
  const imp = mod.uses.find((u) => !u.glob && u.alias === first && u.abs);
  if (imp) return [...imp.abs, ...rest];
  // A name brought in by a glob import (`use super::*;` in tests).
  for (const g of mod.uses.filter((u) => u.glob && u.abs)) {
    const source = resolveAbsolute(crate, g.abs).mod;
    if (source.children.has(first)) return [...source.path, ...segs];
    const viaSource = source.uses.find((u) => !u.glob && u.alias === first && u.abs);
    if (viaSource) return [...viaSource.abs, ...rest];
  }
  return null;
}

/** The crate's module graph: module name → Map(target name → first reference). */
export function moduleGraph(crate, { parentsUseChildren = false } = {}) {
  const mods = [...crate.modules.values()];
  // `use` paths are absolute once their first segment is known; imports that use an
  // earlier import's name (`use a::b; use b::c;`) need a second round.
  for (let round = 0; round < 3; round++) {
    for (const m of mods) {
      for (const u of m.uses) {
        if (u.abs) continue;
        const first = u.segs[0];
        if (!first) continue;
        if (KEYWORDS_BEFORE_PATH.has(first) || m.children.has(first) || round > 0) {
          u.abs = absolute(crate, m, u.segs);
        }
      }
    }
  }
  const graph = new Map(mods.map((m) => [nameOf(m.path), new Map()]));
  const where = (m, line) => `${relative(ROOT, m.file)}:${line}`;
  const edge = (from, to, line) => {
    if (to === from || (parentsUseChildren && isPrefix(from.path, to.path))) return;
    const edges = graph.get(nameOf(from.path));
    if (!edges.has(nameOf(to.path))) edges.set(nameOf(to.path), where(from, line));
  };
  for (const m of mods) {
    for (const u of m.uses) {
      if (!u.abs) continue;
      const { mod: target, whole } = resolveAbsolute(crate, u.abs);
      // Importing a module's name is no dependency; the paths through it are.
      if (whole && !u.glob) continue;
      // A parent re-exporting its submodules' items is a façade, unless it uses them.
      if (u.pub && isPrefix(m.path, target.path) && !(u.alias && m.idents.has(u.alias))) continue;
      edge(m, target, u.line);
    }
    for (const p of m.paths) {
      const abs = absolute(crate, m, p.segs);
      if (abs) edge(m, resolveAbsolute(crate, abs).mod, p.line);
    }
  }
  return graph;
}

// ---------------------------------------------------------------- cycles

/** Strongly connected components of more than one module (Tarjan). */
function components(graph) {
  let index = 0;
  const idx = new Map();
  const low = new Map();
  const stack = [];
  const on = new Set();
  const out = [];
  function visit(v) {
    idx.set(v, index);
    low.set(v, index++);
    stack.push(v);
    on.add(v);
    for (const w of [...graph.get(v).keys()].sort()) {
      if (!idx.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v), low.get(w)));
      } else if (on.has(w)) low.set(v, Math.min(low.get(v), idx.get(w)));
    }
    if (low.get(v) === idx.get(v)) {
      const c = [];
      let w;
      do {
        w = stack.pop();
        on.delete(w);
        c.push(w);
      } while (w !== v);
      if (c.length > 1) out.push(new Set(c));
    }
  }
  for (const v of [...graph.keys()].sort()) if (!idx.has(v)) visit(v);
  return out;
}

/** The shortest path from `from` to `to` inside `within`, as a list of modules. */
function shortest(graph, from, to, within) {
  const prev = new Map([[from, null]]);
  const queue = [from];
  while (queue.length) {
    const v = queue.shift();
    if (v === to) break;
    for (const w of [...graph.get(v).keys()].sort()) {
      if (within.has(w) && !prev.has(w)) {
        prev.set(w, v);
        queue.push(w);
      }
    }
  }
  const path = [];
  for (let v = to; v !== null; v = prev.get(v)) path.unshift(v);
  return path;
}

/**
 * Cycles covering every edge that lies on one: for each such edge a → b not yet on a
 * printed cycle, the shortest way back from b to a. Each cycle is [a, b, …, a], with
 * `group`, the index of the set of modules tied together that it belongs to.
 */
export function findCycles(graph) {
  const cycles = [];
  const covered = new Set();
  for (const [group, scc] of components(graph).entries()) {
    for (const a of [...scc].sort()) {
      for (const b of [...graph.get(a).keys()].sort()) {
        if (!scc.has(b) || covered.has(`${a}>${b}`)) continue;
        const cycle = [a, ...shortest(graph, b, a, scc)];
        for (let k = 0; k + 1 < cycle.length; k++) covered.add(`${cycle[k]}>${cycle[k + 1]}`);
        cycles.push(Object.assign(cycle, { group }));
      }
    }
  }
  return cycles;
}

/** Cycles of the crate in `srcDir`, each with where its steps are written. */
export function cyclesIn(srcDir, options) {
  const graph = moduleGraph(readCrate(srcDir), options);
  return findCycles(graph).map((path) => ({
    path: [...path],
    group: path.group,
    steps: path.slice(0, -1).map((from, k) => ({ from, to: path[k + 1], at: graph.get(from).get(path[k + 1]) })),
  }));
}

function main(argv) {
  const report = argv.includes("--report");
  const dirs = argv.filter((a) => !a.startsWith("--"));
  const crates = dirs.length ? dirs : [join(ROOT, "core", "src"), join(ROOT, "src")];
  let total = 0;
  for (const dir of crates) {
    const cycles = cyclesIn(dir, { parentsUseChildren: argv.includes("--parents-use-children") });
    total += cycles.length;
    const label = relative(ROOT, dir) || dir;
    if (!cycles.length) {
      console.log(`${label}: no module cycles`);
      continue;
    }
    const groups = new Set(cycles.map((c) => c.group)).size;
    console.log(`${label}: ${cycles.length} module cycle${cycles.length === 1 ? "" : "s"} in ${groups} group${groups === 1 ? "" : "s"} of modules tied together`);
    let group = -1;
    for (const c of cycles) {
      if (c.group !== group) {
        group = c.group;
        const members = [...new Set(cycles.filter((d) => d.group === group).flatMap((d) => d.path))].sort();
        console.log(`  [${members.join(", ")}]`);
      }
      console.log(`    ${c.path.join(" → ")}`);
      for (const s of c.steps) console.log(`        ${s.from} → ${s.to}   ${s.at}`);
    }
  }
  if (total && !report) {
    console.log("\nModules must not depend on each other in a cycle: move what both need below them.");
    process.exitCode = 1;
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) main(process.argv.slice(2));
