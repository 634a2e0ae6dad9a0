"""What computing the output layer on the answer positions only saves in scoring, on a
model with a large vocabulary (Gemma 3 270M: 262,144 words): the harness's forward pass
(left-padded, ``logits_to_keep``) against the same batches with every position's logits,
timed side by side, and the figures of both checked equal.

    python benchmarks/answer_logits_speed.py --model gemma3-270m --items 8

The model is scored as it is (--unlearn-inject=never), on the first --items val items of
the builtin privacy data; each time is the median of --repeats rounds that run both
variants (the order rotating).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="gemma3-270m")
    parser.add_argument("--data", default="builtin")
    parser.add_argument("--items", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cache-dir", default=str(ROOT / ".unlearn_cache"))
    args = parser.parse_args()

    import torch
    from scoring_speed import interleaved_medians, raw_batched_forwards

    from pytest_unlearn.encoding import collate, encode_all, length_buckets
    from pytest_unlearn.options import settings_for_script
    from pytest_unlearn.scoring import _answer_figures, answer_logits
    from pytest_unlearn.session import UnlearnSession
    from pytest_unlearn.vocabulary import MAX_LENGTH

    settings = settings_for_script(
        unlearn_model=args.model,
        unlearn_data=args.data,
        unlearn_cache_dir=args.cache_dir,
        unlearn_device="cpu",
        unlearn_dtype="float32",
        unlearn_inject="never",
    )
    session = UnlearnSession(settings, progress=lambda message: print(message, flush=True))
    data = session.domain_data("privacy")
    started = time.perf_counter()
    handle = session.pipeline.load_vanilla(data)
    load_s = time.perf_counter() - started
    model, pad = handle.model, handle.pad_id
    model.eval()
    records = [item.record for item in data.items()[: args.items]]
    encoded = encode_all(handle.tokenizer, records, MAX_LENGTH, "val")
    tokens = sum(len(enc.input_ids) for enc in encoded)
    answer_tokens = sum(enc.answer_length for enc in encoded)
    vocabulary = model.get_output_embeddings().weight.shape[0]

    # Both ways give the same figures (left-padded batches, full logits cut afterwards).
    gaps, differing = [], 0
    with torch.inference_mode():
        for indices in length_buckets(encoded, args.batch_size):
            batch = collate([encoded[i] for i in indices], pad, model.device, left=True)
            kept = _answer_figures(*answer_logits(model, batch))
            full = model(
                input_ids=batch["input_ids"],
                attention_mask=batch["attention_mask"],
                position_ids=batch["position_ids"],
            ).logits
            every = _answer_figures(full, batch["labels"])
            gaps += [abs(a - b) for a, b in zip(kept[1], every[1])]
            differing += sum(a != b for a, b in zip(kept[0], every[0]))
    raw_batched_forwards(model, encoded, pad, args.batch_size, True)  # warm-up
    timings = interleaved_medians(
        {
            "answers only": lambda: raw_batched_forwards(
                model, encoded, pad, args.batch_size, True
            ),
            "every position": lambda: raw_batched_forwards(
                model, encoded, pad, args.batch_size, False
            ),
        },
        args.repeats,
    )
    kept_s, full_s = timings["answers only"][0], timings["every position"][0]
    print(f"command: python benchmarks/answer_logits_speed.py {' '.join(sys.argv[1:])}")
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, Python {platform.python_version()}"
    )
    print(
        f"model: {args.model} ({sum(p.numel() for p in model.parameters()) / 1e6:.1f}M "
        f"parameters, vocabulary {vocabulary}, {model.dtype}), loaded in {load_s:.0f} s; "
        f"{len(encoded)} items, {tokens} tokens, {answer_tokens} answer tokens; batch size "
        f"{args.batch_size}; median of {args.repeats}"
    )
    print(f"  output layer on answer positions only  {kept_s:8.3f} s")
    print(f"  output layer on every position         {full_s:8.3f} s  ({full_s / kept_s:.2f}x)")
    print(
        f"  items whose token accuracy differs between the two: {differing} of "
        f"{len(encoded)}; largest gap in an item's mean log-probability {max(gaps):.2e}"
    )


if __name__ == "__main__":
    main()
