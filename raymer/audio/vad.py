"""Speech regions of a stream as its audio arrives: the Silero VAD that faster-whisper ships,
run frame by frame with its state carried (``Vad``), and faster-whisper's own region rule
(``get_speech_timestamps``) applied to the probabilities as they come (``Regions``).

Silero is a recurrent model over 512-sample frames: a frame's probability depends on every
frame before it. Run over a whole array, or over any pieces of it in turn with the state
carried, it gives the same probabilities (tested), so the regions of a recording do not
depend on how its audio was cut into chunks: a file decoded 5 minutes at a time, an upload,
or a microphone's 20 ms packets give the same segments (``segment.Cutter``).
"""

from __future__ import annotations

import functools

import numpy as np

from raymer.audio.decode import SAMPLE_RATE

FRAME = 512  # samples per VAD frame (32 ms at 16 kHz)
CONTEXT = 64  # samples of the frame before that Silero reads with each frame
MIN_SPEECH_S = 0.25  # shorter regions are dropped (faster-whisper's min_speech_duration_ms)
SILENCE_AT_MAX_S = 0.098  # a pause this long is where a too-long region may be split


@functools.cache
def _model():
    """faster-whisper's Silero model, loaded once per process."""
    from faster_whisper.vad import get_vad_model

    return get_vad_model()


class Vad:
    """Speech probabilities of a stream's frames, as its samples arrive: ``push`` returns
    those of the frames completed by the samples given; ``finish`` that of the last, partial
    frame (zero-padded, as faster-whisper pads a whole array)."""

    def __init__(self) -> None:
        self.state = (np.zeros((1, 1, 128), np.float32), np.zeros((1, 1, 128), np.float32))
        self.context = np.zeros(CONTEXT, np.float32)
        self.rest = np.zeros(0, np.float32)

    def push(self, samples: np.ndarray) -> np.ndarray:
        data = np.concatenate([self.rest, samples.astype(np.float32, copy=False)])
        whole = len(data) // FRAME * FRAME
        self.rest = data[whole:]
        return self._run(data[:whole])

    def finish(self) -> np.ndarray:
        if not len(self.rest):
            return np.zeros(0, np.float32)
        last = np.pad(self.rest, (0, FRAME - len(self.rest)))
        self.rest = np.zeros(0, np.float32)
        return self._run(last)

    def _run(self, data: np.ndarray) -> np.ndarray:
        if not len(data):
            return np.zeros(0, np.float32)
        frames = data.reshape(-1, FRAME)
        context = np.concatenate([self.context[None], frames[:-1, -CONTEXT:]], 0)
        h, c = self.state
        out, h, c = _model().session.run(
            None, {"input": np.concatenate([context, frames], 1), "h": h, "c": c}
        )
        self.state, self.context = (h, c), frames[-1, -CONTEXT:].copy()
        return np.asarray(out, np.float32).reshape(-1)


class Regions:
    """faster-whisper's ``get_speech_timestamps`` rule over probabilities as they arrive
    (unpadded sample offsets): a region starts at a frame at ``threshold`` or above, ends
    where the probability has stayed under ``threshold - 0.15`` for ``min_silence_s``, and
    one that reaches ``max_speech_s`` is split at its last pause (else where it is). ``push``
    returns the regions its frames closed; ``finish`` the one still open at the end."""

    def __init__(self, threshold: float, min_silence_s: float, max_speech_s: float) -> None:
        self.threshold, self.negative = threshold, max(threshold - 0.15, 0.01)
        self.min_silence = SAMPLE_RATE * min_silence_s
        self.max_speech = SAMPLE_RATE * max_speech_s - FRAME
        self.min_speech = SAMPLE_RATE * MIN_SPEECH_S
        self.frame = 0  # frames seen
        self.triggered = False
        self.start = 0
        self.temp_end = self.prev_end = self.next_start = 0

    def push(self, probs: np.ndarray) -> list[tuple[int, int]]:
        closed: list[tuple[int, int]] = []
        for p in probs:
            self._step(float(p), self.frame * FRAME, closed)
            self.frame += 1
        return closed

    def finish(self, total: int) -> list[tuple[int, int]]:
        if self.triggered and total - self.start > self.min_speech:
            self.triggered = False
            return [(self.start, total)]
        return []

    def _step(self, p: float, at: int, closed: list) -> None:
        if p >= self.threshold and self.temp_end:
            self.temp_end = 0
            if self.next_start < self.prev_end:
                self.next_start = at
        if p >= self.threshold and not self.triggered:
            self.triggered, self.start = True, at
            return
        if self.triggered and at - self.start > self.max_speech:
            if self.prev_end:
                closed.append((self.start, self.prev_end))
                if self.next_start < self.prev_end:  # still in the pause
                    self.triggered = False
                else:
                    self.start = self.next_start
                self.prev_end = self.next_start = self.temp_end = 0
            else:
                closed.append((self.start, at))
                self.prev_end = self.next_start = self.temp_end = 0
                self.triggered = False
                return
        if p < self.negative and self.triggered:
            if not self.temp_end:
                self.temp_end = at
            if at - self.temp_end > SAMPLE_RATE * SILENCE_AT_MAX_S:
                self.prev_end = self.temp_end
            if at - self.temp_end < self.min_silence:
                return
            if self.temp_end - self.start > self.min_speech:
                closed.append((self.start, self.temp_end))
            self.prev_end = self.next_start = self.temp_end = 0
            self.triggered = False
