"""Calls of several parties: a recording heard as a stream per party (``Parties``), either a
channel each (``segment.channels: split``, ``heard_as``) or a diarizer's speaker turns each
(``turn_parties``: the recording heard only inside that speaker's turns), by one rule for the
library's files and the service's uploads (``upload_heard``); ``core.compose`` judges each
party's stream on its own and answers the recording with its parties."""

from __future__ import annotations

import os
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from raymer.audio.decode import SAMPLE_RATE, Source, open_audio
from raymer.audio.turns import Turn, TurnsError, check_length, read_turns
from raymer.config.parts import DecodeConfig, SegmentConfig


@dataclass
class Parties:
    """One recording heard as several streams, a party each (a call's channels: ``segment.
    channels: split``): each stream cut, heard and judged on its own, its pieces named after
    its party; the answer is the recording's, its pieces in time order (parties may talk
    over each other: both are kept), with each party's summary (``Prediction.parties``).
    ``identical``: a file whose channels carry one signal, recognised once (one stream)."""

    streams: list
    names: list[str]
    identical: bool = False
    turns: list[Turn] = field(default_factory=list)  # a diarizer's (``turn_parties``)


def heard_as(source, channels: int, cutting: SegmentConfig, side, same):
    """A recording of ``channels`` channels as ``compose`` hears it (``cutting.channels``):
    itself (mix, or one channel), a ``Parties`` of a stream per channel (``side(k)``), or
    of itself heard once where its channels carry one signal (``same()``). More channels
    than ``channel_names``: an ``AudioError``. The library's files and the service's
    uploads both go through it."""
    if cutting.channels != "split" or channels < 2:
        return source
    cutting.check_channels(channels)
    names = cutting.channel_names
    if same():
        return Parties([source], names[:1], identical=True)
    return Parties([side(k) for k in range(channels)], names[:channels])


def open_heard(
    source,
    limits: DecodeConfig,
    cutting: SegmentConfig,
    held: ExitStack,
    turns=None,
    name="",
    span=None,
    channel=None,
):
    """A file or encoded bytes opened as ``compose`` hears it, by the one rule of the
    library's files and recognize's recordings: a stream decoded a chunk at a time, checked
    before anything is decoded (its kind, size and header); with ``turns`` (``turns_of``'s:
    ``Turn``s, an RTTM file's path or text, read for the recording ``name``), a party per
    speaker (``turn_parties``); with ``cutting.channels: split``, a party per channel
    (``heard_as``). ``span`` (start, duration: a Lhotse supervision's) hears that span of
    the recording alone, and ``channel`` that channel alone. Every stream opened is closed
    with ``held``."""

    def again(k=channel):
        return held.enter_context(open_audio(source, limits, cutting.chunk_s, k, span))

    stream = again()
    if channel is not None:  # one channel named (a supervision's): it alone
        return stream
    if turns is not None:
        return turn_parties(again, turns_of(turns, name, stream.duration_s), stream)
    n = stream.channels
    return heard_as(stream, n, cutting, again, lambda: same_signal(source, limits, n))


def streams_of(heard) -> tuple[list, list[str | None], list[Turn], str | None]:
    """What ``open_heard`` (or ``heard_as``) gave, as its streams, each one's party (None:
    one stream, no parties), the diarizer's turns, and how its channels were heard
    (``split``, ``identical``; None: mixed, or turns)."""
    if not isinstance(heard, Parties):
        return [heard], [None], [], None
    names = [None] if heard.identical else list(heard.names)
    channels = None if heard.turns else ("identical" if heard.identical else "split")
    return list(heard.streams), names, list(heard.turns), channels


def upload_heard(source, cutting: SegmentConfig):
    """A service's upload (``Checked``) as ``heard_as`` hears it; anything else as it is."""
    from raymer.audio.decode import Checked

    if not isinstance(source, Checked):
        return source
    if source.turns:  # an upload's turns: re-read for each speaker (a Checked decodes anew)
        return turn_parties(lambda: source, list(source.turns), source)
    return heard_as(
        source, source.channel_count, cutting, source.side,
        lambda: same_signal(source.data, source.limits, source.channel_count),
    )  # fmt: skip


SAME_SIGNAL_S = 60.0  # seconds of each channel compared by ``same_signal``


def same_signal(source: Source, limits: DecodeConfig, channels: int) -> bool:
    """Whether a file's channels carry one signal (a mono recording saved as stereo): the
    first ``SAME_SIGNAL_S`` seconds of each channel against the first's, all within 1 % of
    its level (rms of the difference). Cheap: a minute decoded per channel, whatever the
    file's length. ``source``: a path or URI, or encoded bytes (read again per channel)."""
    want = int(SAME_SIGNAL_S * SAMPLE_RATE)

    def head(k: int) -> np.ndarray:
        blocks, held = [], 0
        with open_audio(source, limits, chunk_s=SAME_SIGNAL_S, channel=k) as stream:
            for block in stream:
                blocks.append(block)
                held += block.size
                if held >= want:
                    break
        return np.concatenate(blocks)[:want] if blocks else np.zeros(0, np.float32)

    first = head(0)
    level = float(np.sqrt(np.mean(first**2))) if first.size else 0.0
    for k in range(1, channels):
        other = head(k)
        n = min(first.size, other.size)
        diff = float(np.sqrt(np.mean((first[:n] - other[:n]) ** 2))) if n else 0.0
        if other.size != first.size or diff > 0.01 * max(level, 1e-6):
            return False
    return True


MAX_TURNS_BYTES = 16 * 1024 * 1024  # an RTTM file the library reads (the service: its form)


class Masked:
    """A stream heard only inside ``spans`` (seconds): every other sample silenced, so that
    the VAD cuts a party's segments inside its turns."""

    def __init__(self, stream, spans: list[tuple[float, float]]) -> None:
        self.stream, self.spans = stream, spans
        self.duration_s = getattr(stream, "duration_s", None)

    def __iter__(self):
        at = 0
        for chunk in self.stream:
            out = np.zeros_like(chunk)
            for a, b in self.spans:
                i = max(round(a * SAMPLE_RATE) - at, 0)
                j = min(round(b * SAMPLE_RATE) - at, len(chunk))
                if i < j:
                    out[i:j] = chunk[i:j]
            at += len(chunk)
            yield out


def turns_of(turns, name: str, duration_s: float | None) -> list[Turn]:
    """``Recognizer.predict``'s ``turns`` for one input: ``Turn``s as given, or an RTTM
    file's path or text, read for the recording named like the input's file (its name
    without the extension; encoded bytes: the file's one recording); refused (``TurnsError``)
    where they run past the audio's end (its header's length)."""
    where = "the RTTM text"
    if isinstance(turns, list | tuple):
        found = sorted(turns, key=lambda t: (t.start_s, t.end_s))
    else:
        text = os.fspath(turns)
        if isinstance(turns, os.PathLike) or not text.lstrip().startswith(("SPEAKER", ";;")):
            from raymer import storage  # a path (or URI) of an RTTM file, not its text

            where = text
            try:
                size = storage.file_size(where)
                if size > MAX_TURNS_BYTES:  # its size before it is read
                    raise TurnsError(f"{where}: {size:,} bytes, over {MAX_TURNS_BYTES:,} for turns")
                text = storage.read_bytes(where).decode("utf-8", "replace")
            except OSError as err:  # the turn file's, not the audio's
                raise TurnsError(f"cannot read {where}: {type(err).__name__}: {err}") from err
        recording = None if name.endswith(" bytes") else Path(name).stem
        found = read_turns(text, recording, where)
    if duration_s is not None:
        check_length(found, duration_s, where)
    return found


def turn_parties(again, turns: list[Turn], stream) -> Parties:
    """A recording and its speakers' ``turns`` -> a ``Parties`` of a stream per speaker (the
    opened ``stream`` for the first, ``again()`` opens it anew for each other), each heard
    only inside that speaker's turns."""
    names = list(dict.fromkeys(t.speaker for t in turns))
    streams = []
    for k, name in enumerate(names):
        spans = [(t.start_s, t.end_s) for t in turns if t.speaker == name]
        streams.append(Masked(stream if k == 0 else again(), spans))
    return Parties(streams, names, turns=list(turns))


def overlapped(turns: list[Turn], speaker: str | None, start_s: float, end_s: float) -> bool:
    """Whether another speaker's turn overlaps a piece of ``speaker``'s."""
    return any(t.speaker != speaker and t.start_s < end_s and t.end_s > start_s for t in turns)
