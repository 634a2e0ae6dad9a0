"""--unlearn-build-only: build (or find in the cache) every model the selected tests need,
and compute what they read of it, then run no test. Under accelerate launch or torchrun
every process takes part, in the same order, data parallel; a later ordinary run then tests
from the cache without loading a model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING

from .cache import cache_key
from .distributed import world
from .oracle import ORACLE_ROW, load_oracle, oracle_key, unavailable
from .privacy_checks import attack_scores, quantized_key, quantized_model
from .vocabulary import DEFAULT_PROMPT, QUANT8

if TYPE_CHECKING:
    import pytest

    from .models import ModelHandle
    from .session import UnlearnSession


@dataclass
class ModelNeeds:
    """What the selected tests read from one model."""

    prompts: set[str] = field(default_factory=set)  # item scores under these prompt variants
    leak: bool = False  # greedy and sampled generations of the unlearn items
    general: bool = False  # general-task scores (and those of the reference)
    attack: bool = False  # the model after the relearning attack
    attack_scores: bool = False  # and its item scores
    membership: bool = False  # its membership-attack scores, and the oracle's and vanilla's
    quantized: set[int] = field(default_factory=set)  # item scores after quantization (bits)


def needs_of(items: list[pytest.Item], default_seed: int) -> dict[tuple[str, str, int], ModelNeeds]:
    """What the selected tests read, per (domain, method, seed) model, from their fixtures."""
    needed: dict[tuple[str, str, int], ModelNeeds] = {}
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        if "unlearn_domain" not in params or "unlearn_method" not in params:
            continue
        needs = needed.setdefault(
            (
                params["unlearn_domain"],
                params["unlearn_method"],
                params.get("unlearn_seed", default_seed),
            ),
            ModelNeeds(),
        )
        fixtures = set(item.fixturenames)  # type: ignore[attr-defined]
        if "item_score" in fixtures:
            needs.prompts.add(params.get("unlearn_prompt", DEFAULT_PROMPT))
        needs.leak |= "leak_check" in fixtures
        needs.general |= "general_result" in fixtures
        needs.attack |= bool({"attacked_score", "relearned_model"} & fixtures)
        needs.attack_scores |= "attacked_score" in fixtures
        needs.membership |= "privacy_leak_result" in fixtures
        if "quantized_score" in fixtures:
            needs.quantized.add(8 if item.get_closest_marker(QUANT8) else 4)
    return needed


def build_models(
    unlearn: UnlearnSession, needed: dict[tuple[str, str, int], ModelNeeds]
) -> list[str]:
    """Build (or find) each model and what its tests read; one line per model says what
    was done."""
    lines = []
    for (domain, method, seed), needs in needed.items():
        lines += _build(unlearn, domain, method, seed, needs)
    return lines


def _build(
    unlearn: UnlearnSession, domain: str, method: str, seed: int, needs: ModelNeeds
) -> list[str]:
    if method == ORACLE_ROW and unavailable(unlearn.pipeline) is not None:
        return [f"{domain} {method}: not built: {unavailable(unlearn.pipeline)}"]
    kind = "unlearned" if unlearn.unlearns(method) and method != ORACLE_ROW else "vanilla"
    key = unlearn.model_key(domain, method, seed)
    cached = unlearn.pipeline.cache.lookup(kind, key) is not None
    if needs.general:  # the reference's scores first: one model in memory at a time
        unlearn.reference_general_scores(domain)
    done = _held_while(
        lambda: unlearn.unlearned_model(domain, method, seed),
        lambda get: _prepare(unlearn, domain, key, get, needs.prompts, needs.leak, needs.general),
    )
    lines = [f"{domain} {method} seed {seed}: {_state(unlearn, kind, key, cached)}{done}"]
    if needs.membership and method != ORACLE_ROW and unavailable(unlearn.pipeline) is None:
        lines.append(_membership(unlearn, domain, method, seed))
    for bits in sorted(needs.quantized):
        quantized = quantized_key(unlearn, domain, method, seed, bits)
        unlearn.artifacts.item_scores(
            unlearn.domain_data(domain),
            quantized,
            partial(quantized_model, unlearn, domain, method, seed, bits),
        )
        lines.append(f"{domain} {method} seed {seed} quantized to {bits} bits: item scores")
    if needs.attack:
        relearned = unlearn.relearned_key(domain, method, seed)
        cached = unlearn.pipeline.cache.lookup("unlearned", relearned) is not None
        prompts = {DEFAULT_PROMPT} if needs.attack_scores else set()
        done = _held_while(
            lambda: unlearn.relearned_model(domain, method, seed),
            lambda get: _prepare(unlearn, domain, relearned, get, prompts, False, False),
        )
        lines.append(
            f"{domain} {method} seed {seed} after the relearning attack: "
            f"{_state(unlearn, 'unlearned', relearned, cached)}{done}"
        )
    return lines


def _membership(unlearn: UnlearnSession, domain: str, method: str, seed: int) -> str:
    """The membership tests' scores: the method's, then the oracle's (built now if needed)
    and the vanilla model's, one model in memory at a time."""
    pipeline = unlearn.pipeline
    data = unlearn.domain_data(domain)
    if not data.holdout:
        return f"{domain} {method} seed {seed}: no holdout, no membership scores"
    key = unlearn.model_key(domain, method, seed)
    _held_while(
        lambda: unlearn.unlearned_model(domain, method, seed),
        lambda get: str(attack_scores(unlearn, domain, key, get) and ""),
    )
    oracle = oracle_key(pipeline, data)
    cached = pipeline.cache.lookup("vanilla", oracle) is not None
    _held_while(
        lambda: load_oracle(pipeline, data),
        lambda get: (
            _prepare(unlearn, domain, oracle, get, {DEFAULT_PROMPT}, False, False)
            + str(attack_scores(unlearn, domain, oracle, get) and "")
        ),
    )
    vanilla = cache_key(pipeline.vanilla_payload(data))
    _held_while(
        lambda: pipeline.load_vanilla(data),
        lambda get: str(attack_scores(unlearn, domain, vanilla, get) and ""),
    )
    return (
        f"{domain} {method} seed {seed}: membership scores; the oracle "
        f"{_state(unlearn, 'vanilla', oracle, cached)}"
    )


def _state(unlearn: UnlearnSession, kind: str, key: str, cached: bool) -> str:
    """Whether the model was in the cache, built now, or not needed (what its tests read
    was in the cache)."""
    if cached:
        return f"in the cache ({key[:12]})"
    if unlearn.pipeline.cache.lookup(kind, key) is not None:
        return f"built ({key[:12]})"
    return f"not loaded, what its tests read is in the cache ({key[:12]})"


def _held_while(
    load: Callable[[], ModelHandle], work: Callable[[Callable[[], ModelHandle]], str]
) -> str:
    """Hand ``work`` a getter that loads the model once, when something is not in the
    cache, then release it. Under a launcher every process loads it first (every process
    takes part in building it, in the same order)."""
    held: list[ModelHandle] = []

    def get() -> ModelHandle:
        if not held:
            held.append(load())
        return held[0]

    try:
        if world() is not None:
            get()
        return work(get)
    finally:
        for handle in held:
            handle.release()


def _prepare(
    unlearn: UnlearnSession,
    domain: str,
    key: str,
    load: Callable[[], ModelHandle],
    prompts: set[str],
    leak: bool,
    general: bool,
) -> str:
    """Compute (or find in the cache) a model's item scores under ``prompts``, its leak
    generations and its general-task scores; say which, for the build-only summary."""
    done = []
    for prompt in sorted(prompts):
        unlearn.artifacts.item_scores(unlearn.domain_data(domain), key, load, prompt)
        done.append(f"item scores ({prompt})")
    if leak:  # with --unlearn-max-new-tokens=0 this is the leak tests' error, now
        unlearn.artifacts.leak_generations(unlearn.domain_data(domain), key, load)
        done.append("leak generations")
    if general:
        unlearn.artifacts.general_scores(key, load)
        done.append("general tasks")
    return f"; scored: {', '.join(done)}" if done else ""
