"""Mean answer NLL of the vanilla (injected) model on each kind of record a method trains on.

Explains how strongly each part of a GA+GD / GA+KL loss pulls at the start of unlearning:
a retain set the model has never learned has a large NLL, and descending on it dominates
the ascent on the forget set.

    python benchmarks/probe_nll.py --data ../shared/knowundo/privacy
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from pytest_unlearn.cache import ModelCache
from pytest_unlearn.data import load_domain
from pytest_unlearn.encoding import encode_all
from pytest_unlearn.options import settings_for_script
from pytest_unlearn.pipeline import Pipeline
from pytest_unlearn.scoring import score
from pytest_unlearn.vocabulary import MAX_LENGTH


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="builtin")
    parser.add_argument("--domain", default="privacy")
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--cache-dir", default=".unlearn_cache")
    parser.add_argument(
        "--tiny-without-general-text",
        action="store_true",
        help="probe a tiny model injected with the domain only (as before the "
        "tiny model learned the general text)",
    )
    args = parser.parse_args()
    settings = settings_for_script(
        unlearn_model=args.model,
        unlearn_data=args.data,
        unlearn_cache_dir=str(Path(args.cache_dir).resolve()),
        unlearn_device="cpu",
    )
    pipeline = Pipeline(settings, ModelCache(settings.cache_dir), lambda message: None)
    if args.tiny_without_general_text:
        pipeline.injection = dataclasses.replace(pipeline.injection, tiny_learns_general_text=False)
    data = load_domain(args.data, args.domain)
    handle = pipeline.load_vanilla(data)
    sets = {
        "forget (unlearn train)": list(data.splits["unlearn_train"]),
        "retain ID (retention train)": list(data.splits["retention_train"]),
        "retain OOD (general text)": pipeline.general_text,
    }
    print(f"vanilla {args.model} on {args.data} ({args.domain})")
    print(f"{'records':30} {'n':>5} {'mean NLL':>9} {'token acc':>10}")
    for name, records in sets.items():
        scores = score(
            handle.model, encode_all(handle.tokenizer, records, MAX_LENGTH, name), handle.pad_id
        )
        nll = -sum(s.mean_logprob for s in scores) / len(scores)
        accuracy = sum(s.token_accuracy for s in scores) / len(scores)
        print(f"{name:30} {len(records):5d} {nll:9.3f} {accuracy:10.3f}")


if __name__ == "__main__":
    main()
