"""The tiny model: a LLaMA-architecture model of about 1.4M parameters with a byte-level BPE
tokenizer trained offline on the data it will learn, built in code, so that the whole
harness runs on a CPU with no download. It knows nothing until knowledge injection
trains it, in full, on the domain's records.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .encoding import SEPARATOR, pad_token_id

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from .data import Record

# The architecture, built from this config in code.
TINY_ARCHITECTURE: dict[str, Any] = {
    "hidden_size": 128,
    "intermediate_size": 384,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "num_key_value_heads": 4,
    "max_position_embeddings": 512,
    "rms_norm_eps": 1e-6,
    "tie_word_embeddings": True,
}
TINY_VOCAB_SIZE = 4000
TINY_SPECIAL_TOKENS = {
    "bos_token": "<s>",
    "eos_token": "</s>",
    "pad_token": "<pad>",
    "unk_token": "<unk>",
}


def train_tiny_tokenizer(texts: Iterable[str]) -> PreTrainedTokenizerBase:
    """A byte-level BPE tokenizer trained offline on the given texts; adds BOS like Llama."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    specials = list(TINY_SPECIAL_TOKENS.values())
    backend = Tokenizer(models.BPE(unk_token=TINY_SPECIAL_TOKENS["unk_token"]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=TINY_VOCAB_SIZE,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(list(texts), trainer=trainer)
    bos = TINY_SPECIAL_TOKENS["bos_token"]
    backend.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A",
        pair=f"{bos} $A {bos} $B",
        special_tokens=[(bos, backend.token_to_id(bos))],
    )
    return PreTrainedTokenizerFast(tokenizer_object=backend, **TINY_SPECIAL_TOKENS)


def tokenizer_texts(records: Iterable[Record]) -> list[str]:
    return [record.question + SEPARATOR + record.answer for record in records]


def build_tiny_model(tokenizer: PreTrainedTokenizerBase, seed: int) -> PreTrainedModel:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=pad_token_id(tokenizer),
        **TINY_ARCHITECTURE,
    )
    torch.manual_seed(seed)
    return LlamaForCausalLM(config)


def tiny_from_files(folder: Path) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Rebuild a cached tiny model's skeleton (weights are loaded by the caller)."""
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    tokenizer = PreTrainedTokenizerFast(
        tokenizer_file=str(folder / "tokenizer.json"), **TINY_SPECIAL_TOKENS
    )
    config = LlamaConfig.from_dict(json.loads((folder / "model_config.json").read_text()))
    return LlamaForCausalLM(config), tokenizer
