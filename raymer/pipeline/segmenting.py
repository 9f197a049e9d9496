"""The decode-and-segment tasks of ``raymer recognize``: each input row (a recording) ->
its Whisper windows (one row each, holding its segments), decoded a chunk at a time within
the decode guard, cut at pauses and packed (``raymer.audio.segment``); a file that fails is
one error row, written where it fails."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack

import numpy as np

from raymer import storage
from raymer.audio.decode import check_file
from raymer.audio.segment import split, windows_of
from raymer.config.recognize import RecognizeConfig
from raymer.inference.parties import open_heard, overlapped, streams_of
from raymer.pipeline import faults
from raymer.pipeline.rows import NO_PATH, Batch, file_failure, row_columns, to_rows, write_errors
from raymer.pipeline.shards import source_of
from raymer.pipeline.supervisions import span_of


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
_ERROR_BASE |= {"last": False, "channels": None}


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
    makes a row per segment of it. A recording heard as parties (a channel each, or a
    diarizer's speaker each: ``parties.open_heard``, the library's rule) gives each party's
    windows in turn, its pieces numbered on from the party before and named after their
    party; the write task puts them in time order (``recognize_writes``)."""
    base, path = _ERROR_BASE, row.get("path")
    if not path:
        stage, error = NO_PATH
        yield row | base | {"error": error, "stage": stage}
        return
    source, unread = source_of(row)  # a shard row's bytes (out of the row), else its path
    if unread:
        yield row | base | {"error": unread, "stage": "read"}
        return
    opened = False
    try:
        turns = _turns_file(row, cfg)
        if isinstance(source, str):
            check_file(path, cfg.decode)  # a FIFO or a huge file is refused before it is opened
        opened = True
        with ExitStack() as held:
            streams, names, found, channels = streams_of(_heard(row, source, cfg, held, turns))
            duration = streams[0].duration_s  # the header's (None where it has none)
            cutting = cfg.segment
            if names[0] is not None:  # a party's turns: cut at its pauses, whatever its length
                cutting = cutting.model_copy(update={"segment_over_s": 0.0})
            windows = _party_windows(streams, names, cutting, cfg)
            for (window, segs, offset, name), last in _with_last(windows):
                pieces = [
                    {"segment": offset + s.index, "start_s": s.start_s, "end_s": s.end_s,
                     "speech_s": s.speech_s, "samples": int(s.audio.size),
                     "duration_s": duration or s.total_s, "speaker": name,
                     "overlapped": overlapped(found, name, s.start_s, s.end_s) if found else None}
                    for s in segs
                ]  # fmt: skip
                yield (
                    row
                    | base
                    | {
                        "segment": offset + segs[0].index,
                        "start_s": segs[0].start_s,
                        "end_s": segs[-1].end_s,
                        "duration_s": duration or segs[-1].total_s,
                        "speech_s": sum(s.speech_s for s in segs),
                        "audio": b"".join(a.astype(np.float32).tobytes() for a, _ in window.pieces),
                        "pieces": json.dumps(pieces),
                        "packed": window.packed,
                        "last": last,
                        "channels": channels,
                    }
                )
    except Exception as err:  # a decoder bug too must cost one file, not the run
        stage, error = file_failure(path, err, opened)
        yield row | base | {"error": error, "stage": stage}


def _heard(row: dict, source, cfg: RecognizeConfig, held: ExitStack, turns):
    """``parties.open_heard`` on a row's source: its file (named for its turns by its path,
    a shard row by its id), a Lhotse supervision's span and channel of its recording."""
    path = row.get("path")
    name = path if isinstance(source, str) else str(row.get("id"))
    span, channel = span_of(row)
    return open_heard(
        source, cfg.decode, cfg.segment, held, turns, name, span=span, channel=channel
    )


def _party_windows(streams: list, names: list, cutting, cfg: RecognizeConfig) -> Iterator[tuple]:
    """Each stream's windows in turn: (window, its segments, what their numbers in the
    stream are offset by in the recording, the stream's party): numbered on across the
    streams."""
    offset = 0
    for stream, name in zip(streams, names, strict=True):
        segments = split(iter(stream), cutting, cfg.speech)
        count = 0
        for window, segs in windows_of(segments, cfg.speech):
            yield window, segs, offset, name
            count = segs[-1].index + 1
        offset += count


def _turns_file(row: dict, cfg: RecognizeConfig) -> str | None:
    """The recording's speaker turns: its manifest's ``turns`` column, else ``ID.rttm`` in
    the ``turns`` folder where there is one; None: heard as one stream."""
    if row.get("turns"):
        return str(row["turns"])
    if cfg.turns is None:
        return None
    uri = storage.join(cfg.turns, f"{row['id']}.rttm")
    return uri if storage.exists(uri) else None
