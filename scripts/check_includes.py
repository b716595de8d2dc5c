#!/usr/bin/env python3
"""Checks the include graph of the product's C sources: no cycle between the files of a layer,
and no layer including a header of a layer above it or of one it may not reach.

    scripts/check_includes.py [REPO]

Layers, bottom up: core/ -> kernels/ -> index/ -> server/; proto/glue/, cluster/ and clients/
beside server/. Allowed targets per layer (the layer itself always): kernels: core; index: core
(kernels/ is linked privately, and index/ may include its headers); cluster: core, proto (the
engines, never the collections); server: core, index, proto, cluster; clients: core, index,
proto. A quoted include is resolved against the including file's directory, then
each include directory of the layers (generated protobuf headers are outside the tree and
ignored). Prints every cycle and every forbidden include; exits 1 when there is one.
Run by CTest (Layers.IncludeGraph)."""
import os
import re
import sys

repo = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), ".."))
LAYERS = {
    "core": ["core/include", "core/src"],
    "kernels": ["kernels/include", "kernels/common", "kernels/cpu", "kernels/cuda"],
    "index": ["index/include", "index/src"],
    "proto": ["proto/glue"],
    "cluster": ["cluster/include", "cluster/src"],
    "server": ["server/src"],
    "clients": ["clients/c", "clients/cli", "clients/include"],
}
MAY_INCLUDE = {
    "core": {"core"},
    "kernels": {"core", "kernels"},
    "index": {"core", "kernels", "index"},
    "proto": {"core", "proto"},
    "cluster": {"core", "proto", "cluster"},
    "server": {"core", "index", "proto", "cluster", "server"},
    "clients": {"core", "index", "proto", "clients"},
}
INC = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def layer_of(path):
    rel = os.path.relpath(path, repo)
    for name, dirs in LAYERS.items():
        if any(rel == d or rel.startswith(d + "/") for d in dirs):
            return name
    return None


def sources():
    for dirs in LAYERS.values():
        for d in dirs:
            full = os.path.join(repo, d)
            if not os.path.isdir(full):
                continue
            for root, _, files in os.walk(full):
                for f in files:
                    if f.endswith((".c", ".h", ".cu")):
                        yield os.path.join(root, f)


def resolve(inc, frm):
    cands = [os.path.join(os.path.dirname(frm), inc)]
    cands += [os.path.join(repo, d, inc) for dirs in LAYERS.values() for d in dirs]
    for c in cands:
        if os.path.isfile(c):
            return os.path.normpath(c)
    return None


def main():
    graph, problems = {}, []
    for f in sources():
        with open(f, encoding="utf-8", errors="replace") as fh:
            text = fh.read()
        edges = []
        for inc in INC.findall(text):
            t = resolve(inc, f)
            if t is None:
                continue  # generated (protobuf-c) or system-like
            lf, lt = layer_of(f), layer_of(t)
            if lt not in MAY_INCLUDE[lf]:
                problems.append(f"{os.path.relpath(f, repo)} ({lf}) includes "
                                f"{os.path.relpath(t, repo)} ({lt}): {lf}/ may not include {lt}/")
            edges.append(t)
        graph[os.path.normpath(f)] = edges
    # Cycles: depth-first search with colours; report each back edge's cycle once.
    state, stack, seen = {}, [], set()

    def visit(n):
        state[n] = 1
        stack.append(n)
        for m in graph.get(n, []):
            if state.get(m) == 1:
                cyc = stack[stack.index(m):] + [m]
                key = frozenset(cyc)
                if key not in seen:
                    seen.add(key)
                    problems.append("include cycle: " + " -> ".join(os.path.relpath(x, repo) for x in cyc))
            elif m in graph and state.get(m) is None:
                visit(m)
        stack.pop()
        state[n] = 2

    sys.setrecursionlimit(10000)
    for n in sorted(graph):
        if state.get(n) is None:
            visit(n)
    for p in problems:
        print(p)
    print(f"{len(graph)} files, {sum(len(v) for v in graph.values())} includes inside the tree, "
          f"{len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
