#!/usr/bin/env python3
"""Import circles between the modules of each crate (model, node, checks).

Checked at two levels: among the top-level modules of a crate (`node/src`:
the layers `runtime`, `ops`, `harness`), and among the children of each
top-level directory module (`runtime/core` vs `runtime/shell`, …), since
with layers the top level alone says little.

A module's edges: every `crate::NAME` (top level) or `crate::DIR::NAME`
(children of DIR; and `super::NAME` in DIR's own children `DIR/x.rs`,
`DIR/x/mod.rs`) its code mentions (use lines and paths; not comments, where
`crate::x` is a link for the reader). Test files (`tests.rs`, `*_tests.rs`,
included under `#[cfg(test)]`) are left out: a test may use a layer above
the one it tests. Prints each circle found (strongly connected components
of size > 1) and exits 1 if any. CI runs it (`.ci/run`)."""
import os, re, sys


def names(text, prefix):
    """The NAMEs in `prefix::NAME` and `prefix::{NAME, NAME::x, …}`."""
    p = re.escape(prefix)
    refs = set(re.findall(p + r'::(\w+)', text))
    for grp in re.findall(p + r'::\{([^}]*)\}', text):
        refs |= {m.group(1) for x in grp.split(',') if (m := re.match(r'\s*(\w+)', x))}
    return refs


def code(path):
    text = open(path, encoding='utf-8', errors='replace').read()
    text = re.sub(r'//[^\n]*', '', text)  # comments, doc comments included
    return re.sub(r'#\[cfg\(test\)\]\s*mod\s+\w+\s*\{.*', '', text, flags=re.S)  # test modules (heuristic)


def graph(src, group=None):
    """Edges among the top-level modules of `src`, or among the children of
    its top-level directory `group`."""
    base = os.path.join(src, group) if group else src
    prefix = 'crate::' + group if group else 'crate'
    g = {}
    for root, _, files in os.walk(base):
        for f in files:
            if not f.endswith('.rs') or f == 'tests.rs' or f.endswith('_tests.rs'):
                continue
            p = os.path.join(root, f)
            rel = os.path.relpath(p, base).split(os.sep)
            m = rel[0][:-3] if rel[0].endswith('.rs') else rel[0]
            if m in ('lib', 'main', 'mod', 'bin'):
                continue
            text = code(p)
            refs = names(text, prefix)
            if group and (len(rel) == 1 or rel[1:] == ['mod.rs']):
                refs |= names(text, 'super')
            g.setdefault(m, set()).update(r for r in refs if r != m)
    mods = set(g)
    return {m: {r for r in rs if r in mods} for m, rs in g.items()}


def sccs(g):
    index, low, stack, on, out, i = {}, {}, [], set(), [], [0]
    def visit(v):
        index[v] = low[v] = i[0]; i[0] += 1; stack.append(v); on.add(v)
        for w in g.get(v, ()):
            if w not in index:
                visit(w); low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop(); on.discard(w); comp.append(w)
                if w == v: break
            out.append(comp)
    sys.setrecursionlimit(10000)
    for v in g:
        if v not in index: visit(v)
    return [c for c in out if len(c) > 1]


bad = 0
for crate in sys.argv[1:] or ['model/src', 'node/src', 'checks/src']:
    if not os.path.isdir(crate):
        continue
    groups = sorted(d for d in os.listdir(crate)
                    if os.path.isdir(os.path.join(crate, d)) and d != 'bin')
    for group in [None] + groups:
        for c in sccs(graph(crate, group)):
            bad += 1
            where = f"{crate}/{group}" if group else crate
            print(f"{where}: circle among {', '.join(sorted(c))}")
print(f"import circles: {bad}")
sys.exit(1 if bad else 0)
