"""The retrained reference ("oracle"): the model that never learned the Unlearn Scope.

Exact unlearning is retraining without the forget data. pytest-unlearn injects the
knowledge itself, so this gold standard costs one more injection: the starting model (same
tokenizer, same seed, same recipe as the vanilla model, ``injection.py``) trained on the
Retention Scope's records alone (train and val; the tiny model also on the builtin general
text, as the vanilla one), cached like every model under a key that names what it learned.
An unlearned model is then judged by how far it is from the oracle: its membership-inference
AUC (``membership.py``, PrivLeak) and its answers' likelihoods (``forget_quality.py``).

A pretrained model tested as it is (--unlearn-inject=never) was trained elsewhere; its
oracle cannot be built here, so --unlearn-oracle names it (a model of the same architecture
and tokenizer, checked), or the tests that need one skip, saying so.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .cache import cache_key
from .data import DomainData, Record, records_hash
from .errors import UnlearnError
from .models import ModelHandle, ModelSpec, load_pretrained

if TYPE_CHECKING:
    from .pipeline import Pipeline

# The reason the oracle tests skip with, for a model tested as it is without --unlearn-oracle.
NO_ORACLE = (
    "no retrained reference: the model is tested as it is (--unlearn-inject=never), so the "
    "oracle that never learned the Unlearn Scope cannot be built here; name one with "
    "--unlearn-oracle=PATH (same architecture and tokenizer)"
)
# The oracle's name in the summary's rows.
ORACLE_ROW = "retrain"


class NoOracle(UnlearnError):
    """There is no oracle to test (``NO_ORACLE``): the tests that need one skip with it."""


def oracle_records(data: DomainData) -> list[Record]:
    """What the oracle learns: every Retention Scope record, none of the Unlearn Scope."""
    return [*data.splits["retention_train"], *data.splits["retention_val"]]


def unavailable(pipeline: Pipeline) -> str | None:
    """Why there is no oracle (the tests that need one skip with it), or None."""
    if pipeline.tested_as_it_is and pipeline.settings.oracle is None:
        return NO_ORACLE
    return None


def oracle_payload(pipeline: Pipeline, data: DomainData) -> dict[str, Any]:
    """Everything that determines the oracle: the vanilla model's recipe and what it
    learned instead of the domain's every record; or the given model's fingerprint."""
    reason = unavailable(pipeline)
    if reason is not None:
        raise NoOracle(reason)
    if pipeline.tested_as_it_is:
        given = ModelSpec.parse(str(pipeline.settings.oracle))
        return {
            "kind": "oracle",
            "model": given.fingerprint(pipeline.cache.file_hashes),
            "dtype": str(pipeline.dtype),
        }
    return {
        **pipeline.vanilla_payload(data),
        "kind": "oracle",
        "trained_on": records_hash(oracle_records(data)),
    }


def oracle_key(pipeline: Pipeline, data: DomainData) -> str:
    return cache_key(oracle_payload(pipeline, data))


def load_oracle(pipeline: Pipeline, data: DomainData) -> ModelHandle:
    """The oracle: built (once, then cached) or, for a model tested as it is, loaded from
    --unlearn-oracle after its architecture and tokenizer are checked against the model's."""
    payload = oracle_payload(pipeline, data)
    if not pipeline.tested_as_it_is:
        return pipeline.load_injected(data, payload, oracle_records(data))
    spec = ModelSpec.parse(str(pipeline.settings.oracle))
    check_same_model_kind(spec, pipeline.spec, pipeline.settings.trust_remote_code)
    pipeline.progress(f"loading the oracle {spec.requested} ({spec.location})")
    model, tokenizer = load_pretrained(
        spec, pipeline.device, pipeline.dtype, pipeline.settings.trust_remote_code
    )
    return ModelHandle(model, tokenizer, spec, [], cache_key(payload))


def check_same_model_kind(oracle: ModelSpec, tested: ModelSpec, trust_remote_code: bool) -> None:
    """--unlearn-oracle must be the tested model's kind: the same architecture (config
    model type and architectures) and the same tokenizer (vocabulary), or their
    log-probabilities do not compare. Read from their configs and tokenizers, no weights."""
    from transformers import AutoConfig, AutoTokenizer

    def read(spec: ModelSpec) -> tuple[Any, Any]:
        try:
            location = str(spec.location)
            config = AutoConfig.from_pretrained(location, trust_remote_code=trust_remote_code)
            tokenizer = AutoTokenizer.from_pretrained(location, trust_remote_code=trust_remote_code)
        except (OSError, ValueError) as error:
            raise UnlearnError(
                f"--unlearn-oracle={oracle.requested}: cannot read the config and tokenizer of "
                f"{spec.requested} ({spec.location}) to check that they match: {error}"
            ) from None
        return config, tokenizer

    oracle_config, oracle_tokenizer = read(oracle)
    tested_config, tested_tokenizer = read(tested)
    architecture = (
        oracle_config.model_type,
        tuple(getattr(oracle_config, "architectures", None) or ()),
    )
    expected = (
        tested_config.model_type,
        tuple(getattr(tested_config, "architectures", None) or ()),
    )
    if architecture != expected:
        raise UnlearnError(
            f"--unlearn-oracle={oracle.requested}: its architecture {architecture[0]} "
            f"{list(architecture[1])} is not that of the tested model {tested.requested} "
            f"({expected[0]} {list(expected[1])}); the oracle must be the tested model "
            "retrained without the Unlearn Scope"
        )
    if oracle_tokenizer.get_vocab() != tested_tokenizer.get_vocab():
        raise UnlearnError(
            f"--unlearn-oracle={oracle.requested}: its tokenizer ({len(oracle_tokenizer)} "
            f"tokens) is not that of the tested model {tested.requested} "
            f"({len(tested_tokenizer)} tokens); their log-probabilities would not compare. "
            "Give the tested model retrained without the Unlearn Scope, with its tokenizer"
        )
