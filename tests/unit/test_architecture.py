"""The package layout ARCHITECTURE.md draws, held to the code: which package may import which,
that the loop names its ports instead of importing adapters, and that one call acknowledges.

Read from the source (``ast``), not by importing: an import inside a function counts too.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

WORKER = Path(__file__).resolve().parents[2] / "worker"

# The modules beside the packages, and what each package may import of the worker (besides
# itself). The loop imports no adapter (kafka) and no settings (config): it is handed both.
LEAVES = {"errors", "records", "bounded_http"}
MAY_IMPORT: dict[str, set[str]] = {
    "runtime": {"errors"},
    "config": {"errors"},
    "events": {"errors", "config", "records", "bounded_http"},
    "fullstory": {"errors", "config", "runtime", "bounded_http", "events"},
    "kafka": {"errors", "config", "records", "runtime"},
    "loop": {"errors", "records", "runtime", "events", "fullstory"},
    "ops": {
        "errors",
        "config",
        "records",
        "runtime",
        "kafka",
        "bounded_http",
        "events",
        "fullstory",
        "loop",
    },
}
TOP_LEVEL = {"__init__", "__main__", "cli", *LEAVES}


def _worker_imports(path: Path) -> set[str]:
    """The worker modules ``path`` imports, dotted (``worker.loop.batch``)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "worker":
                found.update(f"worker.{alias.name}" for alias in node.names)
            elif node.module.startswith("worker."):
                found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("worker."))
    return found


def _package_of(path: Path) -> str:
    return path.relative_to(WORKER).parts[0].removesuffix(".py")


def _imports_by_package() -> dict[str, dict[str, set[str]]]:
    """package -> imported package -> the modules of the package that import it."""
    graph: dict[str, dict[str, set[str]]] = {}
    for path in sorted(WORKER.rglob("*.py")):
        package = _package_of(path)
        for module in _worker_imports(path):
            target = module.split(".")[1]
            if target != package:
                graph.setdefault(package, {}).setdefault(target, set()).add(
                    str(path.relative_to(WORKER))
                )
    return graph


def test_every_module_lives_in_a_package_but_the_few_beside_them():
    """A new module goes in the package of the thread that runs it or the service it talks to
    (ARCHITECTURE.md, "Packages"); only the entry point and the shared leaves stand beside them."""
    loose = {p.stem for p in WORKER.glob("*.py")} - TOP_LEVEL
    assert not loose, f"place these in a package: {sorted(loose)}"
    packages = {p.name for p in WORKER.iterdir() if (p / "__init__.py").exists()}
    assert packages == set(MAY_IMPORT), "a package was added or removed: update MAY_IMPORT"


@pytest.mark.parametrize("package", sorted(MAY_IMPORT))
def test_a_package_imports_only_the_packages_below_it(package):
    """The layering of ARCHITECTURE.md: e.g. the importer takes plain users, so ``fullstory``
    never imports ``loop``; the loop names its ports, so it never imports ``kafka``."""
    imported = _imports_by_package().get(package, {})
    wrong = {
        target: sorted(by) for target, by in imported.items() if target not in MAY_IMPORT[package]
    }
    assert not wrong, f"{package} may not import {wrong}"


def test_the_package_graph_has_no_cycle():
    """Follows from the table above, checked in case the table itself grows a cycle."""
    graph = {p: MAY_IMPORT[p] & set(MAY_IMPORT) for p in MAY_IMPORT}
    done: set[str] = set()

    def visit(package: str, path: tuple[str, ...]) -> None:
        assert package not in path, f"import cycle: {' -> '.join((*path, package))}"
        if package in done:
            return
        for target in graph[package]:
            visit(target, (*path, package))
        done.add(package)

    for package in graph:
        visit(package, ())


@pytest.mark.parametrize("leaf", sorted(LEAVES))
def test_the_shared_leaves_import_nothing_of_the_worker(leaf):
    assert _worker_imports(WORKER / f"{leaf}.py") <= {"worker.errors"}


def test_each_package_says_what_it_owns_and_which_thread_runs_it():
    for init in sorted(WORKER.rglob("__init__.py")):
        doc = ast.get_docstring(ast.parse(init.read_text())) or ""
        assert "Owns" in doc or init.parent == WORKER, f"{init}: what does it own?"
        assert "thread" in doc or "process" in doc, f"{init}: which thread runs it?"


def test_only_the_commit_stage_acknowledges_a_span():
    """Acknowledging is a call (``Committer.ack``): no other code sets ``acked``, so a search
    for who acknowledges records finds every place that does."""
    setters = []
    for path in sorted(WORKER.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            targets = node.targets if isinstance(node, ast.Assign) else []
            for target in targets:
                if isinstance(target, ast.Attribute) and target.attr == "acked":
                    setters.append(f"{path.relative_to(WORKER)}:{node.lineno}")
    # Span.__init__ starts it False; Committer.ack is the one place that sets it (by file:
    # make mutation's copy of the tree holds each function several times).
    assert sorted({s.split(":")[0] for s in setters}) == [
        "loop/commit/committer.py",
        "loop/commit/watermark.py",
    ], setters


def test_architecture_md_draws_every_module_of_the_tree():
    """The package tree in ARCHITECTURE.md names each module that exists, and none that does
    not: a newcomer reads the layout there."""
    text = (WORKER.parent / "ARCHITECTURE.md").read_text()
    start = text.index("worker/\n├")
    tree = text[start : text.index("```", start)]
    named = set(re.findall(r"\b([a-z_]+\.(?:py|c))\b", tree))
    actual = {
        p.name
        for p in WORKER.rglob("*")
        if p.suffix in (".py", ".c") and p.name not in ("__init__.py", "__main__.py")
    }
    assert sorted(actual - named) == [], "add them to ARCHITECTURE.md's tree"
    assert sorted(named - actual) == [], "ARCHITECTURE.md's tree names modules that are gone"
