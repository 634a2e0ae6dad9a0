"""The fixtures a suite uses (registered by the plugin; the README lists them).

Parametrized by the plugin: ``unlearn_method``, ``unlearn_domain``, ``unlearn_seed``,
``unlearn_prompt`` and ``knowundo_item`` (one val item). Built from them: the models
(``unlearned_model``, ``relearned_model``) and what a test reads of them (``item_score``,
``attacked_score``, ``leak_check``, ``general_result``), each cached with the model, so a
rerun loads no model at all; ``recalls`` applies --unlearn-criterion; ``unlearn_session``
is the run's state.

A user-fixable problem in a model step (a model that does not load, a method that
diverges) fails the test with its message alone (`UnlearnError`, no traceback).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

import pytest

from .collection import DOMAIN_MARKER, GENERAL_MARKER, kind_of_test
from .data import Item
from .errors import UnlearnError
from .general_suite import GeneralResult, judge, load_thresholds
from .leaks import Sensitive, find_leaks, sensitive_strings
from .models import ModelHandle
from .oracle import NoOracle
from .outcomes import leak_properties, score_properties
from .privacy_checks import (
    PrivacyLeak,
    membership_skip,
    privacy_leak,
    quantized_key,
    quantized_model,
)
from .privacy_checks import privleak_bounds as bounds_of_privleak
from .scoring import ItemScore
from .session import UnlearnSession
from .vocabulary import DEFAULT_PROMPT, QUANT4, QUANT8

T = TypeVar("T")


def session_fixtures(unlearn: UnlearnSession) -> ModuleType:
    """The fixtures that hold the run's state, in a plugin module of their own that each
    pytest run registers.

    They take no ``request``: pytest resolves every dependency of a cached fixture again
    for each test, and each ``request`` it resolves costs a new fixture definition; item
    tests come by the ten thousand (benchmarks/pytest_overhead.py).
    """

    @pytest.fixture(scope="session")
    def unlearn_session() -> UnlearnSession:
        """The run's state: settings, methods, data and model pipeline."""
        return unlearn

    @pytest.fixture(scope="session")
    def unlearn_seed() -> int:
        """The seed of the unlearning run: --unlearn-seed, or with --unlearn-seeds N > 1 each
        of the N seeds in turn (the tests are parametrized by it)."""
        return unlearn.settings.seed

    plugin = ModuleType(f"{__name__}.session_fixtures")
    plugin.unlearn_session = unlearn_session  # type: ignore[attr-defined]
    plugin.unlearn_seed = unlearn_seed  # type: ignore[attr-defined]
    return plugin


@pytest.fixture(scope="session")
def unlearn_method(request: pytest.FixtureRequest) -> str:
    """The method under test (parametrized by --unlearn-method)."""
    return _param(request, "unlearn_method", "the method comes from --unlearn-method")


@pytest.fixture(scope="session")
def unlearn_domain(request: pytest.FixtureRequest) -> str:
    """The KnowUnDo domain of the current suite (from its knowundo marker)."""
    return _param(request, "unlearn_domain", f"mark the test with @pytest.mark.{DOMAIN_MARKER}")


@pytest.fixture(scope="session")
def unlearn_prompt() -> str:
    """The prompt variant the item is asked under (parametrized by --unlearn-prompts)."""
    # Session scope while it is not parametrized, so that it is set up once, not per test;
    # the parametrization is function-scoped.
    return DEFAULT_PROMPT


@pytest.fixture
def knowundo_item(request: pytest.FixtureRequest) -> Item:
    """One val record of the suite's domain: scope, index, question, answer."""
    return _param(request, "knowundo_item", f"mark the test with @pytest.mark.{DOMAIN_MARKER}")


@pytest.fixture(scope="session")
def unlearned_model(
    unlearn_session: UnlearnSession, unlearn_domain: str, unlearn_method: str, unlearn_seed: int
) -> Iterator[ModelHandle]:
    """The vanilla model after the method ran with the seed (built once, then cached). Only
    one is held in memory at a time: pytest finishes it before the next one is set up."""
    handle = _or_fail(
        lambda: unlearn_session.unlearned_model(unlearn_domain, unlearn_method, unlearn_seed)
    )
    yield handle
    handle.release()


@pytest.fixture
def item_score(
    request: pytest.FixtureRequest,
    unlearn_session: UnlearnSession,
    unlearn_domain: str,
    unlearn_method: str,
    unlearn_seed: int,
    unlearn_prompt: str,
    knowundo_item: Item,
) -> ItemScore:
    """The unlearned model's teacher-forced score on the current item (batched per model).

    Scores are cached with the model: when they are, no model is loaded at all; otherwise
    the ``unlearned_model`` fixture is. Also records the item's properties for the report
    and JUnit XML.
    """
    key = _or_fail(lambda: unlearn_session.model_key(unlearn_domain, unlearn_method, unlearn_seed))
    score = _or_fail(
        lambda: unlearn_session.score_of(
            unlearn_domain,
            key,
            knowundo_item,
            lambda: request.getfixturevalue("unlearned_model"),
            unlearn_prompt,
        )
    )
    _record_score(request, unlearn_session, score, key)
    return score


@pytest.fixture(scope="session")
def relearned_model(
    unlearn_session: UnlearnSession, unlearn_domain: str, unlearn_method: str, unlearn_seed: int
) -> Iterator[ModelHandle]:
    """The unlearned model after the relearning attack of --unlearn-attack (built once,
    then cached)."""
    handle = _or_fail(
        lambda: unlearn_session.relearned_model(unlearn_domain, unlearn_method, unlearn_seed)
    )
    yield handle
    handle.release()


@pytest.fixture
def attacked_score(
    request: pytest.FixtureRequest,
    unlearn_session: UnlearnSession,
    unlearn_domain: str,
    unlearn_method: str,
    unlearn_seed: int,
    knowundo_item: Item,
) -> ItemScore:
    """The item's score on the model after the relearning attack (tests marked ``attack``);
    cached like ``item_score``."""
    key = _or_fail(
        lambda: unlearn_session.relearned_key(unlearn_domain, unlearn_method, unlearn_seed)
    )
    score = _or_fail(
        lambda: unlearn_session.score_of(
            unlearn_domain, key, knowundo_item, lambda: request.getfixturevalue("relearned_model")
        )
    )
    _record_score(request, unlearn_session, score, key)
    return score


class LeakCheck:
    """What ``leak_check`` found; ``explain()`` is the failure message."""

    def __init__(
        self,
        item: Item,
        strings: list[Sensitive],
        texts: list[str],
        found: list[tuple[int, Sensitive]],
    ) -> None:
        self.item, self.strings, self.texts, self.found = item, strings, texts, found

    def explain(self) -> str:
        lines = [
            f"{self.item.id}: the model wrote what it must forget ({self.item.record.question!r})"
        ]
        for index, leak in self.found:
            which = "greedy generation" if index == 0 else f"sampled generation {index}"
            lines.append(f"  {leak.kind} {leak.text!r} in its {which}: {self.texts[index]!r}")
        return "\n".join(lines)


@pytest.fixture
def leak_check(
    request: pytest.FixtureRequest,
    unlearn_session: UnlearnSession,
    unlearn_domain: str,
    unlearn_method: str,
    unlearn_seed: int,
    knowundo_item: Item,
) -> LeakCheck:
    """The item's sensitive strings (emails, street addresses, parents' descriptions not
    given away by the question) and those found in the model's greedy and sampled
    generations (tests marked ``leak``)."""
    key = _or_fail(lambda: unlearn_session.model_key(unlearn_domain, unlearn_method, unlearn_seed))
    texts = _or_fail(
        lambda: unlearn_session.artifacts.leak_generations(
            unlearn_session.domain_data(unlearn_domain),
            key,
            lambda: request.getfixturevalue("unlearned_model"),
        )
    )[knowundo_item.id]
    strings = sensitive_strings(knowundo_item.record.answer, knowundo_item.record.question)
    found = [
        (index, leak) for index, text in enumerate(texts) for leak in find_leaks(text, strings)
    ]
    request.node.user_properties.extend(leak_properties(strings, found, texts, key))
    return LeakCheck(knowundo_item, strings, texts, found)


@pytest.fixture
def general_result(
    request: pytest.FixtureRequest,
    unlearn_session: UnlearnSession,
    unlearn_domain: str,
    unlearn_method: str,
    unlearn_seed: int,
    general_task: str,
) -> GeneralResult:
    """The unlearned model's score on one general task, against the reference (vanilla or
    --unlearn-reference) score and the task's thresholds. Cached with the model, like
    ``item_score``."""
    marker = request.node.get_closest_marker(GENERAL_MARKER)
    thresholds_file = Path(str(request.node.path)).parent / (
        marker.kwargs.get("thresholds", "thresholds.yaml") if marker else "thresholds.yaml"
    )
    key = _or_fail(lambda: unlearn_session.model_key(unlearn_domain, unlearn_method, unlearn_seed))
    result = _or_fail(
        lambda: judge(
            general_task,
            unlearn_session.artifacts.general_scores(
                key, lambda: request.getfixturevalue("unlearned_model")
            )[general_task],
            unlearn_session.reference_general_scores(unlearn_domain)[general_task],
            load_thresholds(thresholds_file),
        )
    )
    request.node.user_properties.extend(
        [
            ("general_score", result.score),
            ("general_reference_score", result.reference_score),
            ("general_drop", result.drop),
            ("general_drop_stderr", result.drop_stderr),
            ("general_n", result.n),
        ]
    )
    return result


@pytest.fixture
def quantized_score(
    request: pytest.FixtureRequest,
    unlearn_session: UnlearnSession,
    unlearn_domain: str,
    unlearn_method: str,
    unlearn_seed: int,
    knowundo_item: Item,
) -> ItemScore:
    """The item's score on the unlearned model after weight quantization (tests marked
    ``quant8`` or ``quant4``: RTN, group 128, ``quantization.py``); cached like
    ``item_score``."""
    kind = kind_of_test(request.node)
    if kind not in (QUANT8, QUANT4):
        raise pytest.UsageError(
            f"{request.node.nodeid} takes quantized_score: mark it @pytest.mark.{QUANT8} or "
            f"@pytest.mark.{QUANT4}"
        )
    bits = 8 if kind == QUANT8 else 4
    key = _or_fail(
        lambda: quantized_key(unlearn_session, unlearn_domain, unlearn_method, unlearn_seed, bits)
    )
    score = _or_fail(
        lambda: unlearn_session.score_of(
            unlearn_domain,
            key,
            knowundo_item,
            lambda: quantized_model(
                unlearn_session, unlearn_domain, unlearn_method, unlearn_seed, bits
            ),
        )
    )
    _record_score(request, unlearn_session, score, key)
    return score


@pytest.fixture
def privacy_leak_result(
    request: pytest.FixtureRequest,
    unlearn_session: UnlearnSession,
    unlearn_domain: str,
    unlearn_method: str,
    unlearn_seed: int,
) -> PrivacyLeak:
    """The method's membership-inference AUCs on forget set against holdout, beside the
    oracle's and the vanilla model's, PrivLeak per attack and the forget quality against
    the oracle (tests marked ``privacy_leak``, ``privacy_checks.py``). The oracle itself
    (``retrain``) is the reference, and its test skips, saying so."""
    reason = membership_skip(unlearn_session, unlearn_domain, unlearn_method)
    if reason is not None:
        pytest.skip(reason)
    result = _or_fail(
        lambda: privacy_leak(
            unlearn_session,
            unlearn_domain,
            unlearn_method,
            unlearn_seed,
            lambda: request.getfixturevalue("unlearned_model"),
        )
    )
    request.node.user_properties.extend(result.properties())
    return result


@pytest.fixture(scope="session")
def privleak_bounds(unlearn_session: UnlearnSession, unlearn_domain: str) -> tuple[float, float]:
    """The (min, max) PrivLeak the privacy_leak tests allow: the gate's
    ``domains.DOMAIN.privleak`` bounds, else +-0.2 (docs/privacy.md says why)."""
    return bounds_of_privleak(unlearn_session, unlearn_domain)


@pytest.fixture(scope="session")
def recalls(unlearn_session: UnlearnSession) -> Callable[[ItemScore], bool]:
    """``recalls(score)``: whether a score counts as recalled under --unlearn-criterion."""
    threshold = unlearn_session.settings.recall_threshold
    return lambda score: score.recalled(threshold)


def _record_score(
    request: pytest.FixtureRequest, unlearn_session: UnlearnSession, score: ItemScore, key: str
) -> None:
    threshold = unlearn_session.settings.recall_threshold
    request.node.user_properties.extend(score_properties(score, threshold, key))


def _param(request: pytest.FixtureRequest, name: str, hint: str) -> Any:
    if not hasattr(request, "param"):
        raise pytest.UsageError(
            f"fixture {name!r} is not parametrized for {request.node.nodeid}: {hint}"
        )
    return request.param


def _or_fail(build: Callable[[], T]) -> T:
    """Run a model step; a user-fixable problem fails the test with its message only."""
    try:
        return build()
    except NoOracle as error:  # the oracle's tests of a model tested as it is
        message = str(error)
        skip = True
    except UnlearnError as error:
        message = str(error)
        skip = False
    if skip:
        pytest.skip(message)
    # Outside the except block, so that the report does not chain the UnlearnError again.
    pytest.fail(message, pytrace=False)
