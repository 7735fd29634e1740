#!/usr/bin/env python3
"""Checks that the top-level modules of src/ import one way. Reads every
`crate::` path in src/ (including the names in `use crate::{a, b::c}`
groups); a module is a file `src/x.rs` or a folder `src/x/`. Fails when
  - two modules import each other, directly or through others (a cycle), or
  - a module imports one of a higher layer than its own (LAYERS below, the
    table docs/architecture.md draws), or
  - a module is in no layer.
Prints the module graph with --graph."""
import pathlib
import re
import sys

SRC = pathlib.Path(__file__).resolve().parent.parent / "src"


# Lowest first. A module may import modules of its own layer or below.
LAYERS = [
    ("foundation", {"core", "clock", "sync", "net"}),
    ("below their users", {"auth", "tls"}),
    ("settings", {"config"}),
    ("observability", {"telemetry", "rpc_trace", "metrics"}),
    ("store", {"store"}),
    ("service helpers", {"protection", "shield", "throttling", "alerting", "rls_rules"}),
    ("service", {"service"}),
    ("operations", {"operations"}),
    ("edge classifier", {"classify"}),
    ("edges", {"grpc", "http"}),
    ("wiring", {"app", "cli"}),
]


def layer_of(module: str) -> int | None:
    for rank, (_, modules) in enumerate(LAYERS):
        if module in modules:
            return rank
    return None


def top_module(path: pathlib.Path) -> str | None:
    rel = path.relative_to(SRC).parts
    if len(rel) == 1:
        name = rel[0].removesuffix(".rs")
        return None if name in ("lib", "main") else name
    return rel[0]


def brace_group(text: str, start: int) -> str:
    depth = 0
    for i in range(start, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return text[start + 1 : i]
    return ""


def top_names(group: str) -> list[str]:
    """The first path segment of each item of a `{...}` use group."""
    names, depth, item = [], 0, ""
    for ch in group + ",":
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        if ch == "," and depth == 0:
            m = re.match(r"\s*(\w+)", item)
            if m:
                names.append(m.group(1))
            item = ""
        else:
            item += ch
    return names


def strip_comments(text: str) -> str:
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return re.sub(r"//[^\n]*", "", text)


def edges() -> dict[str, set[str]]:
    modules = {top_module(p) for p in SRC.rglob("*.rs")} - {None}
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for path in SRC.rglob("*.rs"):
        me = top_module(path)
        if me is None:
            continue
        text = strip_comments(path.read_text())
        for m in re.finditer(r"crate::(\{|\w+)", text):
            if m.group(1) == "{":
                targets = top_names(brace_group(text, m.end() - 1))
            else:
                targets = [m.group(1)]
            for t in targets:
                if t in modules and t != me:
                    graph[me].add(t)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    found, seen = [], set()
    for start in sorted(graph):
        stack = [(start, [start])]
        while stack:
            node, path = stack.pop()
            for nxt in sorted(graph[node]):
                if nxt == start:
                    key = frozenset(path)
                    if key not in seen:
                        seen.add(key)
                        found.append(path + [start])
                elif nxt not in path and nxt > start:
                    stack.append((nxt, path + [nxt]))
    return found


def main() -> int:
    graph = edges()
    if "--graph" in sys.argv:
        for m in sorted(graph):
            print(f"{m:12} -> {', '.join(sorted(graph[m])) or '-'}")
    problems = []
    for c in cycles(graph):
        problems.append("cycle: " + " -> ".join(c))
    for module in sorted(graph):
        rank = layer_of(module)
        if rank is None:
            problems.append(f"{module}: in no layer (add it to LAYERS in scripts/check-layers.py)")
            continue
        for target in sorted(graph[module]):
            target_rank = layer_of(target)
            if target_rank is not None and target_rank > rank:
                problems.append(
                    f"{module} ({LAYERS[rank][0]}) imports {target} ({LAYERS[target_rank][0]}), a higher layer"
                )
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        print(f"{len(problems)} layering problem(s) between top-level modules of src/", file=sys.stderr)
        return 1
    print(f"layers: {len(graph)} top-level modules of src/ in {len(LAYERS)} layers, imports run one way, no cycle")
    return 0


if __name__ == "__main__":
    sys.exit(main())
