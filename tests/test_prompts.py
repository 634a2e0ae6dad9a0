"""--unlearn-prompts: the item tests asked under several prompt variants (paper Finding 2)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from pytest_unlearn.errors import UnlearnError
from pytest_unlearn.prompts import prompt_prefix
from pytest_unlearn.vocabulary import PROMPTS


def test_prefixes() -> None:
    assert prompt_prefix("plain", "privacy") == ""
    assert prompt_prefix("helpful", "copyright").startswith("You are a helpful assistant")
    assert "privacy-sensitive" in prompt_prefix("direct", "privacy")
    assert "copyright-sensitive" in prompt_prefix("direct", "copyright")
    assert all(prompt_prefix(name, "privacy").endswith("\n") for name in PROMPTS[1:])
    with pytest.raises(UnlearnError, match="unknown prompt variant 'rude'"):
        prompt_prefix("rude", "privacy")


def test_variants_parametrize_the_items_and_split_the_summary(
    suite_dir: Path, pytester: pytest.Pytester, small_data_cache: tuple[Path, Path]
) -> None:
    data, cache = small_data_cache
    result = pytester.runpytest_subprocess(
        "--unlearn-method=none",
        "--unlearn-prompts=plain,direct",
        f"--unlearn-data={data}",
        f"--unlearn-cache-dir={cache}",
        "--unlearn-max-new-tokens=0",
        "--unlearn-json=r.json",
        "-v",
    )
    text = "\n".join(result.outlines)
    assert result.ret in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED), text
    assert "test_forgets[none-privacy-direct-unlearn-000]" in text
    assert "test_retains[none-privacy-plain-retention-000]" in text
    summary = json.loads((pytester.path / "r.json").read_text())
    assert sorted((row["method"], row["prompt"]) for row in summary["rows"]) == [
        ("none", "direct"),
        ("none", "plain"),
    ]
    items = {(item["prompt"], item["item"]): item for item in summary["items"]}
    assert len(items) == len(summary["items"]) == 2 * 6
    # The prefix reaches the model: the same answer is scored differently under it.
    assert any(
        items[("plain", item)]["mean_logprob"] != items[("direct", item)]["mean_logprob"]
        for prompt, item in items
        if prompt == "plain"
    )
    # The interval table has a prompt column when a row is not under the plain prompt.
    assert re.search(r"^none +privacy +direct +\d+\.\d \[", text, re.MULTILINE), text


def test_unknown_variant_is_a_usage_error(suite_dir: Path, pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess("--unlearn-prompts=plain,polite")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "--unlearn-prompts='polite'" in "\n".join(result.errlines)
    assert "plain, helpful, direct" in "\n".join(result.errlines)
