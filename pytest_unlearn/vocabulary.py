"""The benchmark's words, in one place: what every other module calls a domain, a scope,
a split, a prompt variant or a test kind, and the names a user gives the builtin data and
the tiny model. Nothing here imports pytest or any other module of the package.

KnowUnDo (Tian et al., 2024) splits each domain's knowledge into an Unlearn Scope (what the
model must forget) and a Retention Scope (what it must keep), each with a train part
(unlearning trains on it) and a val part (the items under test).
"""

from __future__ import annotations

DOMAINS = ("privacy", "copyright")
SCOPES = ("unlearn", "retention")
PARTS = ("train", "val")
SPLITS = tuple(f"{scope}_{part}" for scope in SCOPES for part in PARTS)

# --unlearn-data: the data set that ships inside the package, and KnowUnDo on the hub.
BUILTIN_DATA = "builtin"
KNOWUNDO_HUB_ID = "zjunlp/KnowUnDo"

# --model: the small model built in code, and short names for the paper's two models.
TINY_MODEL = "tiny"
MODEL_ALIASES: dict[str, str] = {
    "qwen1.5-7b": "Qwen/Qwen1.5-7B-Chat",
    "llama2-7b": "meta-llama/Llama-2-7b-chat-hf",
}

# --unlearn-prompts: the variants an item is asked under (prompts.py has their texts).
PROMPTS = ("plain", "helpful", "direct")
DEFAULT_PROMPT = "plain"

# What an item test checks: the answer teacher-forced (the paper's metrics), the same
# after a relearning attack, or the model's generations for leaked strings.
RECALL, ATTACK, LEAK = "recall", "attack", "leak"
# The same as recall, asked of the model after 8-bit and 4-bit weight quantization.
QUANT8, QUANT4 = "quant8", "quant4"
TEST_KINDS = (RECALL, ATTACK, LEAK, QUANT8, QUANT4)

# Tokens per record in training and scoring: the paper's maximum length.
MAX_LENGTH = 256
