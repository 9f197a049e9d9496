"""The ingress's security, without a cluster: what a deployment carries, how a token is
compared."""

from __future__ import annotations

import hashlib
import pickle

import pytest

from raymer.config import ServeConfig
from raymer.serving.app import build_app
from raymer.serving.auth import authorized, resolve_token, token_digest

TOKEN = "s3cret-token-never-shown"


def _everything(app) -> bytes:
    """What Serve and Ray's dashboard see of the application: its deployments' arguments and
    options, the model deployments behind the ingress included."""
    seen, todo = [], [app._bound_deployment]
    while todo:
        deployment = todo.pop()
        seen.append((deployment.init_args, deployment.ray_actor_options))
        for value in [*deployment.init_args, *deployment.init_kwargs.values()]:
            if hasattr(value, "_bound_deployment"):
                todo.append(value._bound_deployment)
        seen.append(repr(deployment.init_kwargs))
    return pickle.dumps(repr(seen))


def test_the_token_reaches_no_deployment_argument_or_runtime_env(tmp_path):
    app = build_app({"checkpoint": str(tmp_path), "auth_token": TOKEN})
    shown = _everything(app)
    assert TOKEN.encode() not in shown
    digest = hashlib.sha256(TOKEN.encode()).hexdigest()
    env = app._bound_deployment.ray_actor_options["runtime_env"]["env_vars"]
    assert env["RAYMER_API_TOKEN_SHA256"] == digest == token_digest(TOKEN)


def test_a_token_is_checked_by_its_digest():
    digest = token_digest(TOKEN)
    assert authorized(f"Bearer {TOKEN}", digest)
    assert authorized(f"bearer {TOKEN}", digest)  # the scheme is case-insensitive (RFC 6750)
    for header in ("", "Bearer", f"Basic {TOKEN}", f"Bearer {TOKEN[:-1]}", f"Bearer {TOKEN}x"):
        assert not authorized(header, digest), header


def test_a_network_facing_service_needs_a_token(tmp_path, monkeypatch):
    monkeypatch.delenv("RAYMER_API_TOKEN", raising=False)
    with pytest.raises(ValueError, match="0.0.0.0 without a token lets anyone"):
        build_app({"checkpoint": str(tmp_path), "host": "0.0.0.0"})
    build_app({"checkpoint": str(tmp_path), "host": "0.0.0.0", "allow_anonymous": True})
    build_app({"checkpoint": str(tmp_path)})  # loopback: open is fine
    secret = tmp_path / "token"
    with pytest.raises(FileNotFoundError, match="auth_token_file .* does not exist"):
        build_app({"checkpoint": str(tmp_path), "auth_token_file": str(secret)})
    secret.write_text(TOKEN + "\n")
    cfg = ServeConfig(checkpoint=str(tmp_path), host="0.0.0.0", auth_token_file=str(secret))
    assert resolve_token(cfg) == TOKEN
    app = build_app(cfg.model_dump(mode="json"))
    assert TOKEN.encode() not in _everything(app)


def test_the_exposure_check_reads_the_address_serve_listens_on(tmp_path):
    """`serve deploy cluster/serve_config.yaml` binds 0.0.0.0 through http_options while the
    application's own `host` stays loopback: that address decides, not the setting."""
    from raymer.serving.auth import check_exposure

    cfg = ServeConfig(checkpoint=str(tmp_path))  # host 127.0.0.1
    check_exposure(cfg, None, "127.0.0.1")
    with pytest.raises(ValueError, match="serving on 0.0.0.0 without a token"):
        check_exposure(cfg, None, "0.0.0.0")
    check_exposure(cfg, TOKEN, "0.0.0.0")
    check_exposure(cfg.model_copy(update={"allow_anonymous": True}), None, "0.0.0.0")


def test_without_a_token_pages_elsewhere_get_no_answer_and_scripts_do():
    """The checks a service without a token makes before anything else (Host allow-list,
    what a browser says of the page that sends: Origin, Sec-Fetch-Site), on requests as
    Starlette parses them. A script sends neither and is answered whatever its content
    type: `requests.post(url, files=...)` is multipart."""
    from starlette.requests import Request

    from raymer.serving.auth import anonymous_refusal

    def request(method="POST", host="127.0.0.1:8000", **headers):
        raw = [(b"host", host.encode())] + [
            (k.replace("_", "-").encode(), v.encode()) for k, v in headers.items()
        ]
        return Request({"type": "http", "method": method, "path": "/v1/recognize", "headers": raw})

    settings = {"hosts": ["localhost", "127.0.0.1", "[::1]"], "cors": ["http://app.example"]}
    ok = {"content_type": "audio/wav"}

    def status(r):
        refused = anonymous_refusal(r, settings)
        return refused.status_code if refused is not None else 200

    assert status(request(**ok)) == 200
    assert status(request(host="[::1]:8000", **ok)) == 200
    assert status(request(host="rebound.evil.test:8000", **ok)) == 421
    assert status(request("GET", host="rebound.evil.test")) == 421
    assert status(request("GET")) == 200
    for ctype in (  # scripts: no Origin, no Sec-Fetch-Site
        "multipart/form-data; boundary=x",
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/json",
        "",
    ):
        assert status(request(content_type=ctype)) == 200, ctype
    form = {"content_type": "multipart/form-data; boundary=x"}
    assert status(request(origin="http://evil.test", **form)) == 403  # another site's form
    assert status(request(origin="http://evil.test", **ok)) == 403
    assert status(request(sec_fetch_site="cross-site", **form)) == 403  # no Origin sent
    assert status(request(sec_fetch_site="same-site", **form)) == 403  # localhost:3000
    assert status(request(sec_fetch_site="same-origin", **form)) == 200
    assert status(request(origin="http://127.0.0.1:8000", **form)) == 200  # the page itself
    assert status(request(origin="http://app.example", **ok)) == 200  # a CORS origin
    assert status(request(host="rebound.evil.test", **ok)) == 421
    assert status(request(host="x", **ok)) == 421
    assert status(request(**ok, origin="null")) == 403  # a sandboxed frame, a file:// page
    assert anonymous_refusal(request(host="anything", **ok), settings | {"hosts": ["*"]}) is None


def test_a_streamed_answer_is_lines_of_progress_then_the_answer_or_an_error():
    import asyncio
    import json

    from raymer.serving.ingress import ndjson

    async def models():
        return {"asr_model": "whisper-tiny.en", "text_model": "minilm", "checkpoint": "ck"}

    async def good():
        for k in (8, 16, 20):
            yield {"done": k, "done_s": 2.0 * k, "duration_s": 40.0}
        yield {"result": {"label": "sad", "segments": []}}

    async def stalls():
        yield {"done": 8, "done_s": 16.0, "duration_s": 40.0}
        await asyncio.sleep(5)
        yield {"done": 16, "done_s": 32.0, "duration_s": 40.0}

    async def dies():
        yield {"done": 8, "done_s": 16.0, "duration_s": 40.0}
        raise RuntimeError("actor died")

    async def lines(events, timeout_s=1.0):
        return [json.loads(b) async for b in ndjson(events, timeout_s, models)]

    out = asyncio.run(lines(good()))
    assert [e.get("done") for e in out] == [8, 16, 20, None]
    assert out[-1]["result"]["label"] == "sad" and out[-1]["result"]["checkpoint"] == "ck"
    assert out[-1]["result"]["models"] == {"asr": "whisper-tiny.en", "text": "minilm"}
    stalled = asyncio.run(lines(stalls(), timeout_s=0.2))
    assert stalled[-1]["status"] == 504 and len(stalled) == 2  # and the stream ends there
    died = asyncio.run(lines(dies()))
    assert died[-1]["status"] == 503 and "RuntimeError" in died[-1]["error"]
    failed = asyncio.run(lines(_once({"error": "the model failed on this input: x"})))
    assert failed == [{"error": "the model failed on this input: x", "status": 500}]


async def _once(event):
    yield event


def test_an_upload_of_more_channels_than_parties_is_refused_from_its_header():
    """``segment.channels: split`` with two names: a three-channel upload is a 422 that
    says why before anything is decoded; a stereo one is checked with its channel count."""
    import io
    import json

    import numpy as np
    import soundfile

    from raymer.config import DecodeConfig, SegmentConfig
    from raymer.serving.ingress import decode_upload

    split = SegmentConfig(channels="split", channel_names=["agent", "customer"])
    for channels, refused in ((3, True), (2, False)):
        buf = io.BytesIO()
        soundfile.write(buf, np.zeros((16_000, channels), np.float32), 16_000, format="WAV")
        answer = decode_upload(buf.getvalue(), DecodeConfig(), split)
        if refused:
            assert answer.status_code == 422
            assert (
                "3 channels, and channels: split names 2 parties"
                in json.loads(answer.body)["error"]
            )
        else:
            assert answer.channel_count == 2 and answer.duration_s == 1.0


def test_a_client_that_stops_reading_is_closed_not_buffered_for():
    """``serving.live._Sender`` over a real socket (uvicorn; a client that opens the socket,
    then never reads: the kernel's buffers fill and TCP pushes back): the server's send
    waits at most ``send_timeout_s`` and the stream is refused with 1008, having sent no
    more than the buffers hold."""
    import base64
    import os
    import socket
    import threading
    import time

    import uvicorn
    from starlette.applications import Starlette
    from starlette.routing import WebSocketRoute

    from raymer.serving.live import Refused, _Sender

    cfg = ServeConfig(checkpoint=".", live={"send_timeout_s": 1.0})
    seen: dict = {}
    event = {"type": "segment", "text": "x" * 256_000}

    async def endpoint(ws):
        await ws.accept()
        out, sent, start = _Sender(ws, cfg), 0, time.monotonic()
        try:
            while time.monotonic() - start < 60:
                await out.send(event)
                sent += 1
        except Refused as refused:
            seen.update(code=refused.code, reason=refused.reason)
        seen.update(sent=sent, waited=time.monotonic() - start)

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = Starlette(routes=[WebSocketRoute("/s", endpoint)])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        for _ in range(100):
            if server.started:
                break
            time.sleep(0.1)
        with socket.create_connection(("127.0.0.1", port)) as client:
            key = base64.b64encode(os.urandom(16)).decode()
            client.sendall(
                f"GET /s HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n".encode()
            )
            head = b""
            while b"\r\n\r\n" not in head:
                head += client.recv(1)
            assert head.startswith(b"HTTP/1.1 101"), head
            for _ in range(300):  # and never reads again
                if "sent" in seen:
                    break
                time.sleep(0.1)
    finally:
        server.should_exit = True
        thread.join(10)
    assert seen.get("code") == 1008 and "does not read" in seen["reason"], seen
    assert seen["sent"] < 200 and seen["waited"] < 20, seen  # what the buffers hold, then shut
