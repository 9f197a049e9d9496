"""``raymer listen``: stream a file (paced as it plays) or a microphone to a service's
``/v1/stream`` and hear each segment's emotion as it is judged (``raymer.serving.live``)."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterator

import numpy as np

from raymer.errors import RunError

SAMPLE_RATE = 16_000


class StreamClosed(RunError):
    """The service closed the stream before its answer (its code and reason in the text)."""


def socket_url(url: str, interim: bool = True) -> str:
    """``http(s)://host:port`` -> the stream's ``ws(s)://host:port/v1/stream?...``."""
    base = url.rstrip("/")
    base = "ws" + base[4:] if base.startswith("http") else base
    return f"{base}/v1/stream?format=pcm16&rate={SAMPLE_RATE}&interim={str(interim).lower()}"


def file_chunks(path: str, chunk_ms: int = 250, pace: bool = True) -> Iterator[np.ndarray]:
    """A file decoded by the one decoder, ``chunk_ms`` at a time; with ``pace``, each sent
    when it would have been heard (a file played as a microphone would give it)."""
    from raymer.audio.decode import open_audio

    n, started, sent = chunk_ms * SAMPLE_RATE // 1000, time.monotonic(), 0
    with open_audio(path, chunk_s=max(chunk_ms / 1000, 0.02)) as stream:
        for block in stream:
            for i in range(0, len(block), n):
                piece = block[i : i + n]
                if pace:
                    time.sleep(max(0.0, started + sent / SAMPLE_RATE - time.monotonic()))
                sent += len(piece)
                yield piece


def microphone_chunks(chunk_ms: int = 250, seconds: float | None = None) -> Iterator[np.ndarray]:
    """The default microphone, 16 kHz mono, ``chunk_ms`` at a time (until ``seconds``, or
    Ctrl-C). Needs the ``sounddevice`` package and a microphone."""
    try:
        import sounddevice
    except ImportError:
        raise RunError(
            "a microphone needs the sounddevice package: pip install 'raymer[mic]'"
        ) from None
    n, heard = chunk_ms * SAMPLE_RATE // 1000, 0
    with sounddevice.InputStream(samplerate=SAMPLE_RATE, channels=1, dtype="float32") as mic:
        while seconds is None or heard < seconds * SAMPLE_RATE:
            block, _ = mic.read(n)
            heard += len(block)
            yield block.reshape(-1)


def listen(
    url: str,
    chunks: Iterator[np.ndarray],
    token: str | None = None,
    interim: bool = True,
    on_event: Callable[[dict], None] | None = None,
    timeout: float = 120.0,
) -> dict:
    """Stream ``chunks`` (16 kHz mono float32) to the service at ``url``; every event it
    sends goes to ``on_event`` as it comes; returns the recording's answer (the last
    event's ``result``). A stream the service closes before it raises ``StreamClosed``."""
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    token = token or os.environ.get("RAYMER_API_TOKEN")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    found: dict = {}
    try:
        opened = connect(socket_url(url, interim), additional_headers=headers, open_timeout=timeout)
    except OSError as err:
        raise RunError(f"cannot reach the service at {url}: {err}") from None
    with opened as ws:
        reader = threading.Thread(target=_read, args=(ws, on_event, found), daemon=True)
        reader.start()
        try:
            for chunk in chunks:
                pcm = np.clip(np.asarray(chunk, np.float32) * 32768.0, -32768, 32767)
                ws.send(pcm.astype("<i2").tobytes())
            ws.send(json.dumps({"type": "end"}))
        except ConnectionClosed:
            pass  # the reader says why
        reader.join(timeout)
    if "result" not in found:
        code, reason = found.get("closed", (None, "no answer"))
        raise StreamClosed(f"the service closed the stream ({code}): {reason}")
    return found["result"]


def _read(ws, on_event, found: dict) -> None:
    from websockets.exceptions import ConnectionClosed

    try:
        for message in ws:
            event = json.loads(message)
            if on_event is not None:
                on_event(event)
            if event.get("type") == "result":
                found["result"] = event["result"]
    except ConnectionClosed:
        pass
    found["closed"] = (ws.close_code, ws.close_reason or "the connection was lost")


def line(event: dict) -> str | None:
    """An event as ``raymer listen`` prints it (None: not printed)."""
    if event.get("type") != "segment":
        return None
    mark = "  " if event.get("final") else "~ "
    score = (event.get("emotions") or {}).get(event.get("label") or "", None)
    said = f"{event.get('label') or '-'}" + (f" {score:.2f}" if score is not None else "")
    return f"{mark}{event['start']:7.2f}-{event['end']:7.2f}  {said:<14} {event.get('text', '')}"
