"""Recordings of any length -> speech segments, in bounded memory (no Ray).

The settings are the commands' own records: how to cut (``raymer.config.SegmentConfig``)
and what counts as speech (``raymer.config.SpeechConfig``, whose ``vad_threshold`` the VAD
uses).

A clip up to ``segment_over_s`` is one segment. A longer recording is decoded in chunks
(``raymer.audio.decode.open_audio``, the one decoder) and cut at pauses by voice activity detection: the Silero
VAD model that faster-whisper ships (no hub), run over the stream frame by frame with its
state carried (``raymer.audio.vad``), so a recording's segments do not depend on the sizes of
the chunks its audio came in: a file, an upload and a live microphone give the same ones
(``Cutter``, pushed; ``cut``, pulled). Segments last at most ``max_segment_s``; only the
audio a later segment may still need is held, so memory per file is bounded whatever the
recording's length.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from itertools import chain

import numpy as np

from raymer.audio.decode import SAMPLE_RATE, AudioError
from raymer.audio.vad import FRAME, Regions, Vad
from raymer.config.parts import SegmentConfig, SpeechConfig


@dataclass
class Segment:
    """A piece of a recording: its place (0-based ``index``, seconds), audio and speech."""

    index: int
    start_s: float
    end_s: float
    audio: np.ndarray  # 16 kHz mono float32
    speech_s: float  # what the VAD heard as speech in it
    total_s: float | None = None  # the recording's length, where known when it is cut
    whole: bool = False  # the whole recording, not cut (it lasts up to ``segment_over_s``)


def speech_seconds(
    audio: np.ndarray, speech: SpeechConfig, cutting: SegmentConfig | None = None
) -> float:
    """Seconds of speech the VAD finds in a clip (0.0 for silence or noise), at ``speech``'s
    threshold and ``cutting``'s pauses (the default cutting where none is given)."""
    cutting = cutting or SegmentConfig()
    return sum(e - s for s, e in _speech(audio, cutting, speech)) / SAMPLE_RATE


def _speech(
    audio: np.ndarray, options: SegmentConfig, speech: SpeechConfig
) -> list[tuple[int, int]]:
    """Speech regions (sample offsets, unpadded) of ``audio``, merged across pauses shorter
    than ``min_silence_s`` and split so that none passes ``max_segment_s`` with its padding."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    if len(audio) < SAMPLE_RATE // 10:  # shorter than one VAD window: no speech in it
        return []
    vad = VadOptions(
        threshold=speech.vad_threshold,
        min_silence_duration_ms=int(options.min_silence_s * 1000),
        speech_pad_ms=0,
        max_speech_duration_s=max(1.0, options.max_segment_s - 2 * options.speech_pad_s),
        min_speech_duration_ms=250,
    )
    return [(t["start"], t["end"]) for t in get_speech_timestamps(audio, vad)]


def split(
    chunks: Iterator[np.ndarray], options: SegmentConfig, speech: SpeechConfig
) -> Iterator[Segment]:
    """A recording's decoded chunks -> its segments: the whole recording when it lasts at
    most ``segment_over_s``, else its speech cut at pauses (``cut``). A long recording with
    no speech yields nothing."""
    chunks = iter(chunks)
    head: list[np.ndarray] = []
    held = 0
    for chunk in chunks:
        head.append(chunk)
        held += chunk.size
        if held > options.segment_over_s * SAMPLE_RATE:
            yield from cut(_chained(head, chunks), options, speech)
            return
    audio = np.concatenate(head) if head else np.zeros(0, np.float32)
    if audio.size == 0:
        raise AudioError("the audio stream decodes to no samples")
    duration = audio.size / SAMPLE_RATE
    heard = speech_seconds(audio, speech, options)
    yield Segment(0, 0.0, duration, audio, heard, total_s=duration, whole=True)


def _chained(head: list[np.ndarray], rest: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
    yield from head
    yield from rest


def cut(
    chunks: Iterator[np.ndarray], options: SegmentConfig, speech: SpeechConfig
) -> Iterator[Segment]:
    """Streamed audio chunks -> speech segments with their absolute times (``Cutter``:
    each segment as soon as the pause after it is heard; the same segments whatever the
    chunks' sizes)."""
    cutter = Cutter(options, speech)
    for chunk in chunks:
        yield from cutter.push(chunk)
    yield from cutter.finish()


class Cutter:
    """The long-audio rule, pushed: a stream's samples as they arrive -> the segments they
    close. Speech regions come from the VAD run over the stream frame by frame
    (``raymer.audio.vad``: faster-whisper's rule, the model's state carried), padded by
    ``speech_pad_s`` on each side (never into the segment before); a region longer than
    ``max_segment_s`` is split at its last pause. Only the audio a later segment may still
    need is held (at most about ``max_segment_s + min_silence_s``), whatever the length."""

    def __init__(self, options: SegmentConfig, speech: SpeechConfig) -> None:
        self.pad = int(options.speech_pad_s * SAMPLE_RATE)
        self.vad = Vad()
        longest = max(1.0, options.max_segment_s - 2 * options.speech_pad_s)
        self.regions = Regions(speech.vad_threshold, options.min_silence_s, longest)
        self.buffer, self.offset, self.total = np.zeros(0, np.float32), 0, 0
        self.waiting: list[tuple[int, int]] = []  # closed, their padding not all heard yet
        self.index, self.last_end = 0, 0

    def push(self, samples: np.ndarray) -> list[Segment]:
        samples = np.asarray(samples, np.float32).reshape(-1)
        self.buffer = np.concatenate([self.buffer, samples])
        self.total += len(samples)
        self.waiting += self.regions.push(self.vad.push(samples))
        return self._emit(final=False)

    def finish(self) -> list[Segment]:
        """The segments the end closes; with no speech at all, one empty segment over the
        whole recording says so."""
        self.waiting += self.regions.push(self.vad.finish())
        self.waiting += self.regions.finish(self.total)
        out = self._emit(final=True)
        if self.index == 0:
            total = self.total / SAMPLE_RATE
            out.append(Segment(0, 0.0, total, np.zeros(0, np.float32), 0.0, total_s=total))
            self.index = 1
        return out

    def _emit(self, final: bool) -> list[Segment]:
        out = []
        while self.waiting:
            s, e = self.waiting[0]
            if e + self.pad > self.total and not final:
                break  # its padding is still to come
            a, b = max(s - self.pad, self.last_end, 0), min(e + self.pad, self.total)
            audio = self.buffer[a - self.offset : b - self.offset].copy()
            out.append(
                Segment(self.index, a / SAMPLE_RATE, b / SAMPLE_RATE, audio, (e - s) / SAMPLE_RATE)
            )
            self.index, self.last_end = self.index + 1, b
            self.waiting.pop(0)
        if self.waiting:  # the earliest sample a later segment may take
            need = self.waiting[0][0]
        elif self.regions.triggered:
            need = self.regions.start
        else:
            need = self.regions.frame * FRAME
        keep = max(self.offset, min(self.total, max(need - self.pad, self.last_end)))
        self.buffer, self.offset = self.buffer[keep - self.offset :], keep
        return out


def pack(
    segments: Iterator[Segment], speech: SpeechConfig, window_s: float = 30.0
) -> Iterator[tuple[Window, list[Segment]]]:
    """A long recording's segments -> its Whisper windows, each with its segments, in order
    (``Packer``, pulled)."""
    packer = Packer(speech, window_s)
    for seg in segments:
        yield from packer.push(seg)
    yield from packer.finish()


class Packer:
    """A long recording's segments, pushed -> its Whisper windows, each with its segments:
    consecutive segments with speech (``speech.heard``) together while their audio lasts at
    most ``window_s`` in all, as faster-whisper's batched pipeline packs speech
    (``raymer.models.whisper_packed``); a segment without speech is a window of its own,
    never transcribed. Only the open window is held; a window depends on its recording
    alone."""

    def __init__(self, speech: SpeechConfig, window_s: float = 30.0) -> None:
        self.speech, self.limit = speech, int(window_s * SAMPLE_RATE)
        self.window: list[Segment] = []
        self.held = 0

    def push(self, seg: Segment) -> list[tuple[Window, list[Segment]]]:
        out = []
        if not self.speech.heard(seg.speech_s) or not seg.audio.size:
            out += self.finish()
            return out + [_packed([seg])]
        if self.window and self.held + seg.audio.size > self.limit:
            out += self.finish()
        self.window.append(seg)
        self.held += seg.audio.size
        return out

    def finish(self) -> list[tuple[Window, list[Segment]]]:
        """The open window, closed (none when it is empty)."""
        window, self.window, self.held = self.window, [], 0
        return [_packed(window)] if window else []


def _packed(group: list[Segment]) -> tuple[Window, list[Segment]]:
    return Window(tuple((s.audio, s.speech_s) for s in group), packed=True), group


@dataclass(frozen=True)
class Window:
    """What the speech stage reads: a short recording alone (``packed`` False: encoded in a
    window fitted to it, as extraction made the training features), or consecutive segments
    of a long one (``packed``: one 30 s Whisper window, ``raymer.models.whisper_packed``).
    Each piece: its 16 kHz samples and the seconds of speech the segmenter heard in it
    (``None``: measured here)."""

    pieces: tuple[tuple[np.ndarray, float | None], ...]
    packed: bool = False


def windows_of(
    segments: Iterator[Segment], rule: SpeechConfig
) -> Iterator[tuple[Window, list[Segment]]]:
    """A recording's segments (``split``) -> its windows, each with its segments: the whole
    recording in a fitted window, or (cut at its pauses) its segments packed by ``pack``.
    The one rule for every entry point; only the current window is held."""
    segments = iter(segments)
    first = next(segments, None)
    if first is None:
        return
    if first.whole:
        yield Window(((first.audio, first.speech_s),)), [first]
        return
    yield from pack(chain([first], segments), rule)
