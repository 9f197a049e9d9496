"""``raymer predict``: send audio files or texts to a running service and print what it says."""

from __future__ import annotations

import json
import mimetypes
import os
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from raymer.errors import RunError
from raymer.storage import AUDIO_EXTENSIONS

CONTENT_TYPES = {
    ".wav": "audio/wav",
    ".flac": "audio/flac",
    ".mp3": "audio/mpeg",
    ".ogg": "audio/ogg",
    ".opus": "audio/ogg",
    ".webm": "audio/webm",
    ".m4a": "audio/mp4",
}


class ServiceError(RunError):
    """The service answered with an error (its status and message are in the text)."""


def audio_files(paths: list[str]) -> list[Path]:
    """Files as given, and the audio files under folders (sorted)."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out += sorted(f for f in p.rglob("*") if f.suffix.lower() in AUDIO_EXTENSIONS)
        elif p.is_file():
            out.append(p)
        else:
            raise FileNotFoundError(f"{p} does not exist")
    return out


def recognize(
    url: str, path: Path, token: str | None = None, timeout: float = 120, on_progress=None
) -> dict:
    """POST one file to URL/v1/recognize; the JSON answer, or ServiceError. With
    ``on_progress``, the answer is streamed (``?stream=true``) and each progress event
    (``{"done", "done_s", "duration_s"}``) is given to it as it comes; ``timeout`` is then
    the longest wait for the next line, not for the whole answer."""
    ctype = CONTENT_TYPES.get(path.suffix.lower()) or (
        mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    )
    body = path.read_bytes()
    if on_progress is None:
        return _post(url, "/v1/recognize", body, ctype, str(path), token, timeout)
    for event in _lines(url, "/v1/recognize?stream=true", body, ctype, str(path), token, timeout):
        if "result" in event:
            return event["result"]
        if "error" in event:
            raise ServiceError(f"{path}: HTTP {event.get('status', 500)}: {event['error']}")
        on_progress(event)
    raise ServiceError(f"{path}: the streamed answer ended without a result")


def recognize_text(url: str, text: str, token: str | None = None, timeout: float = 60) -> dict:
    """POST one text to URL/v1/recognize/text (the text-only model); the JSON answer, or
    ServiceError."""
    body = json.dumps({"text": text}).encode()
    return _post(url, "/v1/recognize/text", body, "application/json", "text", token, timeout)


def _post(
    url: str, route: str, body: bytes, ctype: str, what: str, token: str | None, timeout: float
) -> dict:
    with _opened(url, route, body, ctype, what, token, timeout) as response:
        return json.loads(response.read())


def _lines(url, route, body, ctype, what, token, timeout) -> Iterator[dict]:
    """A streamed answer's NDJSON lines, each as it arrives."""
    with _opened(url, route, body, ctype, what, token, timeout) as response:
        for line in response:
            if line.strip():
                yield json.loads(line)


@contextmanager
def _opened(url, route, body, ctype, what, token, timeout):
    headers = {"Content-Type": ctype}
    token = token or os.environ.get("RAYMER_API_TOKEN")
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(
        f"{url.rstrip('/')}{route}", data=body, headers=headers, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            yield response
    except urllib.error.HTTPError as err:
        try:
            message = json.loads(err.read()).get("error", err.reason)
        except Exception:
            message = err.reason
        raise ServiceError(f"{what}: HTTP {err.code}: {message}") from None
    except urllib.error.URLError as err:
        raise ServiceError(f"cannot reach {url}: {err.reason}") from None


def table(rows: list[tuple[str, dict]]) -> str:
    """A plain-text table: input (a file's name, or ``(text)``), label (a multi-label model's
    labels joined by ``+``; ``-`` for none), the top label's score, a model's emotion
    dimensions (arousal, valence, ...: ``-`` without speech), duration and transcript (or
    the text). Audio without speech shows ``(no speech)`` and no score."""
    shown = [(name[:28], _label(r), r) for name, r in rows]
    width = max([9] + [len(label) for _, label, _ in shown])  # an error's label is ""
    dims = list(dict.fromkeys(d for _, r in rows for d in r.get("dimensions") or {}))
    head = "".join(f" {d[:7]:>7}" for d in dims)
    lines = [f"{'input':<28} {'label':<{width}} {'score':>6}{head} {'dur s':>6}  transcript"]
    for name, label, r in shown:
        if "error" in r:
            lines.append(f"{name:<28} error: {r['error']}")
            continue
        duration = f"{r['duration_s']:>6.1f}" if r.get("duration_s") is not None else " " * 6
        score = f"{r['emotions'][r['label']]:>6.3f}" if r.get("label") else f"{'-':>6}"
        values = [(r.get("dimensions") or {}).get(d) for d in dims]
        shown_dims = "".join(f" {v:>+7.2f}" if v is not None else f" {'-':>7}" for v in values)
        lines.append(
            f"{name:<28} {label:<{width}} {score}{shown_dims} {duration}  "
            f"{r.get('transcript', r.get('text', ''))}"
        )
    return "\n".join(lines)


def _label(result: dict) -> str:
    if "error" in result:
        return ""
    if result.get("no_speech"):
        return "(no speech)"
    if "labels" in result:  # a multi-label model: every label over the threshold
        return "+".join(result["labels"]) or "-"
    return result["label"]
