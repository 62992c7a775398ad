"""The package's layout is a property the tests keep: each layer imports only from the layers below it (at module top
and inside functions alike), no module is over 450 lines and no function over 50.

The layers (DESIGN.md, the README's "How the code is laid out"), ground first; a module may import from its own
layer and the ones below.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "advdla"
LAYERS = {
    "base": ("errors", "atomic", "progress", "registry", "criteria", "precision"),
    "core": ("components", "attribution", "patching", "models", "corpus"),
    "producers": ("analysis", "search", "tasks"),
    "benchmark data": ("suites",),
    "consumers": ("methods", "scoring", "leaderboard"),
    "face": ("cli", "commands", "pipeline", "report", "api"),
}
RANK = {top: i for i, tops in enumerate(LAYERS.values()) for top in tops}
MAX_MODULE_LINES, MAX_FUNCTION_LINES = 450, 50


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if p.name != "__init__.py" or p.parent != PACKAGE)


def _top(path: Path) -> str:
    """The first name under advdla/ a module belongs to (``advdla/search/engine.py`` -> ``search``)."""
    return path.relative_to(PACKAGE).parts[0].removesuffix(".py")


def _imported_tops(tree: ast.AST) -> set[tuple[str, int]]:
    """(top-level advdla name, line) for every advdla import in the module, wherever it stands."""
    found = set()
    for node in ast.walk(tree):
        names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                 else [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else [])
        for name in names:
            parts = name.split(".")
            if parts[0] == "advdla" and len(parts) > 1:
                found.add((parts[1], node.lineno))
            elif parts[0] == "advdla" and isinstance(node, ast.ImportFrom):
                found.update((a.name, node.lineno) for a in node.names)
    return found


def test_every_module_is_in_a_layer():
    assert {_top(p) for p in _modules()} <= set(RANK), "a module outside the layers table: add it to LAYERS"


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_run_only_downward(path):
    own = RANK[_top(path)]
    upward = [f"{name} (line {line})" for name, line in sorted(_imported_tops(ast.parse(path.read_text())))
              if name in RANK and RANK[name] > own]
    assert not upward, f"{path.name} ({list(LAYERS)[own]}) imports from a higher layer: {upward}"


@pytest.mark.parametrize("path", [p for p in _modules() if RANK.get(_top(p), 0) < RANK["cli"]],
                         ids=lambda p: str(p.relative_to(PACKAGE)))
def test_below_the_face_advdla_imports_stand_at_module_top(path):
    """Only the face imports lazily (``advdla --help`` must not pay for torch); below it, an import inside a function
    hides a dependency, or a cycle."""
    inside = [f"{node.name}: line {sub.lineno}" for node in ast.walk(ast.parse(path.read_text()))
              if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) for sub in ast.walk(node)
              if isinstance(sub, ast.ImportFrom) and (sub.module or "").startswith("advdla")]
    assert not inside, f"{path.name}: advdla imports inside functions: {inside}"


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_modules_and_functions_are_short(path):
    text = path.read_text()
    n_lines = len(text.splitlines())
    assert n_lines <= MAX_MODULE_LINES, f"{path.name}: {n_lines} lines"
    long = [f"{node.name} ({node.end_lineno - node.lineno + 1} lines)" for node in ast.walk(ast.parse(text))
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES]
    assert not long, f"{path.name}: functions over {MAX_FUNCTION_LINES} lines: {long}"
