from raymer.wer import edit_distance, normalize_words, wer, word_errors


def test_normalisation_ignores_case_and_punctuation():
    assert normalize_words("Hello, World! It's fine-tuned.") == [
        "hello",
        "world",
        "its",
        "fine",
        "tuned",
    ]


def test_edit_distance_counts_each_kind():
    assert edit_distance(["a", "b", "c"], ["a", "x", "c", "d"]) == 2
    assert edit_distance([], ["a"]) == 1


def test_wer_values():
    assert wer("The cat sat.", "the cat sat") == 0.0
    assert wer("the cat sat", "the dog sat") == 1 / 3
    assert word_errors("one two", "") == (2, 2)
