"""The package layout keeps its promises: no import cycles, small modules and functions, a light
engine, and public names that stay where users find them. (The layer contracts themselves are checked by
``lint-imports`` with the contracts in pyproject.toml, run by .ci/run.)"""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
import tomllib
from pathlib import Path

import grimp

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "isearchd"
# A module is split before it passes this (one concern each; issue "Seams II" moved the limit
# from 600), a function before it passes MAX_FUNCTION_LINES (signature and docstring included).
MAX_MODULE_LINES = 450
MAX_FUNCTION_LINES = 60


def _cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iteratively)."""
    modules = sorted(graph.modules)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for root in modules:
        if root in index:
            continue
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.find_modules_directly_imported_by(child)))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
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
    return found


def test_no_import_cycles_counting_type_checking_imports() -> None:
    graph = grimp.build_graph("isearchd", exclude_type_checking_imports=False)
    assert _cycles(graph) == []


def test_cycle_finder_finds_a_cycle() -> None:
    graph = grimp.ImportGraph()
    for a, b in (("p.a", "p.b"), ("p.b", "p.c"), ("p.c", "p.a"), ("p.c", "p.d")):
        graph.add_import(importer=a, imported=b)
    assert _cycles(graph) == [["p.a", "p.b", "p.c"]]


def test_no_module_over_the_size_limit() -> None:
    sizes = {p.relative_to(REPO).as_posix(): len(p.read_text().splitlines()) for p in PACKAGE.rglob("*.py")}
    assert {p: n for p, n in sizes.items() if n > MAX_MODULE_LINES} == {}


def test_no_function_over_the_size_limit() -> None:
    long = {}
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long[f"{path.relative_to(REPO).as_posix()}:{node.name}"] = lines
    assert long == {}


def test_engine_and_store_import_no_cli_watcher_or_server() -> None:
    # (click is not checked: sqlite-utils imports it for its own command line)
    code = (
        "import sys, isearchd.engine.engine, isearchd.engine.indexer, isearchd.store;"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('typer', 'watchdog')"
        " or m.startswith(('isearchd.daemon', 'isearchd.watch', 'isearchd.cli', 'isearchd.protocol',"
        " 'isearchd.client', 'isearchd.service')));"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_public_names_stay() -> None:
    import imgsearch.client
    import isearchd
    import isearchd.client
    import isearchd.errors as errors

    assert isearchd.Client is isearchd.client.Client is imgsearch.client.Client
    assert isinstance(isearchd.__version__, str)
    for name in ("ISearchError", "ConfigError", "InvalidRequest", "ProtocolError", "NotFound", "BadImage",
                 "ModelError", "WeightsMissing", "ModelMismatch", "StoreError", "DiskFull",
                 "PermissionDenied", "ServiceNotRunning", "ServiceError", "Busy", "from_code"):  # fmt: skip
        assert hasattr(errors, name), name
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert set(scripts) == {"isearch", "isearchd"}
    for target in scripts.values():
        module, _, attr = target.partition(":")
        assert callable(getattr(importlib.import_module(module), attr)), target
