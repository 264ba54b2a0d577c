#!/usr/bin/env python3
"""Import circles between the top-level modules of each crate (model, node, checks).

A module's edges: every `crate::NAME` its code mentions (use lines and paths; not
comments, where `crate::x` is a link for the reader). Test files (`tests.rs`,
`*_tests.rs`, included under `#[cfg(test)]`) are left out: a test may use a layer
above the one it tests. Prints each circle found (strongly connected components of
size > 1) and exits 1 if any. CI runs it (`.ci/run`)."""
import os, re, sys
from itertools import chain

def top_module(src, path):
    rel = os.path.relpath(path, src)
    first = rel.split(os.sep)[0]
    return first[:-3] if first.endswith('.rs') else first

def graph(src):
    g = {}
    for root, _, files in os.walk(src):
        for f in files:
            if not f.endswith('.rs'):
                continue
            if f == 'tests.rs' or f.endswith('_tests.rs'):
                continue
            p = os.path.join(root, f)
            m = top_module(src, p)
            if m in ('lib', 'main'):
                continue
            text = open(p, encoding='utf-8', errors='replace').read()
            text = re.sub(r'//[^\n]*', '', text)  # comments, doc comments included
            text = re.sub(r'#\[cfg\(test\)\]\s*mod\s+\w+\s*\{.*', '', text, flags=re.S)  # drop test modules (heuristic)
            refs = set(re.findall(r'crate::(\w+)', text))
            for grp in re.findall(r'crate::\{([^}]*)\}', text):
                refs |= set(re.findall(r'^\s*(\w+)', x)[0] for x in grp.split(',') if re.findall(r'^\s*(\w+)', x))
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
    for c in sccs(graph(crate)):
        bad += 1
        print(f"{crate}: circle among {', '.join(sorted(c))}")
print(f"import circles: {bad}")
sys.exit(1 if bad else 0)
