"""Loading and checking KnowUnDo data: folders, the hub layout, bad input."""

import json
from pathlib import Path

import pytest

from pytest_unlearn.data import load_domain, load_general_text
from pytest_unlearn.errors import UnlearnError
from pytest_unlearn.vocabulary import SPLITS

REAL_PRIVACY = Path(__file__).resolve().parents[2] / "shared" / "knowundo" / "privacy"


def write_folder(folder: Path, overrides: dict | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for split in SPLITS:
        records = [{"text": f"{split} question {i}?", "labels": f"answer {i}."} for i in range(3)]
        content = (overrides or {}).get(split, records)
        (folder / f"{split}.json").write_text(
            content if isinstance(content, str) else json.dumps(content)
        )
    return folder


def test_builtin_items_have_stable_ids():
    data = load_domain("builtin", "privacy")
    items = data.items()
    assert [item.id for item in items[:2]] == ["privacy-unlearn-000", "privacy-unlearn-001"]
    assert {item.scope for item in items} == {"unlearn", "retention"}
    assert data.content_hash() == load_domain("builtin", "privacy").content_hash()


def test_injection_uses_every_record():
    data = load_domain("builtin", "copyright")
    assert len(data.all_records()) == sum(len(data.splits[s]) for s in SPLITS)


def test_folder_with_domain_subfolder(tmp_path):
    write_folder(tmp_path / "copyright")
    data = load_domain(str(tmp_path), "copyright")
    assert len(data.items()) == 6


def test_folder_named_after_another_domain_is_refused(tmp_path):
    folder = write_folder(tmp_path / "privacy")
    with pytest.raises(UnlearnError, match="holds the 'privacy' domain"):
        load_domain(str(folder), "copyright")


def test_missing_files_are_listed(tmp_path):
    folder = write_folder(tmp_path / "mine")
    (folder / "retention_val.json").unlink()
    with pytest.raises(UnlearnError, match="lacks retention_val.json"):
        load_domain(str(folder), "privacy")


@pytest.mark.parametrize(
    "content, message",
    [
        ("{not json", "not valid JSON"),
        ({"text": "q", "labels": "a"}, "expected a JSON array"),
        ([], "the split is empty"),
        ([{"text": "q?"}], "record 0: missing field 'labels'"),
        ([{"text": "q?", "labels": 3}], "record 0: field 'labels' must be a string"),
        ([{"text": " ", "labels": "a"}], "record 0: field 'text' is empty"),
        (["q?"], "record 0: expected an object"),
    ],
)
def test_bad_records_name_file_and_record(tmp_path, content, message):
    folder = write_folder(tmp_path / "mine", {"unlearn_val": content})
    with pytest.raises(UnlearnError) as error:
        load_domain(str(folder), "privacy")
    assert message in str(error.value)
    assert "unlearn_val.json" in str(error.value)


def test_a_data_file_that_is_not_utf8_is_named(tmp_path):
    folder = write_folder(tmp_path / "mine")
    (folder / "retention_val.json").write_bytes(b'[{"text": "caf\xe9?", "labels": "a."}]')
    with pytest.raises(
        UnlearnError, match=r"retention_val.json: not UTF-8 text .* at byte 14\); save it as UTF-8"
    ):
        load_domain(str(folder), "privacy")


@pytest.mark.parametrize(
    "name, content, message",
    [
        (
            "ood.jsonl",
            '{"text": "q1?", "labels": "a."}\n{"text": "q2?", labels}\n',
            "ood.jsonl: line 2 is not valid JSON",
        ),
        (
            "ood.json",
            '[{"text": "q1?", "labels": "a."},\n {"text": "q2?" "labels": "b."}]',
            "ood.json: not valid JSON (Expecting ',' delimiter at line 2, column",
        ),
    ],
)
def test_out_of_distribution_text_errors_name_the_line(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(UnlearnError) as error:
        load_general_text(str(path))
    assert message in str(error.value)
    path.write_bytes(b"\xff\xfe")
    with pytest.raises(UnlearnError, match=f"{name}: not UTF-8 text"):
        load_general_text(str(path))


@pytest.mark.parametrize(
    "question",
    [
        "retention_train question 0?",
        "retention_train  question 0? ",
        "retention_train\nquestion 0?",
        "retention_train question\u200b 0?",  # zero-width space
        "retention_train question 0\ufeff?",  # zero-width no-break
        "retention\u00ad_train question 0?",  # soft hyphen
        "ｒetention_train question ０?",
    ],
)  # full-width letters
def test_duplicate_question_is_an_error(tmp_path, question):
    # Whitespace alone does not make another question.
    duplicate = [{"text": question, "labels": "other."}]
    folder = write_folder(tmp_path / "mine", {"unlearn_val": duplicate})
    with pytest.raises(
        UnlearnError,
        match="retention_train.json, record 0: .* also appears at .*unlearn_val.json, record 0",
    ):
        load_domain(str(folder), "privacy")


def test_hub_layout_one_row_with_list_columns(monkeypatch):
    import datasets

    def fake_load_dataset(hub_id, name, split):
        assert (hub_id, name) == ("zjunlp/KnowUnDo", "privacy")
        row = {
            part: [{"text": f"{split} {part} {i}?", "labels": f"a{i}"} for i in range(2)]
            for part in ("train", "val")
        }
        return datasets.Dataset.from_list([row])

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    data = load_domain("zjunlp/KnowUnDo", "privacy")
    assert [len(data.splits[s]) for s in SPLITS] == [2, 2, 2, 2]
    assert data.splits["retention_val"][1].question == "retention val 1?"


def test_hub_without_network_says_how_to_use_a_local_copy(monkeypatch):
    import datasets

    def offline(*args, **kwargs):
        raise ConnectionError("no network")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(UnlearnError, match="--unlearn-data=FOLDER"):
        load_domain("zjunlp/KnowUnDo", "privacy")


@pytest.mark.skipif(not REAL_PRIVACY.is_dir(), reason=f"real KnowUnDo data absent: {REAL_PRIVACY}")
def test_real_privacy_data_counts():
    data = load_domain(str(REAL_PRIVACY), "privacy")
    sizes = {split: len(data.splits[split]) for split in SPLITS}
    assert sizes == {
        "unlearn_train": 400,
        "unlearn_val": 110,
        "retention_train": 441,
        "retention_val": 108,
    }
    assert len(data.items()) == 218


def test_a_question_too_long_to_score_names_its_file_and_record(tmp_path):
    from pytest_unlearn.encoding import encode_all
    from pytest_unlearn.tiny import train_tiny_tokenizer

    long_question = "Which of these " + "very " * 2000 + "long words is the question?"
    folder = write_folder(
        tmp_path / "data",
        {
            "unlearn_val": [
                {"text": "short?", "labels": "yes."},
                {"text": long_question, "labels": "this one."},
            ]
        },
    )
    data = load_domain(str(folder), "privacy")
    tokenizer = train_tiny_tokenizer(["a few words to learn from", long_question])
    with pytest.raises(UnlearnError) as error:
        encode_all(tokenizer, data.splits["unlearn_val"], 256, "privacy val")
    message = str(error.value)
    assert message.startswith(
        f"{folder / 'unlearn_val.json'}, record 1: the question ('Which of these very very"
    )
    assert f"{len(long_question):,} characters" in message
    assert "at most 256 tokens per record (the paper's maximum length)" in message
    assert "max_length" not in message  # no option of that name exists
