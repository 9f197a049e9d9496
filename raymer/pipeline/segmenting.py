"""The decode-and-segment tasks of ``raymer recognize``: each input row (a recording) ->
its Whisper windows (one row each, holding its segments), decoded a chunk at a time within
the decode guard, cut at pauses and packed (``raymer.audio.segment``); a file that fails is
one error row, written where it fails."""

from __future__ import annotations

import json
from collections.abc import Iterator

import numpy as np

from raymer.audio.decode import check_file, open_audio
from raymer.audio.segment import split, windows_of
from raymer.config.recognize import RecognizeConfig
from raymer.pipeline import faults
from raymer.pipeline.rows import NO_PATH, Batch, file_failure, row_columns, to_rows, write_errors


def segment_batch(
    batch: Batch, cfg: RecognizeConfig, errors_uri: str, ledger=None
) -> Iterator[Batch]:
    """Input rows -> window rows (audio as float32 bytes), a few at a time, so that a long
    recording never sits whole in memory. A file that fails is one error row, written to
    ``errors_uri`` here: failures leave the job where they happen, so a corpus of broken or
    missing files never queues in front of the model stages. With a ``ledger``, a file whose
    decoding killed the task's process ``max_attempts`` times is an error row too."""
    out: list[dict] = []
    failed: list[dict] = []
    rows = to_rows(batch)
    task_key = faults.batch_key_of("decode", rows)
    # a task begun before and never finished died: its files go through the ledger one by one
    suspects = ledger if ledger is not None and faults.begin(ledger, task_key) else None
    for row in rows:
        for segment in _guarded(row, cfg, suspects):
            (out if segment["error"] is None else failed).append(segment)
            if len(out) >= cfg.batch_size:
                yield row_columns(out)
                out = []
    if failed:
        write_errors(failed, errors_uri)
    if out:
        yield row_columns(out)
    faults.finish(ledger, task_key)


def _guarded(row: dict, cfg: RecognizeConfig, ledger) -> Iterator[dict]:
    """``_segments_of``; with a ``ledger``, the file's attempts counted in it."""
    if ledger is None:
        yield from _segments_of(row, cfg)
        return
    key = f"decode:{row.get('id')}"
    died = faults.begin(ledger, key)
    if died >= cfg.max_attempts:
        stage, error = faults.died_row(died, "decode")
        yield row | _ERROR_BASE | {"error": error, "stage": stage}
    else:
        yield from _segments_of(row, cfg)
    faults.finish(ledger, key)


# An error row is segment -1: never taken for a written segment by the resume anti-join
_ERROR_BASE = {"segment": -1, "start_s": 0.0, "end_s": 0.0, "duration_s": None, "speech_s": 0.0}
_ERROR_BASE |= {"audio": b"", "pieces": "[]", "packed": False, "error": None, "stage": None}
_ERROR_BASE |= {"last": False}


def _with_last(segments: Iterator) -> Iterator[tuple]:
    """(segment, whether it is the recording's last): one segment is held back until the
    next arrives. A recording is whole in the output once its last segment is there; one
    whose decoding failed midway never has one, and is written nowhere but ``errors/``."""
    held = None
    for segment in segments:
        if held is not None:
            yield held, False
        held = segment
    if held is not None:
        yield held, True


def _segments_of(row: dict, cfg: RecognizeConfig) -> Iterator[dict]:
    """One row per Whisper window of the recording (``raymer.audio.segment.windows_of``: the
    whole of a short one, or consecutive segments of a long one): its pieces' audio one
    after the other (``audio``) and where each one is (``pieces``, JSON); the speech stage
    makes a row per segment of it."""
    base, path = _ERROR_BASE, row.get("path")
    if not path:
        stage, error = NO_PATH
        yield row | base | {"error": error, "stage": stage}
        return
    opened = False
    try:
        check_file(path, cfg.decode)  # a FIFO or a huge file is refused before it is opened
        opened = True
        with open_audio(path, cfg.decode, cfg.segment.chunk_s) as decoded:
            duration = decoded.duration_s  # the header's (None where it has none)
            segments = split(iter(decoded), cfg.segment, cfg.speech)
            for (window, segs), last in _with_last(windows_of(segments, cfg.speech)):
                pieces = [
                    {"segment": s.index, "start_s": s.start_s, "end_s": s.end_s,
                     "speech_s": s.speech_s, "samples": int(s.audio.size),
                     "duration_s": duration or s.total_s}
                    for s in segs
                ]  # fmt: skip
                yield (
                    row
                    | base
                    | {
                        "segment": segs[0].index,
                        "start_s": segs[0].start_s,
                        "end_s": segs[-1].end_s,
                        "duration_s": duration or segs[-1].total_s,
                        "speech_s": sum(s.speech_s for s in segs),
                        "audio": b"".join(a.astype(np.float32).tobytes() for a, _ in window.pieces),
                        "pieces": json.dumps(pieces),
                        "packed": window.packed,
                        "last": last,
                    }
                )
    except Exception as err:  # a decoder bug too must cost one file, not the run
        stage, error = file_failure(path, err, opened)
        yield row | base | {"error": error, "stage": stage}
