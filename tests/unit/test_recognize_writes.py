"""How ``raymer recognize`` commits a recording: whole or not at all, and what a crash leaves
is taken apart before the next run (``raymer.pipeline.recognize_writes``)."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from raymer.pipeline.recognize_stages import staged_schema
from raymer.pipeline.recognize_writes import (
    TOTALS_KEY,
    Layout,
    commit,
    output_totals,
    recording_key,
    repair,
    whole,
)
from raymer.trained.checkpoint import ModelSpec

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
        run_id="run",
        plots=None,
        exports=None,
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
    written = commit(rows, 1, layout)
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
    (part,) = (tmp_path / "pending" / recording_key("b")).iterdir()
    assert [r["id"] for r in pq.read_table(part).to_pylist()] == ["b"]
    errors = pq.read_table(tmp_path / "errors").to_pylist()
    assert [(e["id"], e["stage"]) for e in errors] == [("c", "asr")]
    everything, new = output_totals(layout.recordings, LABELS, "run")
    assert everything.recordings == new.recordings == 1
    assert output_totals(layout.recordings, LABELS, "other")[1].recordings == 0


def test_the_task_that_writes_a_recordings_last_part_joins_it(layout, tmp_path):
    """A recording's segments in three tasks: committed once, whole, by whichever task
    finds every part written; a task that comes after finds nothing left to do."""
    first = commit([_row("b", 0, False), _row("d", 0, False)], 1, layout)
    assert (first.new.recordings, first.pending) == (0, 2)
    second = commit([_row("b", 2, True), _row("b", 1, False)], 2, layout)
    assert (second.new.recordings, second.pending) == (1, 0)
    stem = f"run-r-{recording_key('b')}"
    predictions = pq.read_table(tmp_path / "predictions" / f"{stem}.parquet").to_pylist()
    assert [(r["id"], r["segment"]) for r in predictions] == [("b", 0), ("b", 1), ("b", 2)]
    (rec,) = pq.read_table(tmp_path / "recordings" / f"{stem}.parquet").to_pylist()
    assert rec["segments"] == 3
    assert not (tmp_path / "pending" / recording_key("b")).exists()
    # two tasks that both saw every part write the same files: still one recording
    import shutil

    folder = tmp_path / "pending" / recording_key("e")
    assert commit([_row("e", 0, False)], 3, layout).pending == 1
    kept = tmp_path / "kept"
    shutil.copytree(folder, kept)
    assert commit([_row("e", 1, True)], 4, layout).new.recordings == 1
    shutil.copytree(kept, folder)  # as the second task saw them, before the first removed them
    assert commit([_row("e", 1, True)], 5, layout).new.recordings == 1
    totals, new = output_totals(layout.recordings, LABELS, "run")
    assert totals.recordings == new.recordings == 2
    assert sorted(p.name for p in (tmp_path / "pending").iterdir()) == [recording_key("d")]
    # a joined recording with a failed segment is reported, not committed
    commit([_row("f", 0, False)], 7, layout)
    failed = commit([_row("f", 1, True, error="speech recognition failed: boom")], 8, layout)
    assert (failed.failed, failed.new.recordings) == (1, 0)
    errors = pq.read_table(tmp_path / "errors").to_pylist()
    assert [(e["id"], e["stage"]) for e in errors] == [("f", "asr")]


def test_repair_takes_apart_what_a_crash_left(layout, tmp_path):
    commit([_row("a", 0, True)], 1, layout)
    commit([_row("b", 0, True)], 2, layout)
    commit([_row("c", 0, True)], 3, layout)
    (tmp_path / "recordings" / "run-000002.parquet").unlink()  # died before its commit
    cut = tmp_path / "predictions" / "run-000003.parquet"
    cut.write_bytes(cut.read_bytes()[:-20])  # died while writing: no footer
    repair(layout.predictions, layout.recordings)
    assert sorted(p.name for p in (tmp_path / "predictions").iterdir()) == ["run-000001.parquet"]
    assert sorted(p.name for p in (tmp_path / "recordings").iterdir()) == ["run-000001.parquet"]
    totals, _ = output_totals(layout.recordings, LABELS)
    assert (totals.recordings, totals.labels) == (1, {"happy": 1})


def test_a_part_gone_while_reading_is_fine_only_when_another_task_committed_it(
    layout, tmp_path, monkeypatch
):
    """A task lists a recording's parts, then another task commits it and removes them: the
    first finds it committed and does nothing more; a part gone for any other reason fails
    the task (Ray Data runs it again), never dropping the recording in silence."""
    from raymer import storage
    from raymer.pipeline import recognize_writes

    listed = storage.list_files
    gone = str(tmp_path / "pending" / "gone.parquet")

    def with_a_vanished_part(uri, suffixes=()):
        found = listed(uri, suffixes)
        return found + [gone] if "pending" in uri else found

    monkeypatch.setattr(recognize_writes.storage, "list_files", with_a_vanished_part)
    with pytest.raises(OSError):
        commit([_row("g", 0, False)], 1, layout)
    key = recording_key("g")
    (tmp_path / "recordings" / f"run-r-{key}.parquet").write_bytes(b"committed by another")
    quiet = commit([_row("g", 1, True)], 2, layout)
    assert (quiet.pending, quiet.new.recordings, quiet.failed) == (0, 0, 0)


def test_a_call_s_segments_are_committed_in_time_order_with_each_party_s_summary(layout, tmp_path):
    """Heard as parties, each party's stream is numbered on from the one before; the commit
    puts the segments in time order, numbered anew, and the recordings row has each party's
    summary and how the channels were heard."""
    from dataclasses import replace

    from raymer.pipeline.recognize_stages import staged_schema

    spec = ModelSpec(
        audio_dim=4, text_dim=4, labels=LABELS, hidden_dim=4, num_layers=1, num_heads=1,
        dropout=0.0, modality="fusion",
    )  # fmt: skip
    parties = replace(layout, staged=staged_schema(spec, [], parties=True), parties=True)
    rows = []
    for i, (who, start, label) in enumerate(
        [("agent", 0.0, "happy"), ("agent", 20.0, "happy"), ("customer", 5.0, "sad")]
    ):
        row = _row("call", i, i == 2, label) | {"speaker": who, "start_s": start}
        rows.append(row | {"end_s": start + 8, "overlapped": None, "channels": "split"})
    written = commit(rows, 0, parties)
    assert written.new.recordings == 1
    out = pq.read_table(tmp_path / "predictions").to_pylist()
    assert [(r["segment"], r["speaker"], r["start_s"]) for r in out] == [
        (0, "agent", 0.0), (1, "customer", 5.0), (2, "agent", 20.0),
    ]  # fmt: skip
    (record,) = pq.read_table(tmp_path / "recordings").to_pylist()
    assert record["channels"] == "split" and record["label"] == "happy"
    agent, customer = record["parties"]
    assert (agent["speaker"], agent["label"], agent["speech_s"]) == ("agent", "happy", 12.0)
    assert (customer["speaker"], customer["share_sad"]) == ("customer", 1.0)
