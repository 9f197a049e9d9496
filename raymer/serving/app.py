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

Both run ``recognizer.compose``, so they answer the same. ``benchmarks/serve_load.py``
measures both; on CPU replicas ``single`` serves better (README, "Serve").
"""

# No `from __future__ import annotations` here: FastAPI must see the real parameter types
# of the ingress methods, which Serve re-binds.

import asyncio
import os
from importlib import resources
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, Field
from ray import serve

from raymer import __version__
from raymer.batches import ItemError
from raymer.config import ServeConfig
from raymer.serving.deployments import Head, Model, Speech, SplitStages, Text, autoscaled

API_TOKEN_ENV = "RAYMER_API_TOKEN"
AUDIO_TYPES = {
    "audio/wav",
    "audio/x-wav",
    "audio/wave",
    "audio/vnd.wave",
    "audio/flac",
    "audio/x-flac",
    "audio/mpeg",
    "audio/mp3",
    "audio/ogg",
    "audio/opus",
    "audio/webm",
    "video/webm",
    "audio/mp4",
    "application/octet-stream",
}
OPEN_PATHS = {"/", "/healthz", "/readyz", "/docs", "/openapi.json", "/docs/oauth2-redirect"}

api = FastAPI(
    title="raymer",
    version=__version__,
    description="Emotion recognition from speech and its transcript (co-attention fusion of "
    "Whisper and MiniLM features). Upload audio to /v1/recognize; text to /v1/recognize/text.",
)
CORS_ENV = "RAYMER_CORS_ORIGINS"


def _settings() -> dict[str, Any]:
    """Auth and CORS of this replica, from its environment (set by build_app through the
    Api deployment's runtime_env: Serve pickles the ingress by value, so module state set at
    run time would not be shared between the middleware and the class)."""
    origins = os.environ.get(CORS_ENV, "")
    return {
        "cors": [o for o in origins.split(",") if o],
        "token": os.environ.get(API_TOKEN_ENV) or None,
    }


class TextRequest(BaseModel):
    text: str = Field(..., description="The text to score.", examples=["I can't believe it!"])


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message, "status": status}, status_code=status)


@api.middleware("http")
async def _cors_and_auth(request: Request, call_next):
    settings = _settings()
    origin = request.headers.get("origin")
    allowed = settings["cors"]
    cors = origin and ("*" in allowed or origin in allowed)
    if request.method == "OPTIONS" and cors:  # preflight
        response = Response(status_code=204)
    else:
        token = settings["token"]
        guarded = token and request.url.path not in OPEN_PATHS and request.method != "OPTIONS"
        if guarded and request.headers.get("authorization", "") != f"Bearer {token}":
            response = _error(
                401, "missing or wrong bearer token (send 'Authorization: Bearer TOKEN')"
            )
            response.headers["WWW-Authenticate"] = "Bearer"
            return _with_cors(response, origin if cors else None)
        response = await call_next(request)
    return _with_cors(response, origin if cors else None)


def _with_cors(response: Response, origin: str | None) -> Response:
    if origin:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Allow-Headers"] = "Authorization, Content-Type"
        response.headers["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
        response.headers["Vary"] = "Origin"
    return response


# Helpers come before the deployments: Serve captures a deployment class (and the module
# names its methods use) when the decorator runs.
async def _read(request: Request, limit: int) -> bytes | Response:
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return _error(413, f"upload is over {limit:,} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def _form(request: Request, body: bytes) -> bytes | Response:
    """The ``file`` field of a multipart body (already read, within the size limit)."""
    from starlette.datastructures import UploadFile
    from starlette.formparsers import MultiPartParser

    async def stream():
        yield body

    try:
        form = await MultiPartParser(request.headers, stream()).parse()
    except Exception as err:
        return _error(400, f"malformed multipart body: {err}")
    field = form.get("file")
    if field is None:
        return _error(400, "multipart upload without a 'file' field")
    if isinstance(field, UploadFile):
        return await field.read()
    return str(field).encode()


def _decode(data: bytes, max_duration_s: float) -> np.ndarray | Response:
    """Upload bytes -> 16 kHz mono samples with the pipeline's decoder, or a 4xx answer."""
    from raymer.audio import SAMPLE_RATE, AudioError, decode_audio

    try:
        audio = decode_audio(data)
    except AudioError as err:
        return _error(422, f"cannot use this audio: {err}")
    except Exception as err:
        return _error(422, f"cannot decode this audio: {type(err).__name__}: {err}")
    duration = len(audio) / SAMPLE_RATE
    if duration > max_duration_s:
        return _error(
            413, f"the audio lasts {duration:.1f} s, over max_duration_s={max_duration_s:g}"
        )
    if duration < 0.1:
        return _error(422, f"the audio is too short ({duration * 1000:.0f} ms) to recognise")
    return audio


@serve.deployment(name="Api")
@serve.ingress(api)
class Api:
    """HTTP ingress: checks and decodes the upload, then asks the model."""

    def __init__(self, cfg: dict, model=None, speech=None, text=None, head=None) -> None:
        self.cfg = ServeConfig(**cfg)
        self.model = model
        self.split = SplitStages(speech, text, head, self.cfg) if model is None else None
        self._info: dict | None = None

    async def _models(self) -> dict:
        if self._info is None:
            source = self.split.info() if self.split else self.model.info.remote()
            self._info = await source
        return self._info

    async def _recognize(self, audio: np.ndarray):
        if self.split is None:
            return await self.model.recognize.remote(audio)
        return await self.split.recognize(audio, await self._models())

    async def _recognize_text(self, text: str):
        if self.split is None:
            return await self.model.recognize_text.remote(text)
        info = await self._models()
        return await self.split.recognize_text(text, info["labels"], info["text_multi_label"])

    async def _ask(self, work):
        """Model work bounded by the request timeout; overload and timeouts become 503/504."""
        from ray.serve.exceptions import BackPressureError

        try:
            return await asyncio.wait_for(work, timeout=self.cfg.request_timeout_s)
        except BackPressureError:
            return _error(503, "the service is at capacity; retry in a few seconds")
        except TimeoutError:
            return _error(504, f"no answer within {self.cfg.request_timeout_s:g} s")

    @api.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page(self) -> HTMLResponse:
        html = resources.files("raymer.serving").joinpath("page.html").read_text()
        auth = "true" if _settings()["token"] else "false"
        return HTMLResponse(html.replace("__AUTH__", auth))

    @api.get("/healthz", summary="Liveness: the HTTP ingress answers")
    def healthz(self) -> dict:
        return {"status": "ok"}

    @api.get("/readyz", summary="Readiness: a model replica answers")
    async def readyz(self):
        try:
            await asyncio.wait_for(self._models(), timeout=10)
        except Exception as err:
            return _error(503, f"model not ready: {type(err).__name__}")
        return {"status": "ready"}

    @api.get("/v1/models", summary="The models and checkpoint behind this service")
    async def models(self) -> dict:
        return await self._models()

    @api.post(
        "/v1/recognize",
        summary="Emotions of an audio clip (WAV, FLAC, MP3, OGG, WebM)",
        description="Send the audio as the raw request body (Content-Type audio/* or "
        "application/octet-stream) or as a multipart form field named `file`. Returns the "
        "transcript, language, duration, a score per label, the top label, and for long audio "
        "the segments with their own scores.",
        responses={
            400: {"description": "empty upload"},
            401: {"description": "missing or wrong bearer token"},
            413: {"description": "upload or audio too long"},
            415: {"description": "not an audio content type"},
            422: {"description": "the audio cannot be decoded"},
            503: {"description": "at capacity"},
            504: {"description": "timed out"},
        },
    )
    async def recognize(self, request: Request):
        data = await self._upload(request)
        if isinstance(data, Response):
            return data
        audio = _decode(data, self.cfg.max_duration_s)
        if isinstance(audio, Response):
            return audio
        result = await self._ask(self._recognize(audio))
        if isinstance(result, Response):
            return result
        if isinstance(result, ItemError):
            return _error(422, result.message)
        info = await self._models()
        return result | {
            "models": {"asr": info["asr_model"], "text": info["text_model"]},
            "checkpoint": info["checkpoint"],
        }

    @api.post("/v1/recognize/text", summary="Emotions of a text, through the text-only model")
    async def recognize_text(self, body: TextRequest):
        text = body.text.strip()
        if not text:
            return _error(400, "the text is empty")
        if len(text) > self.cfg.max_text_chars:
            return _error(413, f"the text is over max_text_chars={self.cfg.max_text_chars}")
        info = await self._models()
        if not info.get("text_checkpoint"):
            return _error(
                404,
                "this service has no text-only model; serve a `raymer compare` output or set "
                "text_checkpoint",
            )
        result = await self._ask(self._recognize_text(text))
        if isinstance(result, Response):
            return result
        if isinstance(result, ItemError):
            return _error(422, result.message)
        return result | {
            "models": {"text": info["text_model"]},
            "checkpoint": info["text_checkpoint"],
        }

    async def _upload(self, request: Request) -> bytes | Response:
        limit = int(self.cfg.max_upload_mb * 1024 * 1024)
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit + 64 * 1024:
            return _error(413, f"upload of {int(declared):,} bytes is over {limit:,} bytes")
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype == "multipart/form-data":
            body = await _read(request, limit + 64 * 1024)
            if isinstance(body, Response):
                return body
            form = await _form(request, body)
            if isinstance(form, Response):
                return form
            data = form
        elif ctype in AUDIO_TYPES or ctype.startswith("audio/") or not ctype:
            data = await _read(request, limit)
            if isinstance(data, Response):
                return data
        else:
            return _error(
                415,
                f"unsupported content type {ctype!r}: send audio (WAV, FLAC, MP3, OGG, WebM) "
                "as the body or as the form field 'file'",
            )
        if len(data) > limit:
            return _error(413, f"upload of {len(data):,} bytes is over {limit:,} bytes")
        if not data:
            return _error(400, "the upload is empty (0 bytes of audio)")
        return data


def build_app(args: dict) -> serve.Application:
    """The application for ``serve.run`` / ``serve deploy`` (args: ServeConfig fields)."""
    cfg = ServeConfig(**args)
    if cfg.max_ongoing_requests < cfg.batch_max_size:
        cfg = cfg.model_copy(update={"max_ongoing_requests": cfg.batch_max_size})
    plain = cfg.model_dump(mode="json")
    if cfg.layout == "single":
        stages = {"model": autoscaled(Model, cfg, cfg.replica_num_cpus).bind(plain)}
    else:
        from raymer import checkpoint

        main = checkpoint.models_of(cfg.checkpoint)[0]
        extract = checkpoint.load_spec(main).extract.model_dump()
        stages = {
            "speech": autoscaled(Speech, cfg, cfg.replica_num_cpus).bind(plain, extract),
            "text": autoscaled(Text, cfg, cfg.stage_num_cpus).bind(plain, extract),
            "head": autoscaled(Head, cfg, cfg.stage_num_cpus).bind(plain),
        }
    env = {CORS_ENV: ",".join(cfg.cors_origins)}
    token = cfg.auth_token or os.environ.get(API_TOKEN_ENV)
    if token:
        env[API_TOKEN_ENV] = token
    return Api.options(
        num_replicas=1,
        max_ongoing_requests=4 * cfg.max_ongoing_requests + cfg.max_queued_requests,
        ray_actor_options={"num_cpus": 0.1, "runtime_env": {"env_vars": env}},
    ).bind(plain, **stages)
