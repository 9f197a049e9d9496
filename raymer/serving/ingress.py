"""The HTTP side of ``raymer serve`` that needs no deployment: uploads read within their
limits and time, audio decoded with the pipeline's guard, the API's error shape and OpenAPI
answers, and the bearer token (read, hashed, compared, required off loopback)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import os

import numpy as np
from fastapi import Request
from fastapi.responses import JSONResponse, Response

from raymer.config import ServeConfig
from raymer.errors import UsageError

logger = logging.getLogger("ray.serve")

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


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def authorized(header: str, digest: str) -> bool:
    """Compares in constant time (hmac), on digests: no timing tells a token's prefix."""
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not given:
        return False
    return hmac.compare_digest(token_digest(given.strip()), digest)


AUDIO_BODY = {
    "required": True,
    "content": {
        "audio/*": {"schema": {"type": "string", "format": "binary"}},
        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "properties": {"file": {"type": "string", "format": "binary"}},
                "required": ["file"],
            }
        },
    },
}
# The 200 answer of /v1/recognize (OpenAPI 3.1: null is a type; "null" where no speech).
_NUMBERS = {"type": ["object", "null"], "additionalProperties": {"type": ["number", "null"]}}
_JUDGED = {
    "label": {"type": ["string", "null"], "description": "top label (null: no speech)"},
    "emotions": {**_NUMBERS, "description": "a score per label (null: no speech)"},
    "dimensions": {
        **_NUMBERS,
        "description": "a model trained with targets beyond the label: arousal, valence, "
        "dominance in -1..1 (absent for other models; values null without speech)",
    },
}
RECOGNITION_SCHEMA = {
    "application/json": {
        "schema": {
            "type": "object",
            "properties": {
                "transcript": {"type": "string"},
                "language": {"type": ["string", "null"]},
                "duration_s": {"type": "number"},
                "speech_s": {"type": ["number", "null"]},
                "no_speech": {"type": "boolean"},
                **_JUDGED,
                "labels": {"type": ["array", "null"], "items": {"type": "string"}},
                "shares": {**_NUMBERS, "description": "long audio: each label's speech share"},
                "segments": {
                    "type": "array",
                    "description": "long audio only: its segments, in order",
                    "items": {
                        "type": "object",
                        "properties": {
                            "start": {"type": "number"},
                            "end": {"type": "number"},
                            "text": {"type": "string"},
                            "speech_s": {"type": ["number", "null"]},
                            "no_speech": {"type": "boolean"},
                            **_JUDGED,
                        },
                    },
                },
                "models": {"type": "object"},
                "checkpoint": {"type": ["string", "null"]},
            },
            "required": ["transcript", "duration_s", "no_speech", "label", "emotions"],
        }
    },
    "application/x-ndjson": {  # ?stream=true
        "schema": {"type": "string", "description": "JSON lines: progress, then the answer"}
    },
}
ERROR_SCHEMA = {
    "application/json": {
        "schema": {
            "type": "object",
            "properties": {"error": {"type": "string"}, "status": {"type": "integer"}},
            "required": ["error", "status"],
        }
    }
}


def responses(ok: dict | None = None, **codes: str) -> dict:
    """OpenAPI answers of a route: the ones given, and those any /v1 route may give (with
    ``ok``, the content of its 200 answer)."""
    common = {
        "401": "missing or wrong bearer token",
        "403": "without a token: a request from another site's web page (Origin, Sec-Fetch-Site)",
        "421": HOST_REFUSED,
        "500": "the model failed on this input",
        "503": "at capacity, or no model replica is up; retry",
        "504": "timed out",
    }
    out = {
        int(code): {"description": text, "content": ERROR_SCHEMA}
        for code, text in (common | {k.lstrip("_"): v for k, v in codes.items()}).items()
    }
    return ({200: {"description": "the answer", "content": ok}} if ok else {}) | out


HOST_REFUSED = "without a token: a Host this service does not answer for (allowed_hosts)"
ANY_ROUTE = {421: {"description": HOST_REFUSED, "content": ERROR_SCHEMA}}


def with_cors(response: Response, origin: str | None) -> Response:
    if origin:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Allow-Headers"] = "Authorization, Content-Type"
        response.headers["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
        response.headers["Vary"] = "Origin"
    return response


STREAM_PARAM = {
    "name": "stream",
    "in": "query",
    "required": False,
    "schema": {"type": "boolean", "default": False},
    "description": "answer in NDJSON lines as the segments are judged (progress, then the answer)",
}


def provenance(info: dict) -> dict:
    """What an audio answer says of where it came from: the models and the checkpoint
    (``info``: the model replica's ``/v1/models`` facts)."""
    return {
        "models": {"asr": info["asr_model"], "text": info["text_model"]},
        "checkpoint": info["checkpoint"],
    }


def failure(err: Exception) -> tuple[int, str]:
    """The status and message of model work that raised ``err`` (not a timeout): overload
    503, and a replica that died (killed, OOM) or whose actor is gone 503, logged."""
    from ray.serve.exceptions import BackPressureError

    if isinstance(err, BackPressureError):
        return 503, "the service is at capacity; retry in a few seconds"
    logger.warning("answer failed", exc_info=err)
    return 503, f"the model replica failed while answering ({type(err).__name__}); retry"


async def ndjson(events, timeout_s: float, models):
    """A streamed answer's lines: each event of ``events`` (``{"done", "total"}``, then
    ``{"result"}`` with the ``models`` and ``checkpoint`` beside it, or ``{"error"}``) as a
    JSON line; no event within ``timeout_s`` ends it with a 504 line, a replica that dies
    with a 503 line (the status line went out with the first byte)."""
    import json

    stream = events.__aiter__()
    while True:
        try:
            event = await asyncio.wait_for(stream.__anext__(), timeout_s)
        except StopAsyncIteration:
            return
        except TimeoutError:
            event = {"error": f"no progress within {timeout_s:g} s", "status": 504}
        except Exception as err:
            status, message = failure(err)
            event = {"error": message, "status": status}
        if "result" in event:
            event["result"] |= provenance(await models())
        if "error" in event:
            event.setdefault("status", 500)
        yield (json.dumps(event) + "\n").encode()
        if "error" in event:
            return


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message, "status": status}, status_code=status)


async def read_body(request: Request, limit: int, timeout_s: float) -> bytes | Response:
    """The body, up to ``limit`` bytes and within ``timeout_s``: a client that sends slowly
    or stops sending gets 408 and frees its place instead of holding it for ever."""
    chunks, size = [], 0
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    stream = request.stream().__aiter__()
    while True:
        try:
            chunk = await asyncio.wait_for(stream.__anext__(), max(0.0, deadline - loop.time()))
        except StopAsyncIteration:
            break
        except TimeoutError:
            return error(408, f"the upload did not arrive within upload_timeout_s={timeout_s:g} s")
        size += len(chunk)
        if size > limit:
            return error(413, f"upload is over {limit:,} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def read_form(request: Request, body: bytes) -> bytes | Response:
    """The ``file`` field of a multipart body (already read, within the size limit)."""
    from starlette.datastructures import UploadFile
    from starlette.formparsers import MultiPartParser

    async def stream():
        yield body

    try:
        form = await MultiPartParser(request.headers, stream()).parse()
    except Exception as err:
        return error(400, f"malformed multipart body: {err}")
    field = form.get("file")
    if field is None:
        return error(400, "multipart upload without a 'file' field")
    if isinstance(field, UploadFile):
        return await field.read()
    return str(field).encode()


def decode_upload(data: bytes, limits) -> np.ndarray | Response:
    """Upload bytes -> 16 kHz mono samples with the pipeline's decoder and its guard (the
    header is checked before any decoding), or a 4xx answer. Runs in a worker thread."""
    from raymer.audio.decode import AudioError, AudioTooLarge, decode_audio

    try:
        audio = decode_audio(data, limits)
    except AudioTooLarge as err:
        return error(413, f"cannot use this audio: {err}")
    except AudioError as err:
        return error(422, f"cannot use this audio: {err}")
    except Exception as err:
        return error(422, f"cannot decode this audio: {type(err).__name__}: {err}")
    return audio  # a clip too short to hold speech is no_speech, as everywhere (SpeechConfig)


def resolve_token(cfg: ServeConfig) -> str | None:
    """The bearer token: ``auth_token``, the file ``auth_token_file`` names, or
    ``$RAYMER_API_TOKEN``; None: the API is open."""
    if cfg.auth_token:
        return cfg.auth_token
    if cfg.auth_token_file:
        from raymer import storage

        try:
            token = storage.read_bytes(cfg.auth_token_file).decode().strip()
        except FileNotFoundError:
            raise FileNotFoundError(
                f"auth_token_file {cfg.auth_token_file} does not exist: mount the token there, "
                "or set allow_anonymous: true to serve without one"
            ) from None
        if not token:
            raise UsageError(f"auth_token_file {cfg.auth_token_file} is empty")
        return token
    return os.environ.get(API_TOKEN_ENV) or None


SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
SAME_SITE_FETCHES = ("same-origin", "none")  # Sec-Fetch-Site of the page itself, or a typed URL


def anonymous_refusal(request: Request, settings: dict) -> Response | None:
    """Without a token, what a web page the user visits could do to a service on their
    machine is refused, and nothing else: a ``Host`` not in ``allowed_hosts`` (a
    DNS-rebinding page reading the answers) gets 421; a POST that a browser sends for
    another site's page gets 403. A browser says so itself: it sends ``Origin`` with every
    POST (a form's too) and ``Sec-Fetch-Site``; an origin other than this service's and not
    in ``cors_origins``, or a cross-site fetch without one, is refused. A script (``curl``,
    ``requests``, the client) sends neither, and is answered as with a token, whatever its
    content type (a multipart upload included)."""
    host = request.headers.get("host", "")
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    allowed = settings["hosts"]
    if "*" not in allowed and name.lower() not in allowed:
        return error(421, f"this service does not answer for host {host!r} (allowed_hosts)")
    if request.method in SAFE_METHODS:
        return None
    origin = request.headers.get("origin")
    cors = "*" in settings["cors"] or origin in settings["cors"]
    if origin and origin not in (f"http://{host}", f"https://{host}") and not cors:
        return error(403, f"requests from {origin} are not allowed (cors_origins)")
    fetch = request.headers.get("sec-fetch-site", "").strip().lower()
    if not origin and fetch and fetch not in SAME_SITE_FETCHES:
        return error(403, f"a {fetch} request from a web page is not allowed (cors_origins)")
    return None


METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def wrong_method(app, request: Request) -> Response | None:
    """405 (with ``Allow``) for a path the API has but not with this method: answered
    before any guard, as routing would. Asks the app's own routes whether the path would be
    served with each method (their ``matches``: included routers and prefixes alike)."""
    from starlette.routing import Match

    def served(method: str) -> bool:
        scope = {**request.scope, "method": method}
        return any(r.matches(scope)[0] is Match.FULL for r in app.router.routes)

    if request.method == "OPTIONS" or served(request.method):
        return None
    allow = [m for m in METHODS if m != request.method and served(m)]
    if not allow:
        return None  # no such path: routing answers 404
    response = error(405, f"{request.method} is not a method of {request.url.path}")
    response.headers["Allow"] = ", ".join(allow)
    return response


LOOPBACK = ("127.0.0.1", "localhost", "::1")


def listening_host(cfg: ServeConfig) -> str:
    """The address Serve's HTTP proxies listen on: the running Serve's own (``serve deploy``
    takes it from the config file's ``http_options``, whatever ``host`` says), else
    ``cfg.host``."""
    try:
        import ray
        from ray.serve.context import _get_global_client

        if ray.is_initialized():
            client = _get_global_client(raise_if_no_controller_running=False)
            if client is not None and client.http_config.host:
                return client.http_config.host
    except Exception:  # no Serve yet (this process starts it with cfg.host)
        pass
    return cfg.host


def check_exposure(cfg: ServeConfig, token: str | None, host: str | None = None) -> None:
    """Refuse to open the API to the network without a token, unless asked to: ``host`` is
    the address Serve listens on (``listening_host``); either it or ``cfg.host`` off
    loopback needs a token."""
    exposed = [h for h in (cfg.host, host) if h and h not in LOOPBACK]
    if exposed and not token and not cfg.allow_anonymous:
        raise UsageError(
            f"serving on {exposed[-1]} without a token lets anyone who reaches port {cfg.port} "
            "use the API: set auth_token, auth_token_file or RAYMER_API_TOKEN, or "
            "allow_anonymous=true"
        )
