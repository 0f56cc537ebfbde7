"""The shape of the package: no import cycles among launcher modules, and only the command
line (and the serve/demo wiring, should it move out of it) imports launcher.app.

The graph is read from the source with ``ast``, so imports under ``TYPE_CHECKING`` and inside
functions count too: a cycle hidden in a function is still a cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "launcher"
APP_IMPORTERS = ("launcher.cli", "launcher.serve", "launcher.demo")  # and launcher.demo.*


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py") if "migrations" not in p.parts}


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The launcher module ``name`` refers to: itself, or its package for ``pkg.attr``."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def _imports(module: str, path: Path, modules: dict[str, Path]) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from the package of this module
                base = module.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            # "from launcher.reports import rollups" imports the module launcher.reports.rollups
            names = [prefix] + [f"{prefix}.{alias.name}" for alias in node.names]
        for name in names:
            if name == "launcher" or name.startswith("launcher."):
                target = _resolve(name, modules)
                if target is not None and target != module:
                    found.add(target)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as [a, b, ..., a], or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_graph_sees_the_imports_we_know_of() -> None:
    graph = import_graph()
    assert "launcher.app" in graph["launcher.serve"]
    assert "launcher.context" in graph["launcher.app"]
    assert "launcher.reports.rollups" in graph["launcher.app"]  # from launcher.reports import


def test_no_import_cycles_among_launcher_modules() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_find_cycle_finds_one() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_only_the_command_line_imports_the_app() -> None:
    importers = sorted(
        name
        for name, targets in import_graph().items()
        if "launcher.app" in targets
        and name not in APP_IMPORTERS
        and not name.startswith("launcher.demo.")
    )
    assert importers == [], f"{importers} import launcher.app (views use launcher.context)"


# What a worker of `launcher serve` does not load until a request needs it (docs/SCALING.md:
# resident memory and cold start): Alembic (migrations run before the workers start), Authlib,
# joserfc and cryptography (the first sign-in), Babel (the first page).
LAZY = ("alembic", "authlib", "joserfc", "cryptography", "babel")


def test_a_worker_starts_without_what_only_some_requests_need() -> None:
    import subprocess
    import sys

    code = (
        "import sys, launcher.cli, launcher.serve, launcher.app\n"
        f"print(' '.join(m for m in {LAZY!r} if m in sys.modules))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=PACKAGE.parent,
        timeout=120,
    ).stdout.split()
    assert loaded == []
