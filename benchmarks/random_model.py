"""Write a randomly initialised LLaMA-architecture model and its tokenizer to a folder, in the
Hugging Face layout ``--model`` takes, for exercising the pretrained-model path (bf16,
device placement, LoRA injection, gradient checkpointing) on a machine without network.

Its weights are random, so its success rates mean nothing; it is for speed, memory and the
code path. The tokenizer is the tiny model's (byte-level BPE trained on the builtin data).

    python benchmarks/random_model.py /tmp/random-1b --hidden 2048 --layers 16
"""

from __future__ import annotations

import argparse
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--hidden", type=int, default=2048)
    parser.add_argument("--layers", type=int, default=16)
    parser.add_argument("--heads", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from pytest_unlearn.data import load_domain, load_general_text
    from pytest_unlearn.tiny import tokenizer_texts, train_tiny_tokenizer

    records = [
        record
        for domain in ("privacy", "copyright")
        for record in load_domain("builtin", domain).all_records()
    ]
    tokenizer = train_tiny_tokenizer(tokenizer_texts(records + load_general_text()))
    torch.manual_seed(args.seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=args.hidden,
        num_hidden_layers=args.layers,
        num_attention_heads=args.heads,
        num_key_value_heads=args.heads,
        intermediate_size=args.hidden * 11 // 4,
        max_position_embeddings=2048,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        torch_dtype="bfloat16",
    )
    model = LlamaForCausalLM(config).to(torch.bfloat16)
    args.folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(args.folder)
    tokenizer.save_pretrained(args.folder)
    parameters = sum(p.numel() for p in model.parameters())
    print(
        f"wrote {args.folder}: LLaMA, {parameters / 1e9:.2f}B parameters, bfloat16, "
        f"vocabulary {len(tokenizer)}"
    )


if __name__ == "__main__":
    main()
