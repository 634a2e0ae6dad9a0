"""``pytest_unlearn.evaluate``: the plugin's measurements from Python, on the plugin's
engine. It gives the summary a run of the suites gives, takes an in-memory model (copied,
never changed, keyed by its weights) and says what is wrong with bad arguments."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pytest_unlearn import Summary, evaluate
from pytest_unlearn.errors import UnlearnError
from pytest_unlearn.gate_file import METRICS

# What a row's figures and identity are (method_log and timings aside).
ROW_KEYS = (
    "method",
    "domain",
    "prompt",
    "seeds",
    "unlearn_items",
    "retention_items",
    "errors",
    *METRICS,
    "model_cache_key",
    "intervals",
    "tests",
)


def _items(summary: dict[str, Any]) -> set[tuple[Any, ...]]:
    return {
        (
            item["method"],
            item["domain"],
            item["seed"],
            item["prompt"],
            item["test"],
            item["item"],
            item["outcome"],
            item["token_accuracy"],
            item["mean_logprob"],
            item["rouge_l"],
            tuple(item["generations"]),
            item["question"],
            item["answer"],
        )
        for item in summary["items"]
    }


def test_evaluate_gives_the_summary_of_the_suites(
    warm_cache: dict[str, Any], unlearn_cache_dir: Path, tmp_path: Path
) -> None:
    """The privacy suite's recall tests with --unlearn-method=none (``warm_cache``), and
    evaluate() with the same settings on the same cache: the same rows and item outcomes."""
    gate = tmp_path / "gate.yaml"
    gate.write_text("methods: [none]\ndomains:\n  privacy:\n    retention_success: {min: 0.9}\n")
    lines: list[str] = []
    summary = evaluate(
        methods="none",
        tests=["recall"],
        model="tiny",
        cache_dir=unlearn_cache_dir,
        gate=gate,
        progress=lines.append,
    )
    assert isinstance(summary, Summary)
    assert [{key: row.get(key) for key in ROW_KEYS} for row in summary["rows"]] == [
        {key: row.get(key) for key in ROW_KEYS} for row in warm_cache["rows"]
    ]
    assert _items(summary) == _items(warm_cache)
    assert summary.passed is True and summary["gate"]["checks"]
    assert summary["command"]["line"].startswith("pytest_unlearn.evaluate(methods='none'")
    assert summary["settings"]["cache_dir"] == str(unlearn_cache_dir)
    # From the cache: no model was loaded, let alone trained.
    assert all("from the cache" in line for line in lines), lines
    table = summary.table()
    assert table.splitlines()[0].startswith("method") and "none" in table


def test_evaluate_takes_an_in_memory_model_and_leaves_it_unchanged(
    warm_cache: dict[str, Any], unlearn_cache_dir: Path, tmp_path: Path
) -> None:
    from pytest_unlearn.options import settings_for_script
    from pytest_unlearn.session import UnlearnSession

    # The vanilla tiny model of the warm run, as a notebook would hold a model.
    session = UnlearnSession(
        settings_for_script(unlearn_cache_dir=str(unlearn_cache_dir)), lambda line: None
    )
    handle = session.pipeline.load_vanilla(session.domain_data("privacy"))
    before = {name: tensor.clone() for name, tensor in handle.model.state_dict().items()}

    def run(lines: list[str]) -> Summary:
        return evaluate(
            handle.model,
            handle.tokenizer,
            methods="none,gradient_ascent",
            tests=["recall"],
            progress=lines.append,
            inject="never",
            cache_dir=tmp_path / "cache",
            max_new_tokens=0,
        )

    lines: list[str] = []
    summary = run(lines)
    rows = {row["method"]: row for row in summary["rows"]}
    [vanilla] = warm_cache["rows"]
    # The same weights as the warm run's vanilla model: the same teacher-forced outcomes.
    for key in ("unlearn_success", "retention_success", "unlearn_success_token"):
        assert rows["none"][key] == vanilla[key]
    assert rows["gradient_ascent"]["unlearn_items"] == vanilla["unlearn_items"]
    assert rows["gradient_ascent"]["unlearn_success"] >= rows["none"]["unlearn_success"]
    assert any("gradient_ascent privacy: step" in line for line in lines), lines
    assert summary["run"]["model"].startswith("in-memory ")
    assert summary["command"]["line"].startswith("pytest_unlearn.evaluate(model=<")
    # The caller's model is as it was: the methods trained a copy.
    after = handle.model.state_dict()
    assert sorted(after) == sorted(before)
    assert all(after[name].equal(tensor) for name, tensor in before.items())
    # Evaluated again, the same model is found in the cache by its weights: nothing trains.
    again: list[str] = []
    second = run(again)
    assert [row["model_cache_key"] for row in second["rows"]] == [
        row["model_cache_key"] for row in summary["rows"]
    ]
    assert not any(" step " in line for line in again), again


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({"seeds": 0}, "evaluate(seeds='0')"),
        ({"no_such_option": 1}, "evaluate(no_such_option=...): no such option"),
        ({"tests": ["recall", "fuzz"]}, "the tests are recall, attack, leak"),
        ({"domains": ["medical"]}, "the domains are privacy, copyright"),
        ({"methods": "gradient_asent"}, "did you mean 'gradient_ascent'"),
        ({"tokenizer": object()}, "give both model= and tokenizer="),
    ],
)
def test_bad_arguments_are_clear_errors(
    arguments: dict[str, Any], expected: str, tmp_path: Path
) -> None:
    with pytest.raises(UnlearnError) as error:
        evaluate(cache_dir=tmp_path, **arguments)
    assert expected in str(error.value)


def test_a_model_that_is_not_one_and_a_named_model_with_a_tokenizer_are_refused(
    tmp_path: Path,
) -> None:
    class NotAModel:
        pass

    with pytest.raises(UnlearnError, match="expected a transformers PreTrainedModel"):
        evaluate(NotAModel(), lambda text: text, cache_dir=tmp_path)  # type: ignore[arg-type]
    with pytest.raises(UnlearnError, match="pass tokenizer= only with an in-memory model"):
        evaluate("tiny", lambda text: text, cache_dir=tmp_path)  # type: ignore[arg-type]
