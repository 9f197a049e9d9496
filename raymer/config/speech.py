"""The no-speech rule's settings, shared by ``raymer recognize`` and ``raymer serve``
(``raymer.segment.SpeechRule`` applies them)."""

from __future__ import annotations

from pydantic import Field


def vad_threshold():
    return Field(0.5, gt=0, lt=1, description="Silero VAD's speech probability threshold.")


def min_speech_s():
    return Field(
        0.3,
        ge=0,
        description="Audio with less speech than this (VAD) is no_speech: no emotion.",
    )


def no_speech_prob():
    return Field(
        0.6,
        gt=0,
        le=1,
        description="Audio whose Whisper no-speech probability passes this, with a low "
        "mean log-probability (below logprob_threshold), is no_speech.",
    )


def logprob_threshold():
    return Field(-1.0, description="Whisper's own rule for silence, with no_speech_prob.")
