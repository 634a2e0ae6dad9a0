"""Training curves (``--unlearn-curve-every N``, paper Figure 4): while a method unlearns,
the val items are scored every N optimizer steps, counted as the report counts them."""

from __future__ import annotations

from collections.abc import Callable

from .data import DomainData
from .encoding import encode_all
from .models import ModelHandle, pad_token_id
from .scoring import perplexity, score
from .vocabulary import MAX_LENGTH


def curve_recorder(
    data: DomainData,
    handle: ModelHandle,
    every: int,
    threshold: float,
    curve: list[dict[str, float]],
    progress: Callable[[str], None],
) -> Callable[[int], None]:
    """A Trainer ``after_step`` that appends a point to ``curve`` every ``every`` steps (a
    negative step: score now, at that step). Scoring runs in inference mode and puts the
    model back in its mode, so the training itself is unchanged."""
    scopes = {"unlearn": data.splits["unlearn_val"], "retention": data.splits["retention_val"]}
    encoded = {
        scope: encode_all(handle.tokenizer, records, MAX_LENGTH, f"{scope} val")
        for scope, records in scopes.items()
    }

    def record(step: int) -> None:
        if step >= 0 and step % every:
            return
        point: dict[str, float] = {"step": abs(step)}
        for scope, items in encoded.items():
            scores = score(handle.model, items, pad_token_id(handle.tokenizer))
            # The share of item tests that would pass, counted as the report counts it.
            wanted = scope != "unlearn"
            passing = sum(each.recalled(threshold) == wanted for each in scores)
            point[f"{scope}_success"] = passing / len(scores)
            point[f"{scope}_ppl"] = perplexity([each.mean_logprob for each in scores])
        curve.append(point)
        progress(
            f"curve {data.domain}: step {abs(step)} unlearn success "
            f"{point['unlearn_success']:.3f} retention success "
            f"{point['retention_success']:.3f}"
        )

    return record
