"""``raymer serve``: the Ray Serve application. ``build_app(args)`` makes it; importing this
module does no work.

The ingress ``Api`` (FastAPI): authentication, upload limits, audio decoding with the
pipeline's decoder (so bad input is answered here, before it reaches a model), the page at
``/``, and the JSON API ``/v1/...`` documented at ``/docs``. Behind it, by ``layout``:

- ``single`` (the default): one ``Model`` deployment holds the whole recognizer of a
  checkpoint (Whisper ASR and frames from one encoder pass, text encoder, fusion head), with
  ``@serve.batch``, autoscaled between ``min_replicas`` and ``max_replicas``;
- ``split``: the three stages as deployments of their own, ``Speech`` (Whisper), ``Text``
  (the text encoder) and ``Head`` (fusion and text-only heads), each batched and autoscaled,
  composed by the ingress through their handles (``deployments.py``).

Both run ``raymer.inference.core.compose``, so they answer the same. ``benchmarks/serve_load.py``
measures both; on CPU replicas ``single`` serves better (README, "Serve").
"""

# No `from __future__ import annotations` here: FastAPI must see the real parameter types
# of the ingress methods, which Serve re-binds.

import asyncio

from fastapi import Request, WebSocket
from fastapi.responses import HTMLResponse, Response, StreamingResponse
from ray import serve

from raymer.audio.decode import Checked
from raymer.config import ServeConfig
from raymer.inference.exports import MEDIA_TYPES, export
from raymer.itemwise import ItemError
from raymer.serving import auth, ingress, live
from raymer.serving.deployments import Head, Model, Speech, SplitStages, Text, autoscaled
from raymer.serving.web import TextRequest, api, page_html

# Helpers are imported before the deployments: Serve captures a deployment class (and the
# module names its methods use) when the decorator runs.


@serve.deployment(name="Api")
@serve.ingress(api)
class Api:
    """HTTP ingress: checks and decodes the upload, then asks the model."""

    def __init__(self, cfg: dict, model=None, speech=None, text=None, head=None) -> None:
        self.cfg = ServeConfig(**cfg)
        self.model = model
        self.split = SplitStages(speech, text, head, self.cfg) if model is None else None
        self._info: dict | None = None
        self._ready: tuple[float, str | None] | None = None  # (when, why not ready)
        self.uploads = ingress.Uploads(self.cfg)  # bodies being received now, bounded
        self.decodes = asyncio.Semaphore(self.cfg.decode_threads)
        self.limits = self.cfg.decode
        self.active = 0  # recognitions in flight (a shutdown waits for them: server.stop)
        self.streams = live.Streams(self.cfg)  # live recordings (/v1/stream) held now

    async def _counted(self, lines):
        """A streamed answer, in flight until its last line."""
        self.active += 1
        try:
            async for line in lines:
                yield line
        finally:
            self.active -= 1

    def in_flight(self) -> int:
        """Recognitions being answered now (``raymer.serving.server.stop`` drains them)."""
        return self.active

    async def _ping(self) -> dict:
        """Ask a model replica now (``_models`` keeps the first answer for /v1/models)."""
        return await (self.split.info() if self.split else self.model.info.remote())

    async def _readiness(self) -> str | None:
        """Why the service is not ready (None: ready): every model deployment answered within
        ready_timeout_s, checked at most every ready_cache_s whatever the probes' rate."""
        loop = asyncio.get_running_loop()
        if self._ready is not None and loop.time() - self._ready[0] < self.cfg.ready_cache_s:
            return self._ready[1]
        try:
            check = self.split.ready() if self.split else self.model.info.remote()
            await asyncio.wait_for(check, timeout=self.cfg.ready_timeout_s)
            why = None
        except Exception as err:
            why = f"model not ready: {type(err).__name__ or 'no answer'}"
        self._ready = (loop.time(), why)
        return why

    async def _models(self) -> dict:
        if self._info is None:
            self._info = await self._ping()
        return self._info

    async def _recognize(self, audio: Checked):
        if self.split is None:
            return await self.model.recognize.remote(audio)
        return await self.split.recognize(audio, await self._models())

    def _steps(self, audio: Checked):
        if self.split is None:
            return self.model.options(stream=True).recognize_steps.remote(audio)
        return self.split.recognize_steps(audio, self._models)

    async def _recognize_text(self, text: str):
        if self.split is None:
            return await self.model.recognize_text.remote(text)
        info = await self._models()
        return await self.split.recognize_text(
            text, info["labels"], info["text_multi_label"], info["text_dimensions"]
        )

    async def _live_stages(self):
        """The three stages and the ``Judging`` a live recording runs over (``live``)."""
        return live.stages_of(self.model, self.split, await self._models(), self.cfg)

    @api.websocket("/v1/stream")
    async def stream(self, ws: WebSocket) -> None:
        """A live recording (``raymer.serving.live``: its messages, limits and close codes)."""
        self.active += 1
        try:
            await live.serve_stream(
                ws, self.cfg, auth.replica_settings(), self.streams, self._live_stages
            )
        finally:
            self.active -= 1

    async def _ask(self, work):
        """Model work bounded by the request timeout; overload, timeouts and a replica that
        dies while answering become 503/504, and a model that fails on the input 500: always
        JSON, never the client's fault."""
        try:
            result = await asyncio.wait_for(work, timeout=self.cfg.request_timeout_s)
        except TimeoutError:
            return ingress.error(504, f"no answer within {self.cfg.request_timeout_s:g} s")
        except Exception as err:  # overload, or a replica that died while answering
            return ingress.error(*ingress.failure(err))
        if isinstance(result, ItemError):
            return ingress.error(500, f"the model failed on this input: {result.message}")
        return result

    @api.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page(self) -> HTMLResponse:
        return HTMLResponse(page_html(bool(auth.replica_settings()["token_sha256"])))

    @api.get("/healthz", summary="Liveness: the HTTP ingress answers", responses=ingress.ANY_ROUTE)
    async def healthz(self) -> dict:  # async: never waits for a thread
        return {"status": "ok"}

    @api.get(
        "/readyz",
        summary="Readiness: every model deployment answers (checked at most every ready_cache_s)",
        responses=ingress.ANY_ROUTE
        | {
            503: {
                "description": "a model deployment does not answer",
                "content": ingress.ERROR_SCHEMA,
            }
        },
    )
    async def readyz(self):
        why = await self._readiness()
        return ingress.error(503, why) if why else {"status": "ready"}

    @api.get(
        "/v1/models",
        summary="The models and checkpoint behind this service",
        responses=ingress.responses(),
    )
    async def models(self):
        info = await self._ask(self._models())
        if isinstance(info, Response):
            return info
        return info | {"min_confidence": self.cfg.min_confidence}

    @api.post(
        "/v1/recognize",
        summary="Emotions of an audio clip (WAV, FLAC, MP3, OGG, WebM)",
        description="Send the audio as the raw request body (Content-Type audio/* or "
        "application/octet-stream) or as a multipart form field named `file`. Returns the "
        "transcript, language, duration, a score per label, the top label, and for audio over "
        "segment.segment_over_s the segments `raymer recognize` cuts it into (at its pauses), each "
        "with its own scores; the label is then the one with the most speech time. A model "
        "trained with emotion dimensions (targets: arousal, valence, dominance) answers them "
        "too (`dimensions`, -1..1; a long recording's are its segments' means weighted by "
        "their speech time). `?stream=true` answers as it goes, in NDJSON lines: "
        '`{"done": k, "done_s": t, "duration_s": d}` after each group of windows (k segments '
        'judged, the recording judged through t seconds of its d), then `{"result": the '
        'answer}` (or `{"error", "status"}`): for long recordings (the page uses it). '
        "`?format=vtt|srt|textgrid|csv` (or an Accept header of their types) answers with the "
        "recording as that file: subtitles with a cue per segment with speech (the label, "
        "its score, the transcript), a Praat TextGrid, a CSV of the segments.",
        openapi_extra={
            "requestBody": ingress.AUDIO_BODY,
            "parameters": [ingress.STREAM_PARAM, ingress.FORMAT_PARAM],
        },
        responses=ingress.responses(
            ingress.RECOGNITION_SCHEMA | ingress.FILE_ANSWERS,
            _400="empty upload, or a multipart body without a `file` field",
            _408="the upload did not arrive within upload_timeout_s",
            _413="upload, or audio, over the limits",
            _415="not an audio content type",
            _429="too many uploads from this client at once (max_uploads_per_client)",
            _422="the audio cannot be used (not audio, damaged, no samples, a header it refuses)",
        ),
    )
    async def recognize(self, request: Request):
        self.active += 1
        try:
            return await self._recognize_upload(request)
        finally:
            self.active -= 1

    async def _recognize_upload(self, request: Request):
        fmt = ingress.wanted_format(request)  # before the upload is read
        if isinstance(fmt, Response):
            return fmt
        upload = await self.uploads.read(request)
        if isinstance(upload, Response):
            return upload
        data, turns = upload
        async with self.decodes:  # in threads: the event loop keeps answering meanwhile
            audio = await asyncio.to_thread(
                ingress.decode_upload, data, self.limits, self.cfg.segment
            )
        if isinstance(audio, Response):
            return audio
        audio = ingress.with_turns(audio, turns)
        if isinstance(audio, Response):
            return audio
        if request.query_params.get("stream", "").lower() in ingress.STREAM_ON:
            return StreamingResponse(
                self._counted(
                    ingress.ndjson(self._steps(audio), self.cfg.request_timeout_s, self._models)
                ),
                media_type="application/x-ndjson",
            )
        result = await self._ask(self._recognize(audio))
        if isinstance(result, Response):
            return result
        info = await self._models()
        if fmt != "json":
            text = export(result, fmt, info["labels"], info["dimensions"])
            return Response(text, media_type=MEDIA_TYPES[fmt])
        return result.to_api() | ingress.provenance(info)

    @api.post(
        "/v1/recognize/text",
        summary="Emotions of a text, through the text-only model",
        responses=ingress.responses(
            _400="the body is not valid JSON",
            _404="this service has no text-only model",
            _413="the text is over max_text_chars",
            _422="the body is JSON but not {text: a non-empty string}",
        ),
    )
    async def recognize_text(self, body: TextRequest):
        text = body.text.strip()
        if len(text) > self.cfg.max_text_chars:
            return ingress.error(413, f"the text is over max_text_chars={self.cfg.max_text_chars}")
        info = await self._ask(self._models())
        if isinstance(info, Response):
            return info
        if not info.get("text_checkpoint"):
            return ingress.error(
                404,
                "this service has no text-only model; serve a `raymer compare` output or set "
                "text_checkpoint",
            )
        result = await self._ask(self._recognize_text(text))
        if isinstance(result, Response):
            return result
        return result | {
            "models": {"text": info["text_model"]},
            "checkpoint": info["text_checkpoint"],
        }


def build_app(args: dict) -> serve.Application:
    """The application for ``serve.run`` / ``serve deploy`` (args: ServeConfig fields)."""
    cfg = ServeConfig(**args)
    if cfg.max_ongoing_requests < cfg.batch_max_size:
        cfg = cfg.model_copy(update={"max_ongoing_requests": cfg.batch_max_size})
    plain = cfg.model_dump(mode="json", exclude={"auth_token"})  # args show in the dashboard
    if cfg.layout == "single":
        stages = {"model": autoscaled(Model, cfg, cfg.resources.asr).bind(plain)}
    else:
        from raymer.trained import checkpoint

        main = checkpoint.models_of(cfg.checkpoint)[0]
        extract = checkpoint.load_spec(main).extract.model_dump()
        stages = {
            "speech": autoscaled(Speech, cfg, cfg.resources.asr).bind(plain, extract),
            "text": autoscaled(Text, cfg, cfg.resources.model).bind(plain, extract),
            "head": autoscaled(Head, cfg, cfg.resources.model).bind(plain),
        }
    env = {auth.CORS_ENV: ",".join(cfg.cors_origins), auth.HOSTS_ENV: ",".join(cfg.allowed_hosts)}
    token = auth.resolve_token(cfg)
    auth.check_exposure(cfg, token, auth.listening_host(cfg))
    if token:
        env[auth.TOKEN_DIGEST_ENV] = auth.token_digest(token)
    return Api.options(
        num_replicas=1,
        # async and cheap per request: uploads (max_uploads) and decodes (decode_threads)
        # are bounded inside, the models by their own queues, so /healthz is never queued
        max_ongoing_requests=cfg.max_uploads + 4 * cfg.max_ongoing_requests + 64,
        # a shutdown (SIGTERM) answers the requests in flight: they may take request_timeout_s
        graceful_shutdown_timeout_s=cfg.request_timeout_s,
        ray_actor_options={"num_cpus": 0.1, "runtime_env": {"env_vars": env}},
    ).bind(plain, **stages)
