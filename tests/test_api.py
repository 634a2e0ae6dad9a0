"""The method-author API: one public module, which the built-in methods alone import, and
README's example method, which is a working method (it passes the conformance battery)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import pytest_unlearn.api as api

REPO_ROOT = Path(__file__).resolve().parents[1]
METHODS = sorted((REPO_ROOT / "methods").glob("*.py"))


def test_every_public_name_is_there() -> None:
    missing = [name for name in api.__all__ if not hasattr(api, name)]
    assert missing == []
    assert {
        "UnlearningMethod",
        "UnlearnContext",
        "MethodResult",
        "TrainSettings",
        "train_and_report",
        "MethodConformance",
    } <= set(api.__all__)


@pytest.mark.parametrize("path", METHODS, ids=[path.name for path in METHODS])
def test_built_in_methods_import_only_the_api(path: Path) -> None:
    imported = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
        elif isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
    of_the_package = {name for name in imported if name.split(".")[0] == "pytest_unlearn"}
    assert of_the_package <= {"pytest_unlearn.api"}, (
        f"{path.name} imports {sorted(of_the_package - {'pytest_unlearn.api'})}: a method "
        "takes what it needs from pytest_unlearn.api (add the name there)"
    )


def readme_method() -> str:
    """The Python block of README's "Writing a method" section."""
    readme = (REPO_ROOT / "README.md").read_text()
    section = readme.split("## Writing a method", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match, "README's Writing a method section has no python block"
    return match.group(1)


def test_the_readme_method_passes_the_conformance_battery(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(scaled_ascent=readme_method())
    pytester.makepyfile(
        test_scaled_ascent="""
        from pytest_unlearn.api import MethodConformance
        from scaled_ascent import ScaledAscent


        class TestScaledAscent(MethodConformance):
            method_under_test = ScaledAscent
    """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q")
    result.assert_outcomes(passed=8)
