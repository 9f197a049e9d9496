"""The HTTP side of ``raymer serve`` that needs no deployment: uploads read within their
limits and time, audio decoded with the pipeline's guard, the API's error shape and OpenAPI
answers. Who may call is ``raymer.serving.auth``."""

from __future__ import annotations

import asyncio
import logging

from fastapi import Request
from fastapi.responses import JSONResponse, Response

from raymer.audio.decode import AudioError, AudioTooLarge, Checked
from raymer.config import ServeConfig
from raymer.inference.exports import FORMATS, MEDIA_TYPES

logger = logging.getLogger("ray.serve")

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


AUDIO_BODY = {
    "required": True,
    "content": {
        "audio/*": {"schema": {"type": "string", "format": "binary"}},
        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "properties": {
                    "file": {"type": "string", "format": "binary"},
                    "turns": {
                        "type": "string",
                        "description": "the recording's speaker turns from a diarizer, as "
                        "RTTM (pyannote's format): segments cut inside them, each with its "
                        "speaker, and a summary per party",
                    },
                },
                "required": ["file"],
            }
        },
    },
}
# The 200 answer of /v1/recognize (OpenAPI 3.1: null is a type; "null" where no speech).
_NUMBERS = {"type": ["object", "null"], "additionalProperties": {"type": ["number", "null"]}}
_JUDGED = {
    "label": {
        "type": ["string", "null"],
        "description": "top label (null: no speech; `uncertain`: its score under the "
        "service's min_confidence, the scores still given)",
    },
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


FORMAT_PARAM = {
    "name": "format",
    "in": "query",
    "required": False,
    "schema": {"type": "string", "enum": ["json", *FORMATS], "default": "json"},
    "description": "the answer as a file: WebVTT or SRT subtitles (a cue per segment with "
    "speech), a Praat TextGrid or a CSV of the segments; or send Accept: "
    + ", ".join(MEDIA_TYPES.values()),
}
# the 200 answer of /v1/recognize in each format (the JSON one is RECOGNITION_SCHEMA's)
FILE_ANSWERS = {t: {"schema": {"type": "string"}} for t in MEDIA_TYPES.values()}


def wanted_format(request: Request) -> str | Response:
    """The answer's format: ``?format=`` (``json`` or one of ``exports.FORMATS``; another
    is 422), else the first type of the Accept header that names one of the files'
    (``exports.MEDIA_TYPES``), else JSON. With ``?stream=true`` only JSON (422)."""
    asked = request.query_params.get("format")
    if asked is None:
        by_type = {t: f for f, t in MEDIA_TYPES.items()}
        accepted = [
            p.split(";")[0].strip().lower() for p in request.headers.get("accept", "").split(",")
        ]
        asked = next((by_type[t] for t in accepted if t in by_type), "json")
    elif asked not in ("json", *FORMATS):
        return error(422, f"format={asked!r}: choose json or one of {', '.join(FORMATS)}")
    if asked != "json" and request.query_params.get("stream", "").lower() in STREAM_ON:
        return error(422, f"format={asked} answers with the whole file: not with stream=true")
    return asked


STREAM_ON = ("1", "true", "yes")


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
    """A streamed answer's lines: each event of ``events`` (``{"done", "done_s",
    "duration_s"}``, then ``{"result"}`` with the ``models`` and ``checkpoint`` beside it, or
    ``{"error"}``) as a
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


FORM_SLACK = 1024 * 1024  # a multipart body's room beyond the audio: its framing and `turns`


async def read_form(request: Request, body: bytes) -> tuple[bytes, str | None] | Response:
    """The ``file`` field of a multipart body (already read, within the size limit) and its
    ``turns`` field (RTTM text), if any."""
    from starlette.datastructures import UploadFile
    from starlette.formparsers import MultiPartParser

    async def stream():
        yield body

    try:
        form = await MultiPartParser(request.headers, stream()).parse()
    except Exception as err:
        return error(400, f"malformed multipart body: {err}")
    field, turns = form.get("file"), form.get("turns")
    if field is None:
        return error(400, "multipart upload without a 'file' field")
    if isinstance(turns, UploadFile):
        turns = (await turns.read()).decode("utf-8", "replace")
    data = await field.read() if isinstance(field, UploadFile) else str(field).encode()
    return data, turns


def with_turns(audio: Checked, text: str | None) -> Checked | Response:
    """An upload and its ``turns`` field: the turns of its one recording (RTTM), checked
    against its length, or a 422 that says what is wrong with them."""
    from dataclasses import replace

    from raymer.audio.turns import TurnsError, check_length, read_turns

    if text is None:
        return audio
    try:
        turns = read_turns(text, None, "the turns field")
        check_length(turns, audio.duration_s, "the turns field")
    except TurnsError as err:
        return error(422, f"cannot use these turns: {err}")
    return replace(audio, turns=tuple(turns))


def decode_upload(data: bytes, limits, segment) -> Checked | Response:
    """Upload bytes decoded through with the pipeline's decoder and its guard (the header is
    checked before any decoding: the limits, and the channels ``segment`` can hear), a
    ``segment.chunk_s`` at a time and let go: the bytes and their length (``Checked``),
    which the model decodes again as it judges them, or a 4xx answer. Runs in a worker
    thread."""
    try:
        return Checked.check(data, limits, segment.chunk_s, segment.check_channels)
    except AudioTooLarge as err:
        return error(413, f"cannot use this audio: {err}")
    except AudioError as err:
        return error(422, f"cannot use this audio: {err}")
    except Exception as err:
        return error(422, f"cannot decode this audio: {type(err).__name__}: {err}")
    # a clip too short to hold speech is no_speech, as everywhere (SpeechConfig)


class Uploads:
    """The uploads arriving at one ingress replica: at most ``max_uploads`` at once, and
    ``max_uploads_per_client`` from one address (one client cannot take every place); each
    read within its size limit (``decode.max_file_mb``) and ``upload_timeout_s``."""

    def __init__(self, cfg: ServeConfig) -> None:
        self.cfg = cfg
        self.arriving = 0  # bodies being received now
        self.by_client: dict[str, int] = {}  # the same, per client address

    async def read(self, request: Request) -> tuple[bytes, str | None] | Response:
        """The upload's audio bytes (the raw body, or a multipart form's ``file``) and its
        turns (a form's ``turns``: RTTM text, or None), or the 4xx/503 answer that says why
        not."""
        limit = int(self.cfg.decode.max_file_mb * 1024 * 1024)
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit + FORM_SLACK:
            return error(413, f"upload of {int(declared):,} bytes is over {limit:,} bytes")
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        multipart = ctype == "multipart/form-data"
        if not (multipart or ctype in AUDIO_TYPES or ctype.startswith("audio/") or not ctype):
            return error(
                415,
                f"unsupported content type {ctype!r}: send audio (WAV, FLAC, MP3, OGG, WebM) "
                "as the body or as the form field 'file'",
            )
        if self.arriving >= self.cfg.max_uploads:
            return error(503, f"{self.arriving} uploads are arriving already; retry shortly")
        client = request.client.host if request.client else "?"
        if self.by_client.get(client, 0) >= self.cfg.max_uploads_per_client:
            return error(
                429,
                f"{self.by_client[client]} uploads from {client} are arriving already "
                f"(max_uploads_per_client={self.cfg.max_uploads_per_client}); retry when one ends",
            )
        self.arriving += 1
        self.by_client[client] = self.by_client.get(client, 0) + 1
        try:
            body = await read_body(
                request, limit + (FORM_SLACK if multipart else 0), self.cfg.upload_timeout_s
            )
        finally:
            self.arriving -= 1
            self.by_client[client] -= 1
            if not self.by_client[client]:
                del self.by_client[client]
        if isinstance(body, Response):
            return body
        form = await read_form(request, body) if multipart else (body, None)
        if isinstance(form, Response):
            return form
        data, turns = form
        if len(data) > limit:
            return error(413, f"upload of {len(data):,} bytes is over {limit:,} bytes")
        if not data:
            return error(400, "the upload is empty (0 bytes of audio)")
        return data, turns
