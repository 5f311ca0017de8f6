#!/usr/bin/env python3
"""Import circles inside each crate: which of a crate's modules use which.

A module is a source file (`a/b.rs` and `a/b/mod.rs` are `a::b`). A module uses
another when its non-test code names it by path: `crate::a::b`, `super::…`,
`self::…`, or a child declared with `mod`. Each use goes to the longest module
the path names. A circle is a strongly connected set of two or more modules;
a parent reaching a child through `mod` counts like any other use, so a child
that uses its parent's items and a parent that uses the child's are a circle.

    tools/import_cycles.py            # exit 1 and one line per circle if any

`make lint` runs it.
"""

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def modules(src):
    found = {}
    for path in src.rglob("*.rs"):
        parts = list(path.relative_to(src).with_suffix("").parts)
        if parts[-1] in ("mod", "lib", "main"):
            parts = parts[:-1]
        found[tuple(parts)] = path
    return found


def code_of(path):
    text = path.read_text()
    cut = text.find("#[cfg(test)]")
    text = text if cut < 0 else text[:cut]
    text = re.sub(r"//[^\n]*", "", text)
    return re.sub(r'"(\\.|[^"\\])*"', '""', text)


def uses(module, code, known):
    """The modules `module`'s code names."""
    names = set()
    # `use a::{b::{c, d}, e}` is flattened to the paths it names.
    for statement in re.findall(r"\buse\s+([^;]+);", code):
        names.update(flatten(statement.replace(" ", "").replace("\n", "")))
    names.update(re.findall(r"\b((?:crate|super|self)(?:::\w+)+)", code))
    for child in re.findall(r"^\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+(\w+)\s*;", code, re.M):
        names.add(f"self::{child}")
    targets = set()
    for name in names:
        parts = name.split("::")
        if parts[0] == "crate":
            absolute = parts[1:]
        elif parts[0] in ("super", "self"):
            base = list(module)
            while parts and parts[0] in ("super", "self"):
                if parts.pop(0) == "super":
                    base = base[:-1]
            absolute = base + parts
        else:
            continue
        for length in range(len(absolute), -1, -1):
            if tuple(absolute[:length]) in known:
                if tuple(absolute[:length]) != module:
                    targets.add(tuple(absolute[:length]))
                break
    return targets


def flatten(statement):
    """`a::{b, c::{d}}` → a::b, a::c::d."""
    depth, items = 0, []
    if "{" not in statement:
        return [statement.split(" as ")[0]]
    head, rest = statement.split("{", 1)
    rest = rest[:-1] if rest.endswith("}") else rest
    part = ""
    for ch in rest:
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        if ch == "," and depth == 0:
            items.append(part)
            part = ""
        else:
            part += ch
    items.append(part)
    paths = []
    for item in filter(None, items):
        for inner in flatten(item):
            paths.append(head + inner if inner != "self" else head.rstrip(":"))
    return paths


def circles(graph):
    """Tarjan's strongly connected components with more than one module."""
    index, low, stack, on, found = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(component)

    for node in graph:
        if node not in index:
            visit(node)
    return found


def main():
    failed = False
    for src in sorted(ROOT.glob("crates/*/src")):
        known = modules(src)
        graph = {m: uses(m, code_of(p), known) for m, p in known.items()}
        for circle in circles(graph):
            failed = True
            names = ", ".join(sorted("::".join(m) or "(root)" for m in circle))
            print(f"import_cycles: {src.parent.name}: a circle of {names}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
