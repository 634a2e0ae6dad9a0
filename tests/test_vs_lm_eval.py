"""lm-eval as an external oracle for the item tests' metric (``benchmarks/vs_lm_eval.py``):
on a tiny model that learned half of 16 builtin privacy val items, lm-eval's
``HFLM.loglikelihood`` and the harness agree on every item's whole-answer flag and
log-likelihood, on the harness's tokens and on lm-eval's own."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

pytest.importorskip("lm_eval")

BENCHMARK = Path(__file__).resolve().parent.parent / "benchmarks" / "vs_lm_eval.py"


def _benchmark() -> ModuleType:
    spec = importlib.util.spec_from_file_location("vs_lm_eval", BENCHMARK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_lm_eval_and_the_harness_agree_on_every_item() -> None:
    import torch

    from pytest_unlearn.data import load_domain
    from pytest_unlearn.encoding import encode_all, pad_token_id
    from pytest_unlearn.tiny import build_tiny_model, tokenizer_texts, train_tiny_tokenizer
    from pytest_unlearn.training import Trainer, TrainSettings, answer_nll
    from pytest_unlearn.vocabulary import MAX_LENGTH

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # two threads on a busy 2-core machine are ten times slower
    try:
        data = load_domain("builtin", "privacy")
        items = data.items()
        items = items[:8] + items[-8:]  # 8 of each scope
        records = [item.record for item in items]
        tokenizer = train_tiny_tokenizer(tokenizer_texts(records))
        model = build_tiny_model(tokenizer, seed=0)
        pad = pad_token_id(tokenizer)
        # Half of the items are learned (every other one, in both scopes), so that the val
        # set holds answers recalled in full and answers that are not.
        learned = encode_all(tokenizer, records[::2], MAX_LENGTH, "learned")
        settings = TrainSettings(
            lr=1e-2, epochs=100, batch_size=len(learned), grad_accum=1, warmup_ratio=0.0
        )
        Trainer(
            model, learned, lambda batch: answer_nll(model, batch, pad), settings, 0, "learn"
        ).run()
        result = _benchmark().agreement(model, tokenizer, records, [item.id for item in items])
    finally:
        torch.set_num_threads(threads)

    for agreement in (result.harness_tokens, result.lm_eval_tokens):
        assert agreement.items == len(records)
        assert agreement.disagreeing == [], agreement.line()
        assert agreement.agrees
    # The check means something: some answers are recalled in full, some are not.
    assert 0 < result.harness_tokens.whole_answer_items < len(records)
    # lm-eval moves the separator (the context's trailing whitespace) into the continuation
    # and scores it; this model never learned to predict it (the harness trains and scores
    # answer tokens only), so under lm-eval's tokens no answer is greedy in full.
    assert result.separator_scored == len(records)
    assert result.lm_eval_tokens.whole_answer_items == 0
    assert result.flag_changed == result.harness_tokens.whole_answer_items
