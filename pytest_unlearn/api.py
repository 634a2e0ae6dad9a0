"""Everything an unlearning method needs, in one public module.

A method is a subclass of `UnlearningMethod`, generic over its config dataclass (which
usually inherits `TrainSettings`, the optimizer and schedule fields); its ``unlearn`` gets
an `UnlearnContext` (the vanilla model, its trainable tensors, the domain's records) and
returns a `MethodResult`. The pieces below build its loss: records are encoded
(`encode_records`), each item's loss is computed per item (`answer_nll`, `weighted_nll`,
`kl_to_reference`, ...), and `train_and_report` runs the shared `Trainer` (AdamW, cosine
schedule with warmup, per-item averaging, the harness's progress and training curves) and
wraps its log. `MethodConformance` is the battery every method must pass::

    from pytest_unlearn.api import MethodConformance

    class TestMyMethod(MethodConformance):
        method_under_test = MyMethod

The built-in methods (``methods/``) import from here only; ``tests/test_api.py`` checks that
they do and that README's example is a working method.
"""

from __future__ import annotations

from .conformance import MethodConformance
from .data import Record
from .encoding import Encoded, collate, encode_all, pad_token_id
from .errors import UnlearnError
from .method import MethodResult, UnlearnContext, UnlearningMethod
from .models import set_trainable
from .objectives import (
    FrozenReference,
    WeightedItem,
    answer_logprob_and_length,
    encode_records,
    interleave,
    kl_to_reference,
    random_token_ids,
    special_token_ids,
    train_and_report,
    weighted_nll,
    with_adversarial_targets,
    with_random_targets,
)
from .scoring import per_item_nll
from .sharding import is_sharded
from .training import Trainer, TrainLog, TrainSettings, answer_nll

__all__ = [
    # the interface
    "UnlearningMethod",
    "UnlearnContext",
    "MethodResult",
    "Record",
    "UnlearnError",
    # training
    "TrainSettings",
    "Trainer",
    "TrainLog",
    "train_and_report",
    # encoding
    "Encoded",
    "encode_records",
    "encode_all",
    "collate",
    "pad_token_id",
    # losses, per item
    "answer_nll",
    "per_item_nll",
    "weighted_nll",
    "WeightedItem",
    "interleave",
    "answer_logprob_and_length",
    "kl_to_reference",
    "FrozenReference",
    # alternative labels
    "random_token_ids",
    "special_token_ids",
    "with_random_targets",
    "with_adversarial_targets",
    # the model's tensors
    "set_trainable",
    "is_sharded",
    # the conformance battery
    "MethodConformance",
]
