"""How ``raymer recognize`` commits a recording: whole or not at all, and what a crash leaves
is taken apart before the next run (``raymer.pipeline.recognize_writes``)."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from raymer.checkpoint import ModelSpec
from raymer.pipeline.recognize_stages import staged_schema
from raymer.pipeline.recognize_writes import (
    TOTALS_KEY,
    Layout,
    commit,
    output_totals,
    repair,
    whole,
)

LABELS = ["angry", "happy", "neutral", "sad"]


@pytest.fixture
def layout(tmp_path):
    spec = ModelSpec(
        audio_dim=4, text_dim=4, labels=LABELS, hidden_dim=4, num_layers=1, num_heads=1,
        dropout=0.0, modality="fusion",
    )  # fmt: skip
    for name in ("predictions", "recordings", "errors", "pending"):
        (tmp_path / name).mkdir()
    return Layout(
        predictions=str(tmp_path / "predictions"),
        recordings=str(tmp_path / "recordings"),
        errors=str(tmp_path / "errors"),
        pending=str(tmp_path / "pending"),
        plots=None,
        labels=tuple(LABELS),
        staged=staged_schema(spec, ["speaker"]),
    )


def _row(rid: str, segment: int, last: bool, label="happy", error=None) -> dict:
    scores = {f"score_{lab}": (0.7 if lab == label else 0.1) for lab in LABELS}
    return {
        "id": rid, "path": f"/a/{rid}.wav", "segment": segment, "start_s": 10.0 * segment,
        "end_s": 10.0 * segment + 8, "duration_s": 40.0, "speech_s": 6.0, "transcript": "words",
        "language": "en", "no_speech": False, "no_speech_prob": 0.01, "label": label,
        **scores, "run_id": "r1", "speaker": "s1", "error": error,
        "stage": "asr" if error else None, "last": last,
    }  # fmt: skip


def test_a_recording_is_whole_from_its_first_segment_to_the_one_marked_last():
    rows = [_row("a", 1, True), _row("a", 0, False)]
    assert [r["segment"] for r in whole(rows)] == [0, 1]
    assert whole([_row("a", 0, False), _row("a", 1, False)]) is None  # no last yet
    assert whole([_row("a", 0, False), _row("a", 2, True)]) is None  # segment 1 missing
    # a retried task's copy of a segment counts once
    assert len(whole([_row("a", 0, False), _row("a", 0, False), _row("a", 1, True)])) == 2


def test_whole_recordings_are_committed_the_rest_pending_or_reported(layout, tmp_path):
    rows = [
        _row("a", 0, False), _row("a", 1, True, label="sad"),  # whole
        _row("b", 0, False),  # its other segments are in another task
        _row("c", 0, True, error="speech recognition failed: boom"),  # whole, failed
    ]  # fmt: skip
    written = commit(rows, "run-000001", layout)
    assert (written.new.recordings, written.failed, written.pending) == (1, 1, 1)
    predictions = pq.read_table(tmp_path / "predictions" / "run-000001.parquet").to_pylist()
    assert [(r["id"], r["segment"]) for r in predictions] == [("a", 0), ("a", 1)]
    assert "error" not in predictions[0] and "last" not in predictions[0]
    assert predictions[0]["speaker"] == "s1"
    recordings = pq.read_table(tmp_path / "recordings" / "run-000001.parquet")
    (rec,) = recordings.to_pylist()
    assert rec["id"] == "a" and rec["segments"] == 2 and rec["speech_s"] == 12.0
    assert rec["label"] in ("happy", "sad") and rec["share_happy"] == pytest.approx(0.5)
    totals = json.loads(recordings.schema.metadata[TOTALS_KEY])
    assert totals["recordings"] == 1 and totals["segments"] == 2
    pending = pq.read_table(tmp_path / "pending" / "run-000001.parquet").to_pylist()
    assert [r["id"] for r in pending] == ["b"]
    errors = pq.read_table(tmp_path / "errors").to_pylist()
    assert [(e["id"], e["stage"]) for e in errors] == [("c", "asr")]
    # the finish: "b" still not whole there (its decoding failed midway) is dropped
    final = commit([_row("b", 0, False)], "run-r-b", layout, final=True)
    assert (final.new.recordings, final.failed, final.pending) == (0, 0, 0)
    assert not (tmp_path / "predictions" / "run-r-b.parquet").exists()
    assert output_totals(layout.recordings, LABELS).recordings == 1


def test_repair_takes_apart_what_a_crash_left(layout, tmp_path):
    commit([_row("a", 0, True)], "run-000001", layout)
    commit([_row("b", 0, True)], "run-000002", layout)
    commit([_row("c", 0, True)], "run-000003", layout)
    (tmp_path / "recordings" / "run-000002.parquet").unlink()  # died before its commit
    cut = tmp_path / "predictions" / "run-000003.parquet"
    cut.write_bytes(cut.read_bytes()[:-20])  # died while writing: no footer
    repair(layout.predictions, layout.recordings)
    assert sorted(p.name for p in (tmp_path / "predictions").iterdir()) == ["run-000001.parquet"]
    assert sorted(p.name for p in (tmp_path / "recordings").iterdir()) == ["run-000001.parquet"]
    totals = output_totals(layout.recordings, LABELS)
    assert (totals.recordings, totals.labels) == (1, {"happy": 1})
