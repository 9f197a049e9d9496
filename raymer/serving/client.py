"""``raymer predict``: send audio files to a running service and print what it says."""

from __future__ import annotations

import json
import mimetypes
import os
import urllib.error
import urllib.request
from pathlib import Path

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


class ServiceError(RuntimeError):
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


def recognize(url: str, path: Path, token: str | None = None, timeout: float = 120) -> dict:
    """POST one file to URL/v1/recognize; the JSON answer, or ServiceError."""
    ctype = CONTENT_TYPES.get(path.suffix.lower()) or (
        mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    )
    headers = {"Content-Type": ctype}
    token = token or os.environ.get("RAYMER_API_TOKEN")
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(
        f"{url.rstrip('/')}/v1/recognize", data=path.read_bytes(), headers=headers, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as err:
        try:
            message = json.loads(err.read()).get("error", err.reason)
        except Exception:
            message = err.reason
        raise ServiceError(f"{path}: HTTP {err.code}: {message}") from None
    except urllib.error.URLError as err:
        raise ServiceError(f"cannot reach {url}: {err.reason}") from None


def table(rows: list[tuple[Path, dict]]) -> str:
    """A plain-text table: file, label, its score, duration, transcript."""
    lines = [f"{'file':<28} {'label':<9} {'score':>6} {'dur s':>6}  transcript"]
    for path, r in rows:
        if "error" in r:
            lines.append(f"{path.name[:28]:<28} error: {r['error']}")
            continue
        score = r["emotions"][r["label"]]
        lines.append(
            f"{path.name[:28]:<28} {r['label']:<9} {score:>6.3f} {r['duration_s']:>6.1f}  "
            f"{r['transcript']}"
        )
    return "\n".join(lines)
