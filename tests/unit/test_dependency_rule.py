"""The README's dependency rule, checked on the source: data flows server → media → interpret,
and only the server composes the two.

- ``interpret`` imports nothing else of Parley;
- ``media`` imports of ``interpret`` only its leaf modules (:data:`INTERPRET_LEAVES`: the frame
  types it hands over, the frame codec and the worker-process plumbing both packages share);
- those leaves import nothing of Parley, not even the rest of ``interpret``;
- ``broadcast`` (the broadcast worker) speaks the wire protocol only: it imports nothing else
  of Parley.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PARLEY = ("server", "media", "interpret", "broadcast", "web", "config", "bench", "tests")
INTERPRET_LEAVES = frozenset({"interpret.frames", "interpret.framing", "interpret.processes"})


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports (at any depth: lazy imports count), absolute names."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                prefix = ".".join([*base, node.module] if node.module else base)
            else:
                prefix = node.module or ""
            found.add(prefix)
            # ``from interpret import processes`` imports the module interpret.processes
            found.update(f"{prefix}.{alias.name}" for alias in node.names)
    return found


def _parley_imports(path: Path) -> set[str]:
    """The Parley modules among :func:`_imports` (a ``from x import name`` counts as x.name
    only where x.name is a module)."""
    result = set()
    for name in _imports(path):
        top = name.split(".")[0]
        if top not in PARLEY:
            continue
        file = ROOT.joinpath(*name.split("."))
        if file.with_suffix(".py").is_file() or (file / "__init__.py").is_file():
            result.add(name)
    return result


def _sources(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("path", _sources("interpret"), ids=lambda p: p.name)
def test_interpret_imports_nothing_else_of_parley(path: Path) -> None:
    others = {m for m in _parley_imports(path) if m.split(".")[0] != "interpret"}
    assert not others, f"{_module_name(path)} imports {sorted(others)}"


@pytest.mark.parametrize("path", _sources("broadcast"), ids=lambda p: p.name)
def test_broadcast_imports_nothing_else_of_parley(path: Path) -> None:
    others = {m for m in _parley_imports(path) if m.split(".")[0] != "broadcast"}
    assert not others, f"{_module_name(path)} imports {sorted(others)}"


@pytest.mark.parametrize("path", _sources("media"), ids=lambda p: p.name)
def test_media_imports_only_interprets_leaves(path: Path) -> None:
    imported = _parley_imports(path)
    server = {m for m in imported if m.split(".")[0] == "server"}
    interpret = {m for m in imported if m.split(".")[0] == "interpret" and m != "interpret"}
    assert not server, f"{_module_name(path)} imports {sorted(server)}"
    assert interpret <= INTERPRET_LEAVES, f"{_module_name(path)} imports {sorted(interpret)}"


@pytest.mark.parametrize("leaf", sorted(INTERPRET_LEAVES))
def test_the_shared_leaves_import_nothing_of_parley(leaf: str) -> None:
    path = ROOT.joinpath(*leaf.split(".")).with_suffix(".py")
    assert not _parley_imports(path), f"{leaf} imports {sorted(_parley_imports(path))}"


def test_the_rule_sees_imports_of_every_form() -> None:
    """The checker itself: absolute, relative, from-package and lazy imports are all found."""
    path = ROOT / "media" / "process.py"
    assert {"interpret.framing", "interpret.processes"} <= _parley_imports(path)
    assert "media.api" in _parley_imports(path)  # from .api import ...
    assert "interpret.wire" in _parley_imports(ROOT / "interpret" / "worker.py")
