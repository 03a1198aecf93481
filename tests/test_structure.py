"""The package's shape, read from its source with ``ast`` (no TensorFlow, no imports).

- Data flows one way: no import cycle among ``lenet_keras``'s own modules, imports inside
  functions included (``lenet_keras/__init__.py``'s lazy ``_API`` table is not an import).
- Every function reads on one screen: at most 60 lines from ``def`` to its last line.
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "lenet_keras"
MAX_FUNCTION_LINES = 60


def parse_package():
    """{module name ('training', '__init__', ...): its ast.Module}."""
    return {path.stem: ast.parse(path.read_text(), filename=str(path))
            for path in sorted(PACKAGE.glob("*.py"))}


def import_graph(trees):
    """{module: set of the package's modules it imports}, wherever the import statement
    sits (top level, function, method). ``from lenet_keras import name`` points at the
    module ``name`` when there is one, else at ``__init__``."""
    graph = {name: set() for name in trees}

    def target(dotted):  # 'lenet_keras.data' -> 'data'; 'lenet_keras' -> '__init__'
        parts = dotted.split(".")
        if parts[0] != "lenet_keras":
            return None
        return parts[1] if len(parts) > 1 else "__init__"

    for name, tree in trees.items():
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found = [target(alias.name) for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:  # relative: '.', '.data', ...
                    base = "lenet_keras" + (f".{node.module}" if node.module else "")
                else:
                    base = node.module or ""
                found = [target(base)]
                if found[0] == "__init__":  # from lenet_keras import data, errors
                    found = [alias.name if alias.name in trees else "__init__"
                             for alias in node.names]
            else:
                continue
            graph[name].update(t for t in found if t in trees and t != name)
    return graph


def find_cycles(graph):
    """Every elementary cycle of the graph, each as a list that starts at its smallest
    module and ends where it started: ['callbacks', 'runs', 'training', 'callbacks']."""
    order = sorted(graph)
    cycles = []
    for start in order:
        # Cycles whose smallest module is `start`: search only modules after it.
        allowed = {node for node in order if node >= start}
        stack = [(start, [start])]
        while stack:
            node, path = stack.pop()
            for nxt in sorted(graph[node]):
                if nxt == start:
                    cycles.append(path + [start])
                elif nxt in allowed and nxt not in path:
                    stack.append((nxt, path + [nxt]))
    return sorted(cycles, key=lambda cycle: (len(cycle), cycle))


def long_functions(trees, limit=MAX_FUNCTION_LINES):
    """[(file, qualified name, lines)] for every function or method longer than limit,
    counted from its ``def`` line to its last line, docstring included."""
    found = []

    def visit(node, prefix, file):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                qualified = f"{prefix}{child.name}"
                if not isinstance(child, ast.ClassDef):
                    lines = child.end_lineno - child.lineno + 1
                    if lines > limit:
                        found.append((file, qualified, lines))
                visit(child, qualified + ".", file)
            else:
                visit(child, prefix, file)

    for name, tree in trees.items():
        visit(tree, "", f"lenet_keras/{name}.py")
    return sorted(found, key=lambda row: -row[2])


def test_the_graph_sees_every_import_form():
    trees = {
        "a": ast.parse("from lenet_keras.b import x\n"),
        "b": ast.parse("def f():\n    from . import c\n"),
        "c": ast.parse("import lenet_keras.d as d\n"),
        "d": ast.parse("from .a import y\nfrom lenet_keras import e, version\n"),
        "e": ast.parse("import os, lenet_keras\n"),
        "__init__": ast.parse("_API = {'f': ('lenet_keras.a', 'f')}\n"),
    }
    graph = import_graph(trees)
    assert graph == {"a": {"b"}, "b": {"c"}, "c": {"d"}, "d": {"a", "e", "__init__"},
                     "e": {"__init__"}, "__init__": set()}
    assert find_cycles(graph) == [["a", "b", "c", "d", "a"]]


def test_no_import_cycle():
    cycles = find_cycles(import_graph(parse_package()))
    if cycles:
        pytest.fail(f"{len(cycles)} import cycle(s) among lenet_keras modules:\n"
                    + "\n".join(" -> ".join(cycle) for cycle in cycles), pytrace=False)


def test_no_function_longer_than_60_lines():
    found = long_functions(parse_package())
    if found:
        pytest.fail(f"{len(found)} function(s) longer than {MAX_FUNCTION_LINES} lines:\n"
                    + "\n".join(f"{file}: {name} ({lines} lines)"
                                for file, name, lines in found), pytrace=False)
