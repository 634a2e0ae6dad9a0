"""Building blocks of the unlearning losses (pytest_unlearn.objectives)."""


def test_random_labels_are_tokens_of_the_vocabulary_only():
    # An embedding with padding rows beyond the tokenizer's vocabulary (Qwen1.5: 151,936 rows
    # for 151,646 tokens): those rows are never drawn, nor are special tokens.
    from pytest_unlearn.objectives import random_token_ids, special_token_ids

    class Tokenizer:
        all_special_ids = [0, 2]
        added_tokens_decoder = {9: "<extra>"}

        def __len__(self) -> int:
            return 10

    choices = random_token_ids(Tokenizer(), embedding_rows=16)
    assert choices == [1, 3, 4, 5, 6, 7, 8]
    assert special_token_ids(Tokenizer()) == {0, 2, 9}
