"""The model deployments behind the ingress (``app.Api``), by ``layout``:

- ``single``: ``Model`` holds the whole recognizer of a checkpoint;
- ``split``: ``Speech`` (Whisper), ``Text`` (the text encoder) and ``Head`` (the trained
  heads), composed by the ingress through ``SplitStages``.

Each batches with ``@serve.batch`` and is autoscaled (``autoscaled``); a failed batch is
retried item by item (``raymer.itemwise.run_batch``), so one bad item fails alone: its answer
is an ``ItemError``.
"""

# No `from __future__ import annotations`: Serve and FastAPI read the real types.

import asyncio
import logging

import numpy as np
from ray import serve

from raymer.audio.decode import Checked
from raymer.config import ExtractSettings, ServeConfig
from raymer.config.parts import StageResources
from raymer.itemwise import ItemError, arun_batch, run_batch

logger = logging.getLogger("ray.serve")

# Whisper calls a replica runs side by side (CTranslate2 workers sharing one copy of the
# weights): a live segment's first answer never waits for a window's final being judged.
SIDE_BY_SIDE = 2


def autoscaled(deployment, cfg: ServeConfig, stage: StageResources):
    """``deployment`` autoscaled, each replica given what ``stage`` (of ``cfg.resources``)
    says."""
    return deployment.options(
        autoscaling_config={
            "min_replicas": cfg.min_replicas,
            "initial_replicas": max(1, cfg.min_replicas),
            "max_replicas": cfg.max_replicas,
            "target_ongoing_requests": cfg.target_ongoing_requests,
            "upscale_delay_s": cfg.upscale_delay_s,
            "downscale_delay_s": cfg.downscale_delay_s,
        },
        max_ongoing_requests=cfg.max_ongoing_requests,
        max_queued_requests=cfg.max_queued_requests,
        graceful_shutdown_timeout_s=cfg.request_timeout_s,  # a shutdown answers what is in flight
        ray_actor_options={"num_cpus": stage.num_cpus, "num_gpus": cfg.resources.gpus(stage)},
    )


def _batch_settings(cfg: ServeConfig, *methods) -> None:
    for method in methods:
        method.set_max_batch_size(cfg.batch_max_size)
        method.set_batch_wait_timeout_s(cfg.batch_wait_timeout_s)


@serve.deployment(name="Model")
class Model:
    """``layout: single``: the recognizer of one checkpoint (all three stages), batched."""

    def __init__(self, cfg: dict) -> None:
        from raymer.inference.core import Inference

        self.cfg = ServeConfig(**cfg)
        self.recognizer = Inference(
            self.cfg.checkpoint,
            self.cfg.text_checkpoint,
            device=self.cfg.resources.device_of(self.cfg.resources.asr),
            threads=self.cfg.resources.asr.threads,
            cutting=self.cfg.segment,
            rule=self.cfg.speech,
            min_confidence=self.cfg.min_confidence,
            workers=SIDE_BY_SIDE,  # (``stage``: a live recording's two answers)
        )
        _batch_settings(self.cfg, self.recognize, self.recognize_text)

    def info(self) -> dict:
        return self.recognizer.info()

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.05)
    async def recognize(self, clips: list[Checked]) -> list:
        """Each clip's answer (``Prediction``; the ingress writes it as JSON or a file), or
        its ``ItemError``."""
        return await arun_batch(self.recognizer.arecognize, clips, "recognition")

    async def recognize_steps(self, clip: Checked):
        """One clip, its pieces ``batch_max_size`` at a time, streamed (a handle with
        ``stream=True``): progress events, then the answer (``inference.events``), or an
        ``{"error"}`` event."""
        from raymer.inference.core import events

        try:
            async for event in events(
                self.recognizer.arecognize_steps(clip, self.cfg.batch_max_size)
            ):
                yield event
        except Exception as err:  # the answer's own failure, as a line of the stream
            logger.warning("streamed recognition failed: %s", err)
            yield {"error": f"the model failed on this input: {type(err).__name__}: {err}"}

    async def stage(self, name: str, *args):
        """One stage of the recognizer (``speech``, ``encode``, ``score``), for a live
        recording: the ingress cuts it as it arrives, this replica judges its segments."""
        speech, encode, score = self.recognizer.stages()
        return await {"speech": speech, "encode": encode, "score": score}[name](*args)

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.05)
    async def recognize_text(self, texts: list[str]) -> list:
        if self.recognizer.text is None:
            return [ItemError("no text-only model")] * len(texts)
        return run_batch(self.recognizer.recognize_text, texts, "text recognition")


@serve.deployment(name="Speech")
class Speech:
    """``layout: split``: Whisper ASR and the encoder frames (one encoder pass), batched."""

    def __init__(self, cfg: dict, extract: dict) -> None:
        from raymer.inference.listener import Listener
        from raymer.models.builders import build_featurizer

        self.cfg = ServeConfig(**cfg)
        res = self.cfg.resources
        settings = ExtractSettings(**extract)
        device = res.device_of(res.asr)
        featurizer = build_featurizer(
            settings, device, res.asr.threads, self.cfg.speech, SIDE_BY_SIDE
        )
        self.listener = Listener(featurizer, self.cfg.speech)
        _batch_settings(self.cfg, self.run)

    def ready(self) -> bool:
        return True

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.05, max_concurrent_batches=SIDE_BY_SIDE)
    async def run(self, items: list[tuple[np.ndarray, float]]) -> list:
        """Each item: a piece and the seconds of speech the segmenter heard in it."""
        return await asyncio.to_thread(run_batch, self.listener, items, "speech recognition")


@serve.deployment(name="Text")
class Text:
    """``layout: split``: the text encoder's token features, batched."""

    def __init__(self, cfg: dict, extract: dict) -> None:
        from raymer.models.builders import build_text_encoder

        self.cfg = ServeConfig(**cfg)
        res = self.cfg.resources
        settings = ExtractSettings(**extract)
        self.encoder = build_text_encoder(settings, res.device_of(res.model), res.model.threads)
        _batch_settings(self.cfg, self.run)

    def ready(self) -> bool:
        return True

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.05)
    async def run(self, texts: list[str]) -> list:
        return run_batch(lambda t: [e.tokens for e in self.encoder(t)], texts, "text encoding")


@serve.deployment(name="Head")
class Head:
    """``layout: split``: the trained heads (fusion and text-only), batched."""

    def __init__(self, cfg: dict) -> None:
        from raymer.inference.heads import Heads

        self.cfg = ServeConfig(**cfg)
        threads = self.cfg.resources.model.threads
        self.heads = Heads(self.cfg.checkpoint, self.cfg.text_checkpoint, threads)
        _batch_settings(self.cfg, self.score)

    def info(self) -> dict:
        return self.heads.info()

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.05)
    async def score(self, items: list[tuple]) -> list:
        """items: (frames, tokens, audio or None, text, text_only) -> a score row each."""
        out: list = [None] * len(items)
        for text_only in (False, True):
            idx = [i for i, it in enumerate(items) if it[4] == text_only]
            group = [items[i] for i in idx]
            for i, row in zip(idx, run_batch(self._score, group, "scoring"), strict=True):
                out[i] = row
        return out

    def _score(self, group: list[tuple]):
        audio = [it[2] for it in group] if group[0][2] is not None else None
        return self.heads.score(
            [it[0] for it in group],
            [it[1] for it in group],
            audio,
            [it[3] for it in group],
            text_only=group[0][4],
        )


def judging_of(info: dict, cfg: ServeConfig):
    """What ``compose`` and a live recording need to know (``Judging``): the model's facts
    (``info``, asked of a replica) and the service's cutting, no-speech rule and
    min_confidence."""
    from raymer.inference.core import Judging

    return Judging(
        labels=info["labels"],
        needs_audio=info["needs_audio"],
        multi_label=info["multi_label"],
        dimensions=tuple(info["dimensions"]),
        rule=cfg.speech,
        cutting=cfg.segment,
        min_confidence=cfg.min_confidence,
    )


class _StageError(Exception):
    """A stage answered with an error for this item."""


class SplitStages:
    """The ingress's side of ``layout: split``: ``compose`` over the three stages' handles,
    one item per call (each stage batches what arrives together)."""

    def __init__(self, speech, text, head, cfg: ServeConfig) -> None:
        self.speech, self.text, self.head, self.cfg = speech, text, head, cfg

    async def info(self) -> dict:
        return await self.head.info.remote()

    async def ready(self) -> None:
        """Every stage answers (not only the head)."""
        await asyncio.gather(
            self.speech.ready.remote(), self.text.ready.remote(), self.head.info.remote()
        )

    async def _each(self, handle_method, items: list) -> list:
        out = await asyncio.gather(*(handle_method.remote(item) for item in items))
        for o in out:
            if isinstance(o, ItemError):
                raise _StageError(o.message)
        return list(out)

    def stages(self):
        async def speech(items):
            return await self._each(self.speech.run, items)

        async def encode(texts):
            return await self._each(self.text.run, texts)

        async def score(frames, tokens, audio, texts):
            audio = audio or [None] * len(frames)
            items = list(zip(frames, tokens, audio, texts, [False] * len(frames), strict=True))
            return await self._each(self.head.score, items)

        return speech, encode, score

    async def recognize(self, clip: Checked, info: dict):
        """The clip's answer (``Prediction``), or an ``ItemError``."""
        from raymer.inference.core import compose

        try:
            results = await compose([clip], *self.stages(), judging_of(info, self.cfg))
        except _StageError as err:
            return ItemError(str(err))
        return results[0]

    async def recognize_steps(self, clip: Checked, models):
        """``Model.recognize_steps`` over the three stages; ``models``: the ingress's
        coroutine function answering the model's facts (asked once the stream starts)."""
        from raymer.inference.core import compose_steps, events

        info = await models()
        judging = judging_of(info, self.cfg)
        steps = compose_steps([clip], *self.stages(), judging, self.cfg.batch_max_size)
        try:
            async for event in events(steps):
                yield event
        except _StageError as err:
            yield {"error": f"the model failed on this input: {err}"}

    async def recognize_text(
        self, text: str, labels: list[str], multi_label: bool, dimensions: list[str]
    ) -> dict:
        from raymer.inference.core import text_results

        tokens = await self.text.run.remote(text)
        if isinstance(tokens, ItemError):
            return tokens
        scores = await self.head.score.remote((None, tokens, None, text, True))
        if isinstance(scores, ItemError):
            return scores
        answers = np.asarray([scores])
        return text_results(
            labels, [text], answers, multi_label, dimensions, self.cfg.min_confidence
        )[0]
