"""A recording judged as it arrives (``Live``): a microphone's chunks, a WebSocket's frames.

The one long-audio rule, pushed (``segment.Cutter``, ``segment.Packer``): a segment closes
once the pause after it is heard, whatever the sizes of the chunks the audio came in. Each
segment is answered twice: at once (``final`` False: judged alone, in a window fitted to
it, as a short clip is), and finally when its Whisper window is complete (packed with the
segments around it, as the same audio given as a file is packed). The recording's answer at
the end is ``compose``'s for the same audio given as a file: the same segments, transcripts,
labels and scores (tested with 20 ms, 250 ms and 2 s chunks). ``end`` says the audio has
ended and gives the last segments' first answers at once; ``close`` then judges the rest.
Memory: the open segment, the open window and, until the recording passes
``segment_over_s``, its audio so far.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from raymer.audio.decode import SAMPLE_RATE
from raymer.audio.segment import Cutter, Packer, Segment, Window, split, windows_of
from raymer.errors import AudioError
from raymer.inference.core import Judging, judged_pieces, run_sync
from raymer.inference.prediction import Prediction, SegmentPrediction, recording, single


@dataclass
class LiveEvent:
    """What a live recording tells as it goes: a segment's answer (``final``: the one the
    file's answer has; else the interim one, given as soon as the segment closed), or the
    recording's answer at the end (``result``)."""

    segment: SegmentPrediction | None = None
    final: bool = False
    result: Prediction | None = None
    multi_label: bool = False

    def to_api(self) -> dict:
        """The WebSocket message: ``{"type": "segment", "final", "index", ...the file
        answer's segment}`` or ``{"type": "result", "result": the file endpoint's answer}``."""
        if self.result is not None:
            return {"type": "result", "result": self.result.to_api()}
        assert self.segment is not None
        head = {"type": "segment", "final": self.final, "index": self.segment.segment}
        return head | self.segment.to_api(self.multi_label)


class Live:
    """One live recording over the three stages ``compose`` takes (``speech``, ``encode``,
    ``score``; in process, or a service's deployments) and its ``judging``. ``feed`` 16 kHz
    mono float32 samples as they come, ``close`` at the end; each returns the events its
    audio made. ``interim`` False: only the final answers (each segment judged once)."""

    def __init__(
        self, speech, encode, score, judging: Judging, interim: bool = True, defer: bool = False
    ) -> None:
        self.stages, self.judging, self.interim = (speech, encode, score), judging, interim
        self.defer = defer  # the final answers when asked (``afinals``), not in ``afeed``
        self.windows: list[tuple[Window, list[Segment]]] = []  # complete, not yet judged
        self.cutter = Cutter(judging.cutting, judging.rule)
        self.packer = Packer(judging.rule)
        self.head: list[np.ndarray] | None = []  # the audio, while the recording may be short
        self.held: list[Segment] = []  # segments closed while it may be short
        self.parts: list[SegmentPrediction] = []
        self.samples = 0
        self.last: list[Segment] | None = None  # the segments the end closed (``aend``)
        self.closed = False

    @property
    def heard_s(self) -> float:
        return self.samples / SAMPLE_RATE

    def feed(self, samples: np.ndarray) -> list[LiveEvent]:
        """``afeed``, for code without an event loop of its own (a notebook's is fine)."""
        return run_sync(self.afeed(samples))

    def end(self) -> list[LiveEvent]:
        """``aend``, for code without an event loop of its own."""
        return run_sync(self.aend())

    def close(self) -> list[LiveEvent]:
        """``aclose``, for code without an event loop of its own."""
        return run_sync(self.aclose())

    async def afeed(self, samples: np.ndarray) -> list[LiveEvent]:
        """16 kHz mono float32 samples, as they come -> the events they made."""
        if self.last is not None:  # ended (``aend``), or closed
            raise RuntimeError("this live recording is closed")
        samples = np.asarray(samples, np.float32).reshape(-1)
        self.samples += len(samples)
        if self.head is not None:
            self.head.append(samples)
            if self.samples > self.judging.cutting.segment_over_s * SAMPLE_RATE:
                self.head = None  # a long recording: cut at its pauses, as a file's is
        closed = self.cutter.push(samples)
        events = await self._interim(closed)
        if self.head is None:
            pending, self.held = self.held + closed, []
            for seg in pending:
                self.windows += self.packer.push(seg)
        else:
            self.held += closed
        return events if self.defer else events + await self.afinals()

    async def afinals(self, most: int | None = None) -> list[LiveEvent]:
        """The final answers of the complete windows not yet judged (``most`` of them at
        most), in order: a window is let go only once judged, so a cancelled call loses
        nothing."""
        events: list[LiveEvent] = []
        while self.windows and (most is None or most > 0):
            events += await self._final(self.windows[:1])
            self.windows.pop(0)
            most = None if most is None else most - 1
        return events

    async def aend(self) -> list[LiveEvent]:
        """The audio has ended: the first answers of the segments its end closed, at once
        (before ``aclose`` judges what is left)."""
        if self.closed:
            raise RuntimeError("this live recording is closed")
        if self.last is None:
            self.last = self.cutter.finish()
            return await self._interim(self.last)
        return []

    async def aclose(self) -> list[LiveEvent]:
        """The end: the last segments' answers (``aend``'s, if not yet given) and the
        recording's (``result``)."""
        events = await self.aend()
        self.closed, closed = True, self.last
        length, j = self.samples / SAMPLE_RATE, self.judging
        if self.head is not None:  # up to segment_over_s: one piece, as a short file is
            if not self.samples:
                raise AudioError("the live recording holds no samples")
            head, self.head = self.head, None
            events += await self._final(
                list(windows_of(split(iter(head), j.cutting, j.rule), j.rule))
            )
            result = single(self.parts[0], length, j.multi_label)
        else:
            for seg in self.held + closed:
                self.windows += self.packer.push(seg)
            self.windows += self.packer.finish()
            events += await self.afinals()
            result = recording(self.parts, length, j.labels, j.multi_label, j.dimensions)
        return [*events, LiveEvent(result=result, multi_label=self.judging.multi_label)]

    async def _interim(self, segments: list[Segment]) -> list[LiveEvent]:
        if not self.interim or not segments:
            return []
        alone = [(Window(((s.audio, s.speech_s),)), [s]) for s in segments if s.audio.size]
        found = await judged_pieces(alone, *self.stages, self.judging) if alone else []
        multi = self.judging.multi_label
        return [LiveEvent(p, False, multi_label=multi) for group in found for p in group]

    async def _final(self, windows: list[tuple[Window, list[Segment]]]) -> list[LiveEvent]:
        if not windows:
            return []
        found = await judged_pieces(windows, *self.stages, self.judging)
        pieces = [p for group in found for p in group]
        self.parts += pieces
        return [LiveEvent(p, True, multi_label=self.judging.multi_label) for p in pieces]
