"""The server's middle has no import cycle, counting imports under ``TYPE_CHECKING`` (a cycle
hidden there is still a cycle of concepts), and the connection and the membership import no
feature: features depend on them through :mod:`server.context`, never the other way round."""

from __future__ import annotations

import ast
from pathlib import Path

SERVER = Path(__file__).resolve().parents[3] / "server"


def module_name(path: Path) -> str:
    parts = path.relative_to(SERVER.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(source: str, name: str, modules: set[str], *, package: bool = False) -> set[str]:
    """The ``server`` modules that module ``name`` imports, anywhere in its ``source``
    (``TYPE_CHECKING`` blocks and function bodies included)."""
    package_name = name if package else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package_name.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            # ``from . import x`` imports the module ``x`` when there is one
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for target in targets:
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def graph() -> dict[str, set[str]]:
    paths = sorted(SERVER.rglob("*.py"))
    modules = {module_name(p) for p in paths}
    return {
        module_name(p): imports_of(
            p.read_text(), module_name(p), modules, package=p.name == "__init__.py"
        )
        for p in paths
    }


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def reachable(edges: dict[str, set[str]], start: str) -> set[str]:
    seen: set[str] = set()
    todo = [start]
    while todo:
        for nxt in edges.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def test_the_scanner_sees_type_checking_and_relative_imports() -> None:
    source = (
        "from typing import TYPE_CHECKING\n"
        "from .. import protocol\n"
        "if TYPE_CHECKING:\n"
        "    from ..rooms import Room\n"
        "def f():\n"
        "    from . import chat\n"
    )
    modules = {"server", "server.rooms", "server.protocol", "server.features.chat"}
    found = imports_of(source, "server.features.probe", modules)
    assert found == {"server", "server.rooms", "server.protocol", "server.features.chat"}


def test_server_has_no_import_cycle() -> None:
    assert cycles(graph()) == []


def test_a_cycle_would_be_found() -> None:
    edges = graph()
    edges["server.rooms"] = {*edges["server.rooms"], "server.membership"}
    assert any("server.rooms" in c and "server.membership" in c for c in cycles(edges))


def test_connection_and_membership_import_no_feature() -> None:
    edges = graph()
    for core in ("server.connection", "server.membership", "server.context"):
        if core not in edges:
            continue
        features = {m for m in reachable(edges, core) if m.startswith("server.features")}
        assert features == set(), f"{core} reaches {sorted(features)}"


def test_features_reach_back_into_no_shell() -> None:
    """A feature sees rooms and connections through server.context only."""
    edges = graph()
    shells = {"server.signaling", "server.connection", "server.membership", "server.app"}
    for module in edges:
        if module.startswith("server.features"):
            assert not (reachable(edges, module) & shells), module
