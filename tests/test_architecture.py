"""The package's structure: one-way imports, a jax-free reference, what the wheel installs."""

from __future__ import annotations

import ast
import doctest
import importlib
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "toolkit"


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST, package: str, modules: frozenset[str] = frozenset()) -> list[str]:
    """Every module an import statement names, at any depth (lazy imports inside functions
    count: they run), except under ``if TYPE_CHECKING:`` (they never run). ``from a import b``
    names the module ``a.b`` when it is one of ``modules``, else ``a``."""
    out: list[str] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            out.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            for alias in node.names:
                submodule = f"{module}.{alias.name}"
                out.append(submodule if submodule in modules else module)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return out


def import_graph() -> dict[str, set[str]]:
    """toolkit module → the toolkit modules it imports (a package counts as its __init__)."""
    files = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        names = _imports(ast.parse(path.read_text(), str(path)), package, frozenset(files))
        graph[name] = {n for n in names if n in files and n != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path ``[a, b, …, a]``, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def walk(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt):], nxt]
            if nxt not in state and (cycle := walk(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := walk(start)):
            return cycle
    return None


def test_import_parser_counts_lazy_imports_and_skips_type_checking_ones():
    lazy = "def f():\n    from toolkit.b import x\n"
    assert "toolkit.b" in _imports(ast.parse(lazy), "toolkit")
    submodule = "from toolkit import b, c\n"
    assert _imports(ast.parse(submodule), "toolkit", frozenset({"toolkit", "toolkit.b"})) == [
        "toolkit.b", "toolkit"
    ]
    guarded = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import toolkit.b\n"
    assert "toolkit.b" not in _imports(ast.parse(guarded), "toolkit")
    relative = "from .results import GradientResult\n"
    assert "toolkit.runner.results" in _imports(ast.parse(relative), "toolkit.runner")
    graph = {"toolkit.a": {"toolkit.b"}, "toolkit.b": {"toolkit.c"}, "toolkit.c": {"toolkit.a"}}
    assert find_cycle(graph) == ["toolkit.a", "toolkit.b", "toolkit.c", "toolkit.a"]
    assert find_cycle({"toolkit.a": {"toolkit.b"}, "toolkit.b": set()}) is None


def test_no_import_cycles_among_toolkit_modules():
    # Every module of the package, the tape engine's internals included: no exemptions.
    graph = import_graph()
    assert "toolkit.runner.strategies" in graph and "toolkit.tape._core" in graph
    cycle = find_cycle(graph)
    assert cycle is None, " -> ".join(cycle or [])


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    """Every module ``start`` imports, directly or through others."""
    seen: set[str] = set()
    todo = [start]
    while todo:
        for nxt in graph[todo.pop()] - seen:
            seen.add(nxt)
            todo.append(nxt)
    return seen


# The runner's stages in the order data flows; no stage imports a later one, even indirectly.
# The registry (strategies) comes before the preflight, which checks names against it.
RUNNER_FLOW = ["config", "strategies", "preflight", "reference", "compare", "results", "run",
               "tables", "report", "rundir", "stats", "aggregate", "diff", "sweep", "publish",
               "api"]
# Leaves every stage may use: they import no other runner module.
RUNNER_LEAVES = {"evaluate", "implicit", "interrupt", "plots", "progress", "demo"}


def test_data_flows_one_way_through_the_runner():
    graph = import_graph()
    records = {"toolkit.runner.results"}  # the records every stage may build or read
    for i, stage in enumerate(RUNNER_FLOW):
        later = {f"toolkit.runner.{s}" for s in RUNNER_FLOW[i + 1:]} - records
        assert not reachable(graph, f"toolkit.runner.{stage}") & later, stage
    # Parsing a config runs no experiment code and needs no strategy.
    assert reachable(graph, "toolkit.runner.config") <= {"toolkit.errors"}
    runner = {m.removeprefix("toolkit.runner.") for m in graph if m.startswith("toolkit.runner.")}
    assert runner == set(RUNNER_FLOW) | RUNNER_LEAVES
    for leaf in RUNNER_LEAVES:
        assert not {d for d in graph[f"toolkit.runner.{leaf}"] if d.startswith("toolkit.runner")}


def test_engines_and_transforms_never_import_the_runner():
    graph = import_graph()
    for module in graph:
        if module.startswith(("toolkit.tape", "toolkit.transforms", "toolkit.explicit")):
            bad = {d for d in reachable(graph, module) if d.startswith(("toolkit.runner",
                                                                        "toolkit.cli"))}
            assert not bad, (module, bad)
        if module.startswith("toolkit.tape"):
            assert all(d.startswith("toolkit.tape") for d in graph[module]), module
    # Both engines take a Problem and return the records it defines.
    assert "toolkit.problem" in graph["toolkit.runner.implicit"]
    assert "toolkit.problem" in graph["toolkit.explicit._run"]
    assert reachable(graph, "toolkit.problem") == {"toolkit.experiment"} | reachable(
        graph, "toolkit.experiment")


def _python(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    "module",
    ["toolkit.runner.config", "toolkit.runner.reference", "toolkit.runner.compare",
     "toolkit.runner.strategies", "toolkit.runner.report", "toolkit.transforms"],
)
def test_module_imports_without_jax(module, tmp_path):
    done = _python(
        f"import sys, {module}\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('jax', 'jaxlib', 'optax'))\n"
        "assert not loaded, loaded[:5]\n",
        tmp_path,
    )
    assert done.returncode == 0, done.stderr


def test_reference_runs_without_jax(tmp_path):
    done = _python(
        "import sys\n"
        "from toolkit.experiments.aliasing import cases\n"
        "from toolkit.runner.reference import compute_reference\n"
        "case = next(c for c in cases() if c.name == 'case2')\n"
        "ref = compute_reference(case, case.initial_values(0), {})\n"
        "print(round(float(ref.storages['x'].total[0]), 6))\n"
        "assert 'jax' not in sys.modules\n",
        tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "2.0"  # d/dx of x * x' at x = 1


def test_no_top_level_experiments_package_is_installed(tmp_path):
    # Run from an empty folder so the repository root is not on sys.path.
    done = _python(
        "import importlib.util, sys\n"
        "assert importlib.util.find_spec('experiments') is None, "
        "importlib.util.find_spec('experiments')\n"
        "assert importlib.util.find_spec('toolkit.experiments.aliasing') is not None\n",
        tmp_path,
    )
    assert done.returncode == 0, done.stderr


def test_package_ships_top_level_experiments_and_configs_as_the_only_copies():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    packages, folders = config["packages"], config["package-dir"]
    assert all(p == "toolkit" or p.startswith("toolkit.") for p in packages), packages
    assert folders == {"toolkit.experiments": "experiments", "toolkit.configs": "configs"}
    # Every source package is listed, so nothing under toolkit/ is left out of the wheel.
    on_disk = {_module_name(p.parent / "__init__.py") for p in PACKAGE.rglob("__init__.py")}
    assert on_disk <= set(packages), on_disk - set(packages)
    for package, globs in config["package-data"].items():
        folder = ROOT / folders.get(package, package.replace(".", "/"))
        for pattern in globs:
            assert list(folder.glob(pattern)), (package, pattern)
    # The shipped configs and experiments live only at the top level.
    assert sorted(PACKAGE.rglob("*.toml")) == [] and not (PACKAGE / "experiments").exists()
    assert list((ROOT / "configs").glob("*.toml"))
    assert (ROOT / "experiments" / "aliasing.py").is_file()


RUNNER_MODULES = [
    "toolkit.problem",
    "toolkit.runner.config",
    "toolkit.runner.preflight",
    "toolkit.runner.results",
    "toolkit.runner.strategies",
    "toolkit.runner.sweep",
    "toolkit.runner.api",
    "toolkit.runner.progress",
    "toolkit.runner.evaluate",
    "toolkit.runner.implicit",
    "toolkit.runner.reference",
    "toolkit.runner.compare",
    "toolkit.runner.report",
    "toolkit.runner.publish",
    "toolkit.explicit",
]


@pytest.mark.parametrize("name", RUNNER_MODULES)
def test_docstring_examples_run(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


# Project files describe behaviour directly. The patterns are assembled so that this file
# does not match them itself.
OUTSIDE_REFERENCES = [
    re.compile("DESIGN" + r"\.md|STYLE" + r"\.md"),
    re.compile(r"\bissues?\s+" + "#" + r"\d+|\bZygote(\.jl)?\s+" + "#" + r"\d+", re.I),
    re.compile(r"\bFlux(\.jl)?\s+" + "#" + r"\d+", re.I),
    re.compile(r"\bseed thread\b|\bthe seed's\b|\bthe issue's\b", re.I),
]
# Sources of everything the project ships and documents; the committed results are generated
# from the configs and the report code, both covered here.
TEXT_GLOBS = ["README.md", "pyproject.toml", "docs/*.md", "configs/*.toml", "toolkit/**/*.py",
              "toolkit/**/*.toml", "tests/**/*.py", "benchmarks/**/*.py"]


def test_outside_reference_patterns_match_what_they_forbid():
    forbidden = ["see " + "DESIGN" + ".md §1", "Zygote " + "#" + "991", "issues " + "#" + "522",
                 "the seed" + "'s cases", "Flux " + "#" + "1592", "The issue" + "'s goal"]
    for text in forbidden:
        assert any(p.search(text) for p in OUTSIDE_REFERENCES), text
    assert not any(p.search("seed = 0; the aliasing cases; docs/transforms.md#cost")
                   for p in OUTSIDE_REFERENCES)


def test_project_files_name_no_outside_documents_or_issue_numbers():
    hits = []
    for pattern in TEXT_GLOBS:
        for path in sorted(ROOT.glob(pattern)):
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if any(p.search(line) for p in OUTSIDE_REFERENCES):
                    hits.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not hits, "\n".join(hits)
