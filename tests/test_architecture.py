"""The layout rules of docs/architecture.md, checked on the source: small files, no import cycle between
modules of the package (imports inside functions count; ``TYPE_CHECKING`` blocks and the package root's
lazy ``__getattr__`` do not), HDF5 opened only by the shard layer and the object store, and a config layer
that imports nothing from ``run/``."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "blursynth"
MAX_LINES = 400
H5_OWNERS = ("blursynth.shards", "blursynth.objects.store")


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


MODULES = _modules()


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    skip = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip |= {id(n) for n in ast.walk(node)}
    return skip


def imports_of(name: str) -> set[str]:
    """Every ``blursynth`` module ``name`` imports, at any depth of its code, resolved to a module file."""
    path = MODULES[name]
    tree = ast.parse(path.read_text())
    skip = _type_checking_nodes(tree)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            candidates = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parents = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parents + ([base] if base else []))
            candidates = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        else:
            continue
        for candidate in candidates:
            while candidate and candidate not in MODULES:
                candidate = candidate.rpartition(".")[0]
            if candidate and candidate != name:
                targets.add(candidate)
    return targets


def import_cycles() -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), the package root left out."""
    graph = {m: imports_of(m) - {"blursynth"} for m in MODULES if m != "blursynth"}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return cycles


def test_the_checker_finds_a_cycle_through_a_function_level_import(tmp_path, monkeypatch):
    a, b = tmp_path / "a.py", tmp_path / "b.py"
    a.write_text("from blursynth.b import g\n")
    b.write_text("def g():\n    from blursynth.a import f\n")
    monkeypatch.setattr(__import__(__name__), "MODULES", {"blursynth.a": a, "blursynth.b": b})
    assert import_cycles() == [["blursynth.a", "blursynth.b"]]


def test_no_import_cycle_between_modules():
    assert import_cycles() == []


@pytest.mark.parametrize("name", sorted(MODULES))
def test_files_stay_small(name):
    lines = len(MODULES[name].read_text().splitlines())
    assert lines <= MAX_LINES, f"{MODULES[name]}: {lines} lines (split it: one concept per module)"


def test_only_the_shard_layer_and_the_object_store_open_hdf5():
    users = []
    for name, path in MODULES.items():
        tree = ast.parse(path.read_text())
        if any(isinstance(n, ast.Import) and any(a.name == "h5py" for a in n.names) for n in ast.walk(tree)):
            users.append(name)
    assert [u for u in users if not u.startswith(H5_OWNERS)] == []


def test_the_config_layer_imports_nothing_from_run():
    for name in MODULES:
        if name.startswith("blursynth.config"):
            assert not [m for m in imports_of(name) if m.startswith("blursynth.run")], name
