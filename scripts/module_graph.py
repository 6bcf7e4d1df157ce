#!/usr/bin/env python3
"""Prints the graph of `crate::` imports between the server's top-level modules and fails if it has
a cycle. Used by a test (server/tests/layering.rs) and by hand: python3 scripts/module_graph.py."""
import os, re, sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "server", "src")
PATH = re.compile(r"\bcrate::([a-z_][a-z0-9_]*)")
GROUP = re.compile(r"\buse crate::\{([^;]*)\}", re.S)

def top_module(path):
    rel = os.path.relpath(path, ROOT)
    first = rel.split(os.sep)[0]
    return first[:-3] if first.endswith(".rs") else first

def strip_comments(text):
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return "\n".join(line.split("//")[0] for line in text.splitlines())

def edges():
    graph = {}
    for dirpath, _, files in os.walk(ROOT):
        for name in files:
            if not name.endswith(".rs"):
                continue
            path = os.path.join(dirpath, name)
            module = top_module(path)
            if module in ("lib", "main"):
                continue
            text = strip_comments(open(path, encoding="utf-8").read())
            targets = set(PATH.findall(text))
            for group in GROUP.findall(text):
                targets |= {item.strip().split("::")[0] for item in group.split(",") if item.strip()}
            graph.setdefault(module, set()).update(t for t in targets if t != module and t != "")
    return graph

def cycle(graph):
    state, stack = {}, []
    def visit(node):
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in graph:
                continue
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None
    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None

if __name__ == "__main__":
    graph = edges()
    for module in sorted(graph):
        print(f"{module:12} -> {', '.join(sorted(t for t in graph[module] if t in graph))}")
    found = cycle(graph)
    if found:
        print("cycle: " + " -> ".join(found))
        sys.exit(1)
    print("no cycle between the server's top-level modules")
