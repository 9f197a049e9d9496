"""Recordings of any length -> speech segments, in bounded memory (no Ray).

The settings are the commands' own records: how to cut (``raymer.config.SegmentConfig``)
and what counts as speech (``raymer.config.SpeechConfig``, whose ``vad_threshold`` the VAD
uses).

A clip up to ``segment_over_s`` is one segment. A longer recording is decoded in chunks
(``raymer.audio.decode.open_audio``, the one decoder) and cut at pauses by voice activity detection: the Silero
VAD model that faster-whisper ships (no hub). Segments last at most ``max_segment_s``; only the
current chunk and the audio after the last closed segment are held, so memory per file is
bounded whatever the recording's length.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from itertools import chain

import numpy as np

from raymer.audio.decode import SAMPLE_RATE, AudioError
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
    """Streamed audio chunks -> speech segments with their absolute times. A region is
    emitted once the audio after it is long enough that no later chunk can change it."""
    pad = int(options.speech_pad_s * SAMPLE_RATE)
    guard = int((options.max_segment_s + options.min_silence_s + 1.0) * SAMPLE_RATE)
    buffer, offset, index = np.zeros(0, np.float32), 0, 0
    chunk = next(chunks, None)
    while chunk is not None:
        buffer = np.concatenate([buffer, chunk])
        chunk = next(chunks, None)
        last = chunk is None
        if not last and len(buffer) < 2 * guard:
            continue
        limit = len(buffer) if last else len(buffer) - guard
        closed = [(s, e) for s, e in _speech(buffer, options, speech) if e <= limit]
        for s, e in closed:
            a, b = max(0, s - pad), min(len(buffer), e + pad)
            start, end = (offset + a) / SAMPLE_RATE, (offset + b) / SAMPLE_RATE
            yield Segment(index, start, end, buffer[a:b].copy(), (e - s) / SAMPLE_RATE)
            index += 1
        # Keep what a later region may still need: after the last closed one, or (silence)
        # the last guard's worth.
        keep_from = min(len(buffer), closed[-1][1] + pad) if closed else max(0, limit - guard)
        buffer, offset = buffer[keep_from:], offset + keep_from
    if index == 0:  # no speech at all: one empty segment says so, over the whole recording
        total = (offset + len(buffer)) / SAMPLE_RATE
        yield Segment(0, 0.0, total, np.zeros(0, np.float32), 0.0, total_s=total)


def pack(
    segments: Iterator[Segment], speech: SpeechConfig, window_s: float = 30.0
) -> Iterator[list[Segment]]:
    """A long recording's segments -> its Whisper windows, in order: consecutive segments
    with speech (``speech.heard``) together while their audio lasts at most ``window_s``
    in all, as faster-whisper's batched pipeline packs speech (``raymer.models.whisper_packed``);
    a segment without speech is a window of its own, never transcribed. Only the current
    window is held. A window depends on its recording alone."""
    window: list[Segment] = []
    held = 0
    limit = int(window_s * SAMPLE_RATE)
    for seg in segments:
        if not speech.heard(seg.speech_s) or not seg.audio.size:
            if window:
                yield window
                window, held = [], 0
            yield [seg]
            continue
        if window and held + seg.audio.size > limit:
            yield window
            window, held = [], 0
        window.append(seg)
        held += seg.audio.size
    if window:
        yield window


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
    for group in pack(chain([first], segments), rule):
        yield Window(tuple((s.audio, s.speech_s) for s in group), packed=True), group
