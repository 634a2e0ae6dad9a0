"""The documents that are generated from the code are current."""

from __future__ import annotations

from pathlib import Path

from pytest_unlearn.options import OPTIONS, reference_markdown

REPO_ROOT = Path(__file__).resolve().parents[1]


def test_the_options_reference_is_generated_from_the_options_table() -> None:
    reference = (REPO_ROOT / "docs" / "options.md").read_text()
    assert reference == reference_markdown(), (
        "docs/options.md is out of date: run python -m pytest_unlearn.options > docs/options.md"
    )
    for option in OPTIONS:
        assert f"`{option.dest}`" in reference
