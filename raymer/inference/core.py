"""The one inference path, in process (no Ray, no HTTP): a clip -> its pieces -> Whisper ->
text encoder -> trained head -> no-speech rule -> a ``Prediction``.

Every entry point runs these functions: ``raymer recognize``'s actors (``Listener`` in the
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
from dataclasses import dataclass, field

import numpy as np

from raymer.audio.decode import SAMPLE_RATE
from raymer.audio.segment import Segment, speech_seconds, split
from raymer.config.parts import SegmentConfig, SpeechConfig
from raymer.errors import UsageError
from raymer.inference.prediction import Prediction, judged, piece, recording, single
from raymer.models.whisper import SpeechFeatures
from raymer.trained import checkpoint
from raymer.trained.batches import LoadedModel


class Heads:
    """The trained head(s) of a checkpoint: the main model (fusion, or audio/text only) and,
    for ``/v1/recognize/text``, a text-only model with the same labels (``with_text=False``:
    the main model only, as ``raymer recognize`` needs)."""

    def __init__(
        self,
        checkpoint_uri: str,
        text_checkpoint: str | None = None,
        threads: int = 0,
        device: str = "cpu",
        with_text: bool = True,
    ):
        import torch

        if threads > 0:
            torch.set_num_threads(threads)
        main, default_text = checkpoint.models_of(checkpoint_uri)
        self.main = LoadedModel.load(main, device)
        text_uri = (text_checkpoint or default_text) if with_text else None
        self.text = None
        if text_uri:
            self.text = LoadedModel.load(text_uri, device)
            spec = self.text.spec
            if spec.modality != "text":
                raise UsageError(f"text_checkpoint {text_uri} is a {spec.modality} model")
            if spec.labels != self.main.spec.labels:
                raise UsageError(
                    f"text_checkpoint labels {spec.labels} differ from the main model's "
                    f"{self.main.spec.labels}"
                )
        elif with_text and self.main.spec.modality == "text":  # a text model answers texts
            self.text = self.main
        self.labels = self.main.spec.labels
        self.extract = self.main.spec.extract

    def info(self) -> dict:
        spec = self.main.spec
        return {
            "asr_model": self.extract.asr_model,
            "text_model": self.extract.text_model,
            "labels": self.labels,
            "loss": spec.loss,
            "checkpoint": self.main.checkpoint,
            "modality": spec.modality,
            "mode": spec.mode,
            "text_checkpoint": self.text.checkpoint if self.text else None,
            "frame_rate_hz": float(self.extract.frame_rate_hz),
            "needs_audio": self.needs_audio,
            "multi_label": self.multi_label,
            "text_multi_label": self.text_multi_label,
            "dimensions": spec.dimensions,
            "text_dimensions": self.text.spec.dimensions if self.text else [],
        }

    def score(self, frames: list, tokens: list, clips=None, texts=None, text_only=False):
        """Answers (N, L + D): a score per label then a value per emotion dimension, of the
        main head on frames/tokens (features mode) or audio/text (fine-tune mode), or of
        the text-only head on tokens."""
        loaded = self.text if text_only else self.main
        if loaded is None:
            raise LookupError("no text-only model is loaded")
        batch = loaded.collate.live(
            frames=None if text_only or not frames else frames,
            tokens=tokens,
            clips=clips if loaded.spec.needs_audio else None,
            texts=texts,
        )
        return loaded.scores(batch).numpy()

    @property
    def needs_audio(self) -> bool:
        """Fine-tune checkpoints with an audio branch read the raw audio; features ones the
        frames only, and a text model no audio at all."""
        return self.main.spec.needs_audio

    @property
    def multi_label(self) -> bool:
        """Trained on label lists: every label whose score passes 0.5 is reported."""
        return self.main.spec.multi_label

    @property
    def text_multi_label(self) -> bool:
        """The same of the text-only model (``/v1/recognize/text``)."""
        return bool(self.text and self.text.spec.multi_label)


class Listener:
    """Whisper on the pieces the VAD heard speech in: a piece of noise or silence is never
    transcribed (Whisper would make words up), only marked with its ``speech_s``. Items are
    ``(audio, heard)``: the piece's 16 kHz samples and the seconds of speech the segmenter
    heard in it (``None``: measured here)."""

    def __init__(self, featurizer, rule: SpeechConfig) -> None:
        self.featurizer, self.rule = featurizer, rule

    def __call__(self, items: list[tuple[np.ndarray, float | None]]) -> list[SpeechFeatures]:
        clips = [clip for clip, _ in items]
        heard = [speech_seconds(c, self.rule) if h is None else h for c, h in items]
        todo = [i for i, s in enumerate(heard) if self.rule.heard(s) and len(clips[i])]
        out = [SpeechFeatures(transcript="", language="", language_prob=0.0) for _ in clips]
        if todo:
            for i, features in zip(todo, self.featurizer([clips[i] for i in todo]), strict=True):
                out[i] = features
        for features, seconds in zip(out, heard, strict=True):
            features.speech_s = seconds
        return out


def silent(rule: SpeechConfig, sp: SpeechFeatures) -> bool:
    return rule.silent(sp.speech_s, sp.transcript, sp.no_speech_prob, sp.avg_logprob)


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


@dataclass(frozen=True)
class Progress:
    """How far ``compose_steps`` is: pieces judged of all the clips' pieces."""

    done: int
    total: int


async def compose(clips: list[np.ndarray], speech, encode, score, judging: Judging) -> list:
    """Clips -> ``Prediction``s, given the three stages as async callables on lists:
    ``speech([(audio, heard)]) -> [SpeechFeatures]`` (a ``Listener``), ``encode(texts) ->
    [tokens]`` and ``score(frames, tokens, clips, texts) -> answers (N, L + D)`` (``Heads``). The
    in-process ``Inference`` and the split Serve deployments both run this, so their answers
    are the same. Each clip is cut as ``raymer recognize`` cuts it (``split``); every piece
    without speech (``SpeechConfig.silent``) gets ``no_speech``, an empty transcript and null
    emotions: noise is never given an emotion."""
    results: list = []
    async for step in compose_steps(clips, speech, encode, score, judging):
        if not isinstance(step, Progress):
            results = step
    return results


async def compose_steps(
    clips: list[np.ndarray], speech, encode, score, judging: Judging, step: int = 0
):
    """``compose``, telling how far it is: the pieces are judged ``step`` at a time (0: all
    at once), a ``Progress`` after each group, then the list of ``Prediction``s."""
    if not clips:
        yield []
        return
    cuts = [list(split(iter([clip]), judging.cutting, judging.rule)) for clip in clips]
    pieces: list[Segment] = [seg for cut in cuts for seg in cut]
    speech_out, scores = [], []
    size = step if step > 0 else max(1, len(pieces))  # (a long silence has no pieces)
    for start in range(0, len(pieces), size):
        group = pieces[start : start + size]
        heard, found = await _judge(group, speech, encode, score, judging)
        speech_out += heard
        scores += found
        yield Progress(len(speech_out), len(pieces))
    results, at = [], 0
    labels, multi, dims = judging.labels, judging.multi_label, judging.dimensions
    for clip, cut in zip(clips, cuts, strict=True):
        parts = [
            piece(p.index, p.start_s, p.end_s, speech_out[at + k], scores[at + k], labels, multi, dims)
            for k, p in enumerate(cut)
        ]  # fmt: skip
        at += len(cut)
        duration = len(clip) / SAMPLE_RATE
        if duration > judging.cutting.segment_over_s:
            results.append(recording(parts, duration, labels, multi, dims))
        else:
            (part,) = parts
            results.append(single(part, duration, multi))
    yield results


async def events(steps):
    """``compose_steps`` of one clip -> the events a streamed answer sends: ``{"done",
    "total"}`` after each group of pieces, then ``{"result": the service's answer}``."""
    async for step in steps:
        if isinstance(step, Progress):
            yield {"done": step.done, "total": step.total}
        else:
            yield {"result": step[0].to_api()}


async def _judge(pieces: list[Segment], speech, encode, score, judging: Judging):
    """Pieces -> their ``SpeechFeatures`` and the model's answers (None: no speech)."""
    speech_out = await speech([(p.audio, p.speech_s) for p in pieces])
    spoken = [i for i, sp in enumerate(speech_out) if not silent(judging.rule, sp)]
    scores: list = [None] * len(pieces)
    if spoken:
        texts = [speech_out[i].transcript for i in spoken]
        tokens = await encode(texts)
        found = await score(
            [speech_out[i].frames for i in spoken],
            tokens,
            [pieces[i].audio for i in spoken] if judging.needs_audio else None,
            texts,
        )
        for i, sc in zip(spoken, list(found), strict=True):
            scores[i] = sc
    return list(speech_out), scores


def text_results(
    labels: list[str],
    texts: list[str],
    scores: np.ndarray,
    multi_label: bool = False,
    dimensions: list[str] | tuple = (),
) -> list[dict]:
    return [
        {"text": text} | judged(labels, sc, multi_label, dimensions)
        for text, sc in zip(texts, scores, strict=True)
    ]


class Inference:
    """The three stages of a checkpoint in one process, ready to score clips and texts:
    what ``raymer.Recognizer`` and the ``single`` Serve layout hold.

    ``rule`` is the no-speech rule (``SpeechConfig``): a piece it finds silent gets no
    emotion; ``cutting`` (``SegmentConfig``): how audio longer than ``segment_over_s`` is
    cut at its pauses.
    """

    def __init__(
        self,
        checkpoint: str,
        text_checkpoint: str | None = None,
        device: str = "cpu",
        threads: int = 0,
        cutting: SegmentConfig | None = None,
        rule: SpeechConfig | None = None,
    ) -> None:
        from raymer.models.builders import build_featurizer, build_text_encoder

        self.heads = Heads(checkpoint, text_checkpoint, threads, device)
        self.extract = self.heads.extract
        self.rule = rule or SpeechConfig()
        featurizer = build_featurizer(self.extract, device, threads, self.rule)
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
        )

    @property
    def text(self) -> LoadedModel | None:
        return self.heads.text

    def info(self) -> dict:
        return self.heads.info()

    async def arecognize(self, clips: list[np.ndarray]) -> list[Prediction]:
        return await compose(clips, *self._stages(), self.judging)

    def arecognize_steps(self, clip: np.ndarray, step: int):
        """One clip, ``step`` pieces at a time: ``Progress`` after each group, then
        ``[Prediction]`` (``compose_steps``)."""
        return compose_steps([clip], *self._stages(), self.judging, step)

    def _stages(self):
        async def speech(items):
            return self.listener(items)

        async def encode(t):
            return [e.tokens for e in self.encoder(t)]

        async def score(f, t, a, x):
            return self.heads.score(f, t, a, x)

        return speech, encode, score

    def recognize(self, clips: list[np.ndarray]) -> list[Prediction]:
        """16 kHz mono float32 clips -> one ``Prediction`` per clip (inside a running event
        loop too)."""
        return run_sync(self.arecognize(clips))

    def recognize_text(self, texts: list[str]) -> list[dict]:
        """Texts alone, through the text-only model."""
        tokens = [t.tokens for t in self.encoder(texts)]
        return text_results(
            self.labels,
            texts,
            self.heads.score([], tokens, texts=texts, text_only=True),
            self.heads.text_multi_label,
            self.heads.text.spec.dimensions if self.heads.text else (),
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
