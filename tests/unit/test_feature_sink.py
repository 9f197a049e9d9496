"""The sums an extract's write tasks hand back (``pipeline/feature_sink.py``): the summary."""

import pyarrow as pa
import pytest

from raymer.pipeline.feature_sink import Written, written


def _rows(*rows):
    names = ("duration_s", "wer", "reference_text", "augment")
    return pa.table({n: [r[i] for r in rows] for i, n in enumerate(names)})


def test_a_copy_counts_its_audio_not_its_words_and_a_clip_without_reference_no_words():
    table = _rows(
        (2.0, 0.5, "one two three four", None),  # 4 words, 2 errors
        (3.0, 0.0, "five six", None),  # 2 words
        (2.5, 0.4, "one two three four", "speed 1.1"),  # a copy: audio only
        (1.0, None, "", None),  # no reference: no WER
    )
    done = written(table)
    assert (done.rows, done.copies, done.clips) == (4, 1, 3)
    assert done.seconds == pytest.approx(8.5)
    assert (done.edits, done.words) == (pytest.approx(2.0), 6)
    assert done.wer == pytest.approx(2 / 6)


def test_tasks_add_up_and_an_empty_run_has_no_wer():
    a = written(_rows((1.0, 0.25, "a b c d", None)))
    b = written(_rows((2.0, 0.0, "e f", None), (2.0, None, None, "noise")))
    total = Written().add(a).add(None).add(b)
    assert (total.rows, total.clips, total.copies, total.words) == (3, 2, 1, 6)
    assert total.wer == pytest.approx(1 / 6) and total.seconds == pytest.approx(5.0)
    assert Written().wer is None and Written().clips == 0
