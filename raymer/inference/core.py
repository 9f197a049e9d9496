"""The one inference path, in process (no Ray, no HTTP): a clip -> its pieces -> Whisper ->
text encoder -> trained head -> no-speech rule -> a ``Prediction``.

Every entry point runs these functions: ``raymer recognize``'s actors (``Listener``, the
speech stage of ``raymer.inference.listener``, in the
speech stage, ``Heads`` and ``piece`` in the emotion stage, ``speech_time`` in the
recordings), Serve's replicas (``Inference`` whole, or ``Listener``/``Heads`` split across
deployments and joined by ``compose``) and ``raymer.Recognizer`` (``Inference``). The
pieces are cut by the one long-audio rule (``raymer.audio.segment.split``): audio up to
``segment_over_s`` is one piece, longer audio is cut at its pauses by the VAD. Each piece's
answer is a ``SegmentPrediction``, whose fields are the columns of a row ``raymer recognize``
writes; a clip's is a ``Prediction`` (``to_api``: the JSON the service answers).

The inputs are made exactly as ``raymer extract`` made the training features: the same
``WhisperFeaturizer`` (one encoder pass feeds the decoder and the frames, same window and frame
rate) and the same ``TextEncoder`` on the transcript, with the settings the checkpoint recorded.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from itertools import islice

import numpy as np

from raymer.audio.decode import SAMPLE_RATE
from raymer.audio.segment import Window, split, windows_of
from raymer.config.parts import SegmentConfig, SpeechConfig
from raymer.errors import AudioError
from raymer.inference.heads import Heads
from raymer.inference.listener import Listener, silent
from raymer.inference.parties import overlapped, streams_of, upload_heard
from raymer.inference.prediction import Prediction, judged, piece, recording, single
from raymer.trained.batches import LoadedModel


@dataclass(frozen=True)
class Judging:
    """What ``compose`` needs to know of the checkpoint and the settings: its labels and
    emotion dimensions, the long-audio rule (``cutting``) and the no-speech rule."""

    labels: list[str]
    needs_audio: bool = False
    multi_label: bool = False
    dimensions: tuple[str, ...] = ()
    rule: SpeechConfig = field(default_factory=SpeechConfig)
    cutting: SegmentConfig = field(default_factory=SegmentConfig)
    min_confidence: float = 0.0  # under it, a piece's label is ``uncertain``


@dataclass(frozen=True)
class Progress:
    """How far ``compose_steps`` is: segments judged, the seconds of the recordings judged
    through, and their length where it is known (a header may not say)."""

    done: int
    done_s: float
    duration_s: float | None


WINDOWS_PER_STEP = 8  # windows judged together when the caller does not say


async def compose(
    recordings: list, speech, encode, score, judging: Judging, on_progress=None
) -> list:
    """Recordings -> ``Prediction``s, given the three stages as async callables on lists:
    ``speech([Window]) -> [[SpeechFeatures]]`` (a ``Listener``), ``encode(texts) -> [tokens]``
    and ``score(frames, tokens, clips, texts) -> answers (N, L + D)`` (``Heads``). The
    in-process ``Inference`` and the split Serve deployments both run this, so their answers
    are the same. Each recording is cut as ``raymer recognize`` cuts it (``split``) and
    windowed as it windows it (``windows_of``); every piece without speech
    (``SpeechConfig.silent``) gets ``no_speech``, an empty transcript and null emotions:
    noise is never given an emotion. ``on_progress``: called with each ``Progress``."""
    results: list = []
    async for step in compose_steps(recordings, speech, encode, score, judging):
        if not isinstance(step, Progress):
            results = step
        elif on_progress is not None:
            on_progress(step)
    return results


def _length(source) -> float | None:
    if isinstance(source, np.ndarray):
        return len(source) / SAMPLE_RATE
    return getattr(source, "duration_s", None)


class _Recording:
    """One recording as ``compose_steps`` streams through it (its streams: one, or a party
    each): the samples of each counted as they are decoded, how far each is judged, its
    pieces' answers as they are judged (the audio is let go)."""

    def __init__(self, source) -> None:
        self.streams, self.names, self.turns, self.channels = streams_of(source)
        self.counted, self.judged = [0] * len(self.streams), [0.0] * len(self.streams)
        self.parts: list = []
        lengths = [_length(s) for s in self.streams]
        self.duration_s = None if None in lengths else sum(lengths)

    @property
    def samples(self) -> int:
        return max(self.counted)

    def chunks(self, k: int) -> Iterator[np.ndarray]:
        stream = self.streams[k]
        for chunk in [stream] if isinstance(stream, np.ndarray) else stream:
            self.counted[k] += len(chunk)
            yield chunk


async def compose_steps(recordings: list, speech, encode, score, judging: Judging, step: int = 0):
    """``compose``, telling how far it is: the windows are judged ``step`` at a time (0:
    ``WINDOWS_PER_STEP``), a ``Progress`` after each group, then the list of
    ``Prediction``s. A recording is a 16 kHz mono float32 array, or an iterable of them in
    order (a decoded stream: ``raymer.audio.decode.open_audio``), read as the windows are
    needed, so memory stays bounded whatever its length."""
    if not recordings:
        yield []
        return
    states = [_Recording(upload_heard(r, judging.cutting)) for r in recordings]
    stream = _windows(states, judging)
    size = step if step > 0 else WINDOWS_PER_STEP
    labels, multi, dims = judging.labels, judging.multi_label, judging.dimensions
    done, known = 0, [s.duration_s for s in states]
    duration = sum(known) if None not in known else None
    while group := list(islice(stream, size)):
        found = await judged_pieces(
            [(w, s) for _, w, s, _ in group], speech, encode, score, judging
        )
        for (state, _, segs, k), parts in zip(group, found, strict=True):
            for part in parts:
                part.speaker = state.names[k]
                state.parts.append(part)
                state.judged[k] = part.end_s
            done += len(segs)
        past = sum(sum(state.judged) for state in states)
        yield Progress(done, past, duration)
    length = sum(sum(state.counted) for state in states) / SAMPLE_RATE
    yield Progress(done, length, length)  # all of it judged: its length, now known
    results = []
    for state in states:
        length = state.samples / SAMPLE_RATE
        if state.names[0] is not None:  # the parties' pieces in time order, numbered anew
            parts = sorted(state.parts, key=lambda p: (p.start_s, p.end_s))
            parts = [replace(p, segment=i) for i, p in enumerate(parts)]
            for p in parts if state.turns else ():
                p.overlapped = overlapped(state.turns, p.speaker, p.start_s, p.end_s)
            results.append(recording(parts, length, labels, multi, dims))
        elif length > judging.cutting.segment_over_s:
            results.append(recording(state.parts, length, labels, multi, dims))
        else:
            (part,) = state.parts
            results.append(single(part, length, multi))
        results[-1].heard_channels = state.channels
    yield results


class RecordingFailed(Exception):
    """Recording ``index`` of a ``compose`` could not be decoded or cut (``error``): the
    caller answers it alone (the library reports it and goes on with the others)."""

    def __init__(self, index: int, error: Exception) -> None:
        super().__init__(str(error))
        self.index, self.error = index, error


def _windows(states: list[_Recording], judging: Judging):
    """Every recording's windows in turn (a party's stream after another's), each with its
    recording, segments and stream."""
    for index, state in enumerate(states):
        cutting = judging.cutting
        if state.names[0] is not None:  # a party's turns: cut at its pauses, whatever its length
            cutting = cutting.model_copy(update={"segment_over_s": 0.0})
        for k in range(len(state.streams)):
            segments = split(state.chunks(k), cutting, judging.rule)
            try:
                for window, segs in windows_of(segments, judging.rule):
                    yield state, window, segs, k
            except (AudioError, OSError) as err:
                raise RecordingFailed(index, err) from err


async def events(steps):
    """``compose_steps`` of one recording -> the events a streamed answer sends: ``{"done",
    "done_s", "duration_s"}`` after each group of windows, then ``{"result": the service's
    answer}``."""
    async for step in steps:
        if isinstance(step, Progress):
            yield {
                "done": step.done,
                "done_s": round(step.done_s, 3),
                "duration_s": step.duration_s,
            }
        else:
            yield {"result": step[0].to_api()}


async def judged_pieces(windows: list, speech, encode, score, judging: Judging) -> list[list]:
    """(window, its segments) pairs -> each segment's answer (``SegmentPrediction``), window
    by window: the one judging of ``compose`` and a live recording (``inference.live``)."""
    heard, scores = await _judge([w for w, _ in windows], speech, encode, score, judging)
    j = judging
    return [
        [
            piece(
                seg.index,
                seg.start_s,
                seg.end_s,
                features,
                found,
                j.labels,
                j.multi_label,
                j.dimensions,
                j.min_confidence,
            )  # fmt: skip
            for seg, features, found in zip(segs, sp, sc, strict=True)
        ]
        for (_, segs), sp, sc in zip(windows, heard, scores, strict=True)
    ]


async def _judge(windows: list[Window], speech, encode, score, judging: Judging):
    """Windows -> their pieces' ``SpeechFeatures`` and the model's answers (None: no speech),
    window by window."""
    heard = await speech(windows)
    flat = [(i, k) for i, sp in enumerate(heard) for k in range(len(sp))]
    spoken = [(i, k) for i, k in flat if not silent(judging.rule, heard[i][k])]
    scores: list[list] = [[None] * len(sp) for sp in heard]
    if spoken:
        texts = [heard[i][k].transcript for i, k in spoken]
        tokens = await encode(texts)
        found = await score(
            [heard[i][k].frames for i, k in spoken],
            tokens,
            [windows[i].pieces[k][0] for i, k in spoken] if judging.needs_audio else None,
            texts,
        )
        for (i, k), sc in zip(spoken, list(found), strict=True):
            scores[i][k] = sc
    return heard, scores


def text_results(
    labels: list[str],
    texts: list[str],
    scores: np.ndarray,
    multi_label: bool = False,
    dimensions: list[str] | tuple = (),
    min_confidence: float = 0.0,
) -> list[dict]:
    return [
        {"text": text} | judged(labels, sc, multi_label, dimensions, min_confidence)
        for text, sc in zip(texts, scores, strict=True)
    ]


class Inference:
    """The three stages of a checkpoint in one process, ready to score clips and texts:
    what ``raymer.Recognizer`` and the ``single`` Serve layout hold.

    ``rule`` is the no-speech rule (``SpeechConfig``): a piece it finds silent gets no
    emotion; ``cutting`` (``SegmentConfig``): how audio longer than ``segment_over_s`` is
    cut at its pauses; ``min_confidence``: under it, an answer's label is ``uncertain``.
    """

    def __init__(
        self,
        checkpoint: str,
        text_checkpoint: str | None = None,
        device: str = "cpu",
        threads: int = 0,
        cutting: SegmentConfig | None = None,
        rule: SpeechConfig | None = None,
        min_confidence: float = 0.0,
        workers: int = 1,
    ) -> None:
        from raymer.models.builders import build_featurizer, build_text_encoder

        self.heads = Heads(checkpoint, text_checkpoint, threads, device)
        self.extract = self.heads.extract
        self.rule = rule or SpeechConfig()
        featurizer = build_featurizer(self.extract, device, threads, self.rule, workers)
        self.listener = Listener(featurizer, self.rule)
        self.encoder = build_text_encoder(self.extract, device, threads)
        self.labels = self.heads.labels
        self.judging = Judging(
            labels=self.labels,
            needs_audio=self.heads.needs_audio,
            multi_label=self.heads.multi_label,
            dimensions=tuple(self.heads.main.spec.dimensions),
            rule=self.rule,
            cutting=cutting or SegmentConfig(),
            min_confidence=min_confidence,
        )

    @property
    def text(self) -> LoadedModel | None:
        return self.heads.text

    def info(self) -> dict:
        return self.heads.info()

    async def arecognize(self, recordings: list, on_progress=None) -> list[Prediction]:
        """Recordings (arrays, or decoded streams) -> their ``Prediction``s (``compose``)."""
        return await compose(recordings, *self.stages(), self.judging, on_progress)

    def arecognize_steps(self, recording, step: int = 0):
        """One recording, ``step`` windows at a time: ``Progress`` after each group, then
        ``[Prediction]`` (``compose_steps``)."""
        return compose_steps([recording], *self.stages(), self.judging, step)

    def stages(self):
        async def speech(items):  # in a thread: the caller's loop keeps answering
            return await asyncio.to_thread(self.listener, items)

        async def encode(t):
            return [e.tokens for e in self.encoder(t)]

        async def score(f, t, a, x):
            return self.heads.score(f, t, a, x)

        return speech, encode, score

    def recognize(self, recordings: list, on_progress=None) -> list[Prediction]:
        """16 kHz mono float32 clips (or decoded streams of them) -> one ``Prediction`` each
        (inside a running event loop too); ``on_progress``: called with each ``Progress``."""
        return run_sync(self.arecognize(recordings, on_progress))

    def recognize_text(self, texts: list[str]) -> list[dict]:
        """Texts alone, through the text-only model."""
        tokens = [t.tokens for t in self.encoder(texts)]
        return text_results(
            self.labels,
            texts,
            self.heads.score([], tokens, texts=texts, text_only=True),
            self.heads.text_multi_label,
            self.heads.text.spec.dimensions if self.heads.text else (),
            self.judging.min_confidence,
        )


def run_sync(coro):
    """Run a coroutine to its end from sync code, inside a running event loop too (Jupyter):
    there, in a thread of its own with its own loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1, thread_name_prefix="raymer-predict") as pool:
        return pool.submit(asyncio.run, coro).result()
