"""The shape of the package (docs/architecture.md): a one-way import graph, a core that
knows nothing of pytest, and modules of a readable size."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "pytest_unlearn"
# The modules that face pytest (hooks, fixtures, collection, reporting) and may import it.
PYTEST_FACE = {
    "plugin",
    "hookspecs",
    "options",
    "collection",
    "fixtures",
    "build_only",
    "reporter",
    "terminal",
    "session",
    "assertions",
    "conformance",
    "ci_reports",  # builds the gate's test reports (pytest.TestReport)
}
# The builtin data set is records written in code.
LONG_ON_PURPOSE = {"builtin_data"}


def runtime_imports(path: Path) -> set[str]:
    """What a module imports when it is imported (not under ``if TYPE_CHECKING``)."""
    imported = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ImportFrom):
            if node.level == 1:
                imported.update(
                    [node.module.split(".")[0]]
                    if node.module
                    else [alias.name for alias in node.names]
                )
            elif node.module:
                imported.add(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
    return imported


MODULES = {path.stem: runtime_imports(path) for path in PACKAGE.glob("*.py")}


def test_the_import_graph_has_no_cycle() -> None:
    done: set[str] = set()

    def visit(name: str, path: tuple[str, ...]) -> None:
        assert name not in path, f"import cycle: {' -> '.join((*path, name))}"
        if name in done:
            return
        for imported in MODULES[name] & set(MODULES):
            visit(imported, (*path, name))
        done.add(name)

    for name in MODULES:
        visit(name, ())


def test_only_the_pytest_face_imports_pytest() -> None:
    importing = {name for name, imported in MODULES.items() if "pytest" in imported}
    assert importing <= PYTEST_FACE, sorted(importing - PYTEST_FACE)


def test_no_module_is_much_over_400_lines() -> None:
    lengths = {path.stem: len(path.read_text().splitlines()) for path in PACKAGE.glob("*.py")}
    assert {name: n for name, n in lengths.items() if n > 420 and name not in LONG_ON_PURPOSE} == {}
