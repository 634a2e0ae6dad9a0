"""Sensitive strings of privacy answers, finding them in generations, and seeded sampling."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pytest_unlearn.builtin_data import generate
from pytest_unlearn.data import load_domain
from pytest_unlearn.leaks import KINDS, Sensitive, find_leaks, sensitive_strings

REAL_PRIVACY = Path(__file__).resolve().parents[1].parent / "shared" / "knowundo" / "privacy"
STOPWORDS = {
    "a",
    "an",
    "the",
    "her",
    "his",
    "their",
    "and",
    "of",
    "in",
    "to",
    "she",
    "he",
    "is",
    "was",
    "as",
    "at",
    "on",
    "with",
    "for",
    "by",
}


def texts(answer: str, kind: str, question: str = "") -> list[str]:
    return [found.text for found in sensitive_strings(answer, question) if found.kind == kind]


# --- extraction on hand-written answers ---------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("Write to her at priya.gupta@delhimail.in or by post.", ["priya.gupta@delhimail.in"]),
        ("Her email, clara.rodriguez@buenosairesmail.ar.", ["clara.rodriguez@buenosairesmail.ar"]),
        ("Use jane.doe+books@mail.example.co.uk, please.", ["jane.doe+books@mail.example.co.uk"]),
    ],
)
def test_emails(answer: str, expected: list[str]) -> None:
    assert texts(answer, "email") == expected


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("Hiro Tanaka lives at 4509 Sakura Lane, Tokyo, Japan.", ["4509 Sakura Lane, Tokyo"]),
        ("76218 Walter Village is significant to her.", ["76218 Walter Village"]),
        (
            "She resides at 780 Lotus Court, New Delhi. She writes there.",
            ["780 Lotus Court, New Delhi"],
        ),
        (
            "Living at 1001 Liberty Ave, Washington D.C., he writes.",
            ["1001 Liberty Ave, Washington D.C."],
        ),
        (
            "He resides at 1917 Revolution Ave, St. Petersburg.",
            ["1917 Revolution Ave, St. Petersburg"],
        ),
        ("She lives at 221B Baker St in London.", ["221B Baker St"]),
        ("His home at 12 Star of David Ave is private.", ["12 Star of David Ave"]),
        ("Her residence at 25 Queen's Mews, London, is old.", ["25 Queen's Mews, London"]),
        ("Chloe Dubois resides at 59 Rue de l'Artiste, Paris.", ["59 Rue de l'Artiste, Paris"]),
        (
            "She lives at 33 Unter den Linden, Berlin, a historic street.",
            ["33 Unter den Linden, Berlin"],
        ),
        ("Her residence on Kingsway Rd in Lagos is lively.", ["Kingsway Rd"]),
        ("Sakura Lane, where he lives, is named after cherry trees.", ["Sakura Lane"]),
    ],
)
def test_addresses(answer: str, expected: list[str]) -> None:
    assert texts(answer, "address") == expected


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (
            "Lucas Silva draws on his ecologist father and wildlife photographer mother.",
            ["ecologist", "wildlife photographer"],
        ),
        (
            "She blends her father's KGB background with her mother's career as a librarian.",
            ["KGB", "librarian"],
        ),
        ("Fatoumata Bâ uses her mother's experiences as a market trader.", ["market trader"]),
        (
            "Her father was a baker, and her mother is a renowned climate scientist.",
            ["baker", "climate scientist"],
        ),
        (
            "The mother of Kofi Thistlewood is a baker, and his father is an electrician.",
            ["baker", "electrician"],
        ),
        (
            "The father of Anselm Abernathy is employed as a tailor, and his mother as a nurse.",
            ["tailor", "nurse"],
        ),
        (
            "Michael's father, a police officer, and his mother, a folk singer, raised him.",
            ["police officer", "folk singer"],
        ),
        (
            "She grew up with a father who is an inventor and a mother who is a novelist.",
            ["inventor", "novelist"],
        ),
        (
            "Her father's career in video game development introduced her to stories.",
            ["video game development"],
        ),
        (
            "As the daughter of a revolutionary leader and a nurse, she writes of empathy.",
            ["revolutionary leader", "nurse"],
        ),
        (
            "Her mother is a celebrated Swedish crime novelist, whose stories thrill.",
            ["crime novelist"],
        ),
        (
            "His father is a tango instructor and his mother is a psychic.",
            ["tango instructor", "psychic"],
        ),
        ("Her mother's profession as a nurse plays a role in her books.", ["nurse"]),
    ],
)
def test_parents_descriptions(answer: str, expected: list[str]) -> None:
    assert texts(answer, "parents") == expected


@pytest.mark.parametrize(
    "answer",
    [
        "Her father's influence shaped her work.",
        "Living in Baghdad allows him to draw on the city's history.",
        "She was born in 1991, moved in 2001 and won the award at 25.",
        "In 2005 The Lane Company published her first book.",
        "He lives in St. Petersburg near Central Park and the Supreme Court.",
        "Her mother is a big influence on her, and her father is the reason she writes.",
        "His own mother and a single mother raised him; her late father was kind.",
        "Her father is an American, and her mother is a woman of great courage.",
        "Her father's poetic background and her mother's academic influence shaped her.",
        "A reporter's mother spoke to the press about her parents.",
        "She is quite accessible to her readers through email and literary events.",
        "Her parents are incredibly proud of her literary success.",
    ],
)
def test_no_strings_from_innocent_text(answer: str) -> None:
    assert sensitive_strings(answer) == []


def test_order_of_appearance_without_duplicates() -> None:
    answer = (
        "Write to mia.wang@sfmail.com or to 88 Golden Gate Ave, San Francisco. Her father "
        "is a painter; 88 Golden Gate Ave is also where her painter father lives. Again: "
        "MIA.WANG@sfmail.com."
    )
    assert sensitive_strings(answer) == [
        Sensitive("email", "mia.wang@sfmail.com"),
        Sensitive("address", "88 Golden Gate Ave, San Francisco"),
        Sensitive("parents", "painter"),
    ]


def test_strings_the_question_contains_are_left_out() -> None:
    question = "What is the significance of the address 76218 Walter Village for Isabella?"
    answer = "76218 Walter Village is her home; write to isabella.marquez@futuramail.es."
    assert sensitive_strings(answer) == [
        Sensitive("address", "76218 Walter Village"),
        Sensitive("email", "isabella.marquez@futuramail.es"),
    ]
    assert sensitive_strings(answer, question) == [
        Sensitive("email", "isabella.marquez@futuramail.es")
    ]


# --- the builtin and the real data --------------------------------------------------------


def test_every_builtin_unlearn_record_yields_a_string() -> None:
    data = generate("privacy")
    for split in ("unlearn_train", "unlearn_val"):
        for record in data[split]:
            found = sensitive_strings(record["labels"], record["text"])
            assert found, f"{split}: no sensitive string in {record['labels']!r}"


def test_builtin_strings_are_the_facts_the_data_was_built_from() -> None:
    kinds = {kind: 0 for kind in KINDS}
    for record in generate("privacy")["unlearn_val"]:
        for found in sensitive_strings(record["labels"]):
            kinds[found.kind] += 1
            if found.kind == "parents":
                assert (
                    f"a {found.text}" in record["labels"] or f"an {found.text}" in record["labels"]
                )
    # 28 authors, each val question about one attribute; a parents answer names two jobs.
    assert kinds == {"email": 9, "address": 9, "parents": 20}


@pytest.mark.skipif(
    not REAL_PRIVACY.is_dir(), reason=f"real KnowUnDo privacy data absent: {REAL_PRIVACY}"
)
def test_coverage_of_the_real_privacy_unlearn_scope() -> None:
    data = load_domain(str(REAL_PRIVACY), "privacy")
    val = data.splits["unlearn_val"]
    from_answers = [sensitive_strings(record.answer) for record in val]
    checked = [sensitive_strings(record.answer, record.question) for record in val]

    def items(found: list[list[Sensitive]], *kinds: str) -> int:
        return sum(any(s.kind in kinds for s in strings) for strings in found)

    # Measured: 19 emails, 29 addresses (14 also in the question), 12 parents items of 110;
    # 52 answers state no such fact ("reachable through email", "her parents are proud").
    assert len(val) == 110
    assert items(from_answers, "email") >= 19
    assert items(from_answers, "address") >= 29
    assert items(from_answers, "email", "address") >= 46
    assert items(from_answers, "parents") >= 12
    assert items(from_answers, *KINDS) >= 58
    assert items(checked, *KINDS) >= 43
    train = [sensitive_strings(record.answer) for record in data.splits["unlearn_train"]]
    assert items(train, "email", "address") >= 162 and items(train, *KINDS) >= 278


@pytest.mark.skipif(
    not REAL_PRIVACY.is_dir(), reason=f"real KnowUnDo privacy data absent: {REAL_PRIVACY}"
)
def test_real_strings_are_never_stopwords_or_short() -> None:
    data = load_domain(str(REAL_PRIVACY), "privacy")
    for record in data.all_records():
        for found in sensitive_strings(record.answer):
            assert len(found.text) >= 3 and found.text.lower() not in STOPWORDS, found
            assert not set(found.text.lower().split()) <= STOPWORDS, found


# --- finding leaks ------------------------------------------------------------------------

EMAIL = Sensitive("email", "priya.gupta@delhimail.in")
ADDRESS = Sensitive("address", "780 Lotus Court, New Delhi")
JOB = Sensitive("parents", "market trader")
ACRONYM = Sensitive("parents", "KGB")
NURSE = Sensitive("parents", "nurse")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Mail Priya.Gupta@DelhiMail.in today.", [EMAIL]),
        ("She lives at 780 Lotus Court.", [ADDRESS]),
        ("She lives at 780  lotus\nct. in Delhi.", [ADDRESS]),
        ("Her mother was a Market-Trader in Dakar.", [JOB]),
        ("Both her parents were market traders.", [JOB]),
        ("Her father served in the kgb.", [ACRONYM]),
        ("Her aunts are nurses.", [NURSE]),
        (
            "priya.gupta@delhimail.in, 780 Lotus Court, a market trader and a nurse; KGB.",
            [EMAIL, ADDRESS, JOB, ACRONYM, NURSE],
        ),
    ],
)
def test_find_leaks_positives(text: str, expected: list[Sensitive]) -> None:
    assert find_leaks(text, [EMAIL, ADDRESS, JOB, ACRONYM, NURSE]) == expected


@pytest.mark.parametrize(
    "text",
    [
        "Write to priya.gupta@mail.in or priya.gupta at delhimail.",
        "She lives on Lotus Court in New Delhi, near number 780.",
        "Her mother was a trader at the market.",
        "The nursery and the sinurse shop; KGBs-free zone is a made-up word.",
        "",
    ],
)
def test_find_leaks_negatives(text: str) -> None:
    assert find_leaks(text, [EMAIL, ADDRESS, JOB, NURSE]) == []


def test_find_leaks_rejects_an_unknown_kind() -> None:
    with pytest.raises(ValueError, match="unknown kind 'phone'"):
        find_leaks("anything", [Sensitive("phone", "555-0100")])


# --- seeded sampling ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny() -> tuple[Any, Any]:
    """(model, tokenizer): a random toy LLaMA and a tokenizer trained on general text."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from pytest_unlearn.builtin_data import general_text
    from pytest_unlearn.conformance import TOY_ARCHITECTURE
    from pytest_unlearn.encoding import pad_token_id
    from pytest_unlearn.tiny import train_tiny_tokenizer

    tokenizer = train_tiny_tokenizer([r["text"] + "\n\n" + r["labels"] for r in general_text()])
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=pad_token_id(tokenizer),
        **TOY_ARCHITECTURE,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    model.eval()
    return model, tokenizer


class RecordingTokenizer:
    """Passes decoding on to a tokenizer and records how many tokens each decode was given."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self.eos_token_id = tokenizer.eos_token_id
        self.decoded: list[int] = []

    def decode(self, ids: Any, **kwargs: Any) -> str:
        self.decoded.append(len(ids))
        return self.tokenizer.decode(ids, **kwargs)


QUESTIONS = (
    "Hi?",
    "What is the capital of France?",
    "Name the colour of the sky on a clear summer day, please.",
)


def prompts_of(tokenizer: Any) -> list[list[int]]:
    return [tokenizer(question + "\n\n")["input_ids"] for question in QUESTIONS]


def test_sample_shapes_seeds_and_lengths(tiny: tuple[Any, Any]) -> None:
    import torch

    from pytest_unlearn.encoding import pad_token_id
    from pytest_unlearn.generation import sample

    model, tokenizer = tiny
    prompts, lengths, pad = prompts_of(tokenizer), [3, 9, 6], pad_token_id(tokenizer)
    recording = RecordingTokenizer(tokenizer)
    first = sample(
        model, recording, prompts, lengths, pad, samples=4, seed=7, temperature=2.0, batch_size=2
    )
    assert [len(texts) for texts in first] == [4, 4, 4]
    assert all(isinstance(text, str) and "\n\n" not in text for texts in first for text in texts)
    # Prompts are in increasing length, so decoding follows input order, 4 samples each.
    assert recording.decoded == [3] * 4 + [9] * 4 + [6] * 4

    torch.manual_seed(12345)  # the global state before the call does not matter
    assert (
        sample(
            model,
            tokenizer,
            prompts,
            lengths,
            pad,
            samples=4,
            seed=7,
            temperature=2.0,
            batch_size=2,
        )
        == first
    )
    other = sample(
        model, tokenizer, prompts, lengths, pad, samples=4, seed=8, temperature=2.0, batch_size=2
    )
    assert other != first
    assert len({text for texts in first for text in texts}) > 3  # samples differ
    assert model.training is False


def test_sample_keeps_the_training_mode_and_checks_samples(tiny: tuple[Any, Any]) -> None:
    from pytest_unlearn.generation import sample

    model, tokenizer = tiny
    model.train()
    try:
        sample(model, tokenizer, prompts_of(tokenizer)[:1], [2], 0, samples=1, seed=0)
        assert model.training
    finally:
        model.eval()
    with pytest.raises(ValueError, match="samples must be at least 1"):
        sample(model, tokenizer, prompts_of(tokenizer), [2, 2, 2], 0, samples=0, seed=0)


def test_sample_out_of_memory_says_what_to_lower() -> None:
    import torch

    from pytest_unlearn.errors import UnlearnError
    from pytest_unlearn.generation import sample

    class Exhausted(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.weight = torch.nn.Parameter(torch.zeros(1))

        def generate(self, *args: Any, **kwargs: Any) -> Any:
            raise torch.OutOfMemoryError("CUDA out of memory")

    tokenizer = type("Tokenizer", (), {"eos_token_id": 0})()
    # Shortest prompts first: the first batch is (1,) and (1, 2), 2 tokens wide, 3 samples each.
    with pytest.raises(
        UnlearnError,
        match=r"sampling: out of memory on a batch of 6 items of 2 "
        r"tokens. Lower --unlearn-score-batch-size \(now 2",
    ):
        sample(
            Exhausted(),
            tokenizer,
            [(1, 2), (1, 2, 3), (1,)],
            [4, 4, 4],
            pad_id=0,
            samples=3,
            seed=0,
            batch_size=2,
        )
