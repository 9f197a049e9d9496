"""raymer serve over real HTTP: Ray Serve on the session's local Ray, bound to 127.0.0.1."""

from __future__ import annotations

import concurrent.futures
import contextlib
import csv
import io
import itertools
import json
import os
import signal
import socket
import threading
import time
from pathlib import Path

import hypothesis
import numpy as np
import pytest
import requests
import soundfile

from raymer.audio.decode import decode_audio
from raymer.config import ServeConfig
from raymer.wer import wer

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def compare_run(trained) -> Path:
    """The session's fusion / audio / text models (a compare output)."""
    return trained.output


@pytest.fixture(scope="module")
def service(compare_run, free_port):
    """One deployment for the module's HTTP tests (auth on, small limits, fast autoscaling);
    the drills below (bombs and slow clients, load, killed replicas) run after every
    integration test, on a deployment of their own."""
    from raymer.serving import server

    cfg = ServeConfig(
        checkpoint=str(compare_run),
        port=free_port(),
        auth_token=TOKEN,
        decode={"max_file_mb": 1.0, "max_duration_s": 20.0},
        segment={"segment_over_s": 8.0},
        min_replicas=1,
        max_replicas=2,
        target_ongoing_requests=1,
        upscale_delay_s=1.0,
        downscale_delay_s=4.0,
        max_ongoing_requests=4,
        batch_max_size=4,
        max_queued_requests=4,
        resources={"asr": {"num_cpus": 0.4, "threads": 1}},
        cors_origins=["http://example.org"],
        upload_timeout_s=4.0,
        ready_cache_s=0.5,  # the killed-replicas drill asks /readyz right after its kills
        max_uploads=80,
        max_uploads_per_client=80,  # every test client is 127.0.0.1: the global limits here
        live={"idle_timeout_s": 2.0, "max_streams": 6, "max_streams_per_client": 6},
    )
    url = server.start(cfg)
    yield url, cfg
    server.stop()  # Serve's actors free the CPUs for the training tests


def _clip(piper_corpus, n: int) -> tuple[Path, dict]:
    rows = list(csv.DictReader(piper_corpus.open()))
    return piper_corpus.parent / rows[n]["path"], rows[n]


def _post(url, data: bytes, ctype="audio/wav", headers=AUTH, timeout=120):
    return requests.post(
        f"{url}/v1/recognize",
        data=data,
        headers={"Content-Type": ctype, **headers},
        timeout=timeout,
    )


def _encode(path: Path, fmt: str) -> bytes:
    audio, rate = soundfile.read(path, dtype="float32")
    if fmt != "WEBM":
        buf = io.BytesIO()
        soundfile.write(buf, audio, rate, format=fmt)
        return buf.getvalue()
    import av
    import av.audio.resampler

    buf = io.BytesIO()
    container = av.open(buf, mode="w", format="webm")
    stream = container.add_stream("libopus", rate=48_000)
    stream.layout = "mono"
    frame = av.AudioFrame.from_ndarray(
        (audio * 32767).astype(np.int16)[None], format="s16", layout="mono"
    )
    frame.sample_rate = rate
    resampler = av.audio.resampler.AudioResampler(format="s16", layout="mono", rate=48_000)
    for f in resampler.resample(frame):
        for packet in stream.encode(f):
            container.mux(packet)
    for packet in stream.encode(None):
        container.mux(packet)
    container.close()
    return buf.getvalue()


def test_recognize_returns_the_spoken_words_and_a_score_per_label(service, piper_corpus):
    url, _ = service
    path, row = _clip(piper_corpus, 0)
    response = _post(url, path.read_bytes())
    assert response.status_code == 200, response.text
    r = response.json()
    assert wer(row["text"], r["transcript"]) < 0.35, r["transcript"]
    assert r["language"] == "en" and abs(r["duration_s"] - soundfile.info(path).duration) < 0.01
    models = requests.get(f"{url}/v1/models", headers=AUTH, timeout=30).json()
    assert list(r["emotions"]) == models["labels"] == ["angry", "happy", "neutral", "sad"]
    # calibrated at the end of training: a softmax of the logits over the model's temperature
    assert models["loss"] == "bce" and models["temperature"] > 0 and models["min_confidence"] == 0
    assert sum(r["emotions"].values()) == pytest.approx(1, abs=1e-4)
    assert r["label"] == max(r["emotions"], key=r["emotions"].get)
    assert r["models"] == {"asr": "whisper-tiny.en", "text": "minilm-l6"}
    assert r["checkpoint"] == models["checkpoint"] and "segments" not in r
    assert r["no_speech"] is False and r["speech_s"] > 0.5

    # the same clip as a multipart form field, and in the other formats
    form = requests.post(
        f"{url}/v1/recognize",
        files={"file": ("clip.wav", path.read_bytes(), "audio/wav")},
        headers=AUTH,
        timeout=120,
    ).json()
    assert form["transcript"] == r["transcript"] and form["emotions"] == r["emotions"]
    for fmt, ctype in (
        ("FLAC", "audio/flac"),
        ("OGG", "audio/ogg"),
        ("MP3", "audio/mpeg"),
        ("WEBM", "audio/webm"),
    ):
        other = _post(url, _encode(path, fmt), ctype)
        assert other.status_code == 200, (fmt, other.text)
        assert wer(row["text"], other.json()["transcript"]) < 0.35, fmt


def test_long_audio_gets_segments_with_their_own_emotions(service, piper_corpus):
    """Audio over segment.segment_over_s is cut at its pauses as `raymer recognize` cuts it: a
    segment per sentence, each with its own emotions; the clip's label is the one with the
    most speech time."""
    url, _ = service
    audio, texts = _long_clip(piper_corpus)
    r = _post(url, audio).json()
    assert r["duration_s"] > 8 and len(r["segments"]) == len(texts), r["segments"]
    assert wer(" ".join(texts), " ".join(s["text"] for s in r["segments"])) < 0.35
    assert r["transcript"] == " ".join(s["text"] for s in r["segments"] if not s["no_speech"])
    ends, seconds = [0.0], dict.fromkeys(r["emotions"], 0.0)
    for seg, text in zip(r["segments"], texts, strict=True):
        assert ends[-1] - 0.01 <= seg["start"] < seg["end"] <= r["duration_s"] + 0.01
        assert wer(text, seg["text"]) < 0.5 and not seg["no_speech"] and seg["speech_s"] > 0.5
        assert set(seg["emotions"]) == set(r["emotions"])
        assert seg["label"] == max(seg["emotions"], key=seg["emotions"].get)
        seconds[seg["label"]] += seg["end"] - seg["start"]
        ends.append(seg["end"])
    assert r["label"] == max(seconds, key=seconds.get)
    assert sum(r["shares"].values()) == pytest.approx(1.0)
    assert r["shares"][r["label"]] == max(r["shares"].values())
    # a multi-task model: each segment's dimensions, the recording's weighted by speech time
    for d in ("arousal", "valence"):
        values = [(s["dimensions"][d], s["end"] - s["start"]) for s in r["segments"]]
        assert all(-1 <= v <= 1 for v, _ in values)
        mean = sum(v * w for v, w in values) / sum(w for _, w in values)
        assert r["dimensions"][d] == pytest.approx(mean, abs=1e-3)


def test_long_audio_streamed_tells_its_progress_and_answers_the_same(service, piper_corpus):
    """?stream=true: NDJSON lines, progress after each group of segments, then the same
    answer as without it (the page reads this)."""
    url, _ = service
    audio, texts = _long_clip(piper_corpus)
    whole = _post(url, audio).json()
    response = requests.post(
        f"{url}/v1/recognize?stream=true",
        data=audio,
        headers=AUTH | {"Content-Type": "audio/wav"},
        stream=True,
        timeout=120,
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in response.iter_lines() if line]
    *progress, last = lines
    duration = len(decode_audio(audio)) / 16_000
    assert progress and all(p["duration_s"] == pytest.approx(duration, abs=0.01) for p in progress)
    assert [p["done"] for p in progress] == sorted(p["done"] for p in progress)
    assert [p["done_s"] for p in progress] == sorted(p["done_s"] for p in progress)
    assert progress[-1]["done"] == len(texts) and progress[-1]["done_s"] <= duration
    streamed = last["result"]
    assert streamed["checkpoint"] == whole["checkpoint"] and streamed["label"] == whole["label"]
    assert [s["text"] for s in streamed["segments"]] == [s["text"] for s in whole["segments"]]
    for a, b in zip(streamed["segments"], whole["segments"], strict=True):
        assert a["label"] == b["label"]
        assert max(abs(a["emotions"][k] - b["emotions"][k]) for k in a["emotions"]) < 0.02
        assert max(abs(a["dimensions"][d] - b["dimensions"][d]) for d in a["dimensions"]) < 0.02
    bad = requests.post(f"{url}/v1/recognize?stream=true", data=b"no audio here" * 10,
                        headers=AUTH | {"Content-Type": "audio/wav"}, timeout=60)  # fmt: skip
    assert bad.status_code == 422 and bad.json()["status"] == 422  # refused before streaming


def _noise_wav(seconds: float = 3.0) -> bytes:
    rng = np.random.default_rng(7)
    buf = io.BytesIO()
    noise = (0.1 * rng.standard_normal(int(seconds * 16_000))).astype(np.float32)
    soundfile.write(buf, noise, 16_000, format="WAV")
    return buf.getvalue()


def test_noise_and_silence_get_no_emotion(service):
    """No speech, no emotion: noise or silence answers no_speech, an empty transcript and
    null emotions, never a confident label."""
    url, _ = service
    silence = io.BytesIO()
    soundfile.write(silence, np.zeros(2 * 16_000, np.float32), 16_000, format="WAV")
    for body in (_noise_wav(), silence.getvalue()):
        response = _post(url, body)
        assert response.status_code == 200, response.text
        r = response.json()
        assert r["no_speech"] is True and r["label"] is None and r["emotions"] is None, r
        assert r["transcript"] == "" and r["speech_s"] >= 0 and "segments" not in r


def test_text_endpoint_uses_the_text_model(service):
    url, _ = service
    r = requests.post(
        f"{url}/v1/recognize/text", json={"text": "I am furious!"}, headers=AUTH, timeout=60
    )
    assert r.status_code == 200, r.text
    body = r.json()
    models = requests.get(f"{url}/v1/models", headers=AUTH, timeout=30).json()
    assert body["checkpoint"] == models["text_checkpoint"] != models["checkpoint"]
    assert set(body["emotions"]) == set(models["labels"]) and body["label"] in models["labels"]
    for blank in ("", "  "):  # outside the documented schema (minLength, a non-space)
        empty = requests.post(f"{url}/v1/recognize/text", json={"text": blank}, headers=AUTH)
        assert empty.status_code == 422 and empty.json()["error"] == "the text is empty"


def test_bad_uploads_get_clear_4xx_and_the_service_lives_on(service, piper_corpus):
    url, cfg = service
    path, _ = _clip(piper_corpus, 1)
    good = path.read_bytes()
    t = np.arange(16_000 * 25) / 16_000
    long_wav = io.BytesIO()
    soundfile.write(
        long_wav, (0.2 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 16_000, format="WAV"
    )
    cases = [
        (b"", "audio/wav", 400, "empty"),
        (b"definitely not audio " * 40, "audio/wav", 422, "not a readable audio file"),
        (good[: len(good) // 3], "audio/wav", 422, "truncated"),
        (b"hello", "text/plain", 415, "unsupported content type 'text/plain'"),
        (b"\0" * (2 * 1024 * 1024), "audio/wav", 413, "over"),
        (long_wav.getvalue(), "audio/wav", 413, "over decode.max_duration_s=20"),
        (good[:44], "audio/wav", 422, ""),  # a header and no samples
    ]
    for data, ctype, status, words in cases:
        response = _post(url, data, ctype)
        assert response.status_code == status, (status, response.text)
        assert words in response.json()["error"], response.json()
    assert _post(url, good).status_code == 200  # no dead replica


def _slow_client(url: str) -> socket.socket:
    """Headers and a few bytes of a 100 kB upload, then nothing (a slow-loris client)."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    sock.sendall(
        b"POST /v1/recognize HTTP/1.1\r\nHost: x\r\nContent-Type: audio/wav\r\n"
        + f"Authorization: Bearer {TOKEN}\r\nContent-Length: 100000\r\n\r\nRIFF".encode()
    )
    return sock


@pytest.mark.drill
def test_bombs_and_slow_uploads_never_stall_the_service(
    service, piper_corpus, hostile_files, sparse_wav, tmp_path
):
    """Decompression bombs are refused from their header within a second, 60 clients that
    stop sending get 408 after upload_timeout_s, and meanwhile /healthz answers within 2 s
    and a good clip is recognised."""
    url, cfg = service
    good = _clip(piper_corpus, 2)[0].read_bytes()
    bombs = [
        (hostile_files["hostile-bomb"].read_bytes(), 413, "7,200.0 s (its header says)"),
        (sparse_wav(tmp_path / "sparse.wav", mb=0.9).read_bytes(), 422, "200 Hz"),
    ] * 4
    slow = [_slow_client(url) for _ in range(60)]
    stop, latencies = threading.Event(), []

    def watch():
        while not stop.is_set():
            started = time.perf_counter()
            assert requests.get(f"{url}/healthz", timeout=10).status_code == 200
            latencies.append(time.perf_counter() - started)
            time.sleep(0.2)

    def timed(case):
        started = time.perf_counter()
        return _post(url, case[0]), time.perf_counter() - started

    try:
        with concurrent.futures.ThreadPoolExecutor(9) as pool:
            watcher = pool.submit(watch)
            answers = list(pool.map(timed, bombs))
            recognised = _post(url, good)
            stop.set()
            watcher.result()
        for (_, status, words), (response, seconds) in zip(bombs, answers, strict=True):
            assert response.status_code == status and words in response.json()["error"]
            assert seconds < 2.0, seconds
        assert recognised.status_code == 200, recognised.text
        assert latencies and max(latencies) < 2.0, latencies
        for sock in slow:  # each slow client is let go with 408, its place freed
            sock.settimeout(cfg.upload_timeout_s + 20)
            assert b" 408 " in sock.recv(4096).split(b"\r\n")[0]
    finally:
        stop.set()
        for sock in slow:
            sock.close()


def _socket(url: str, query: str = "", headers=AUTH, origin=None):
    from websockets.sync.client import connect

    ws_url = "ws" + url[4:] + "/v1/stream" + (f"?{query}" if query else "")
    return connect(ws_url, additional_headers=headers, origin=origin, open_timeout=30)


def _closed(opened, send=(), timeout: float = 30.0) -> tuple[int | None, str, list[dict]]:
    """Send each of ``send`` on an opened socket, then read until the service closes it:
    (code, reason, events)."""
    from websockets.exceptions import ConnectionClosed

    events = []
    with opened as ws:
        try:
            for message in send:
                ws.send(message)
            while True:
                events.append(json.loads(ws.recv(timeout=timeout)))
        except ConnectionClosed:
            pass
    return ws.close_code, ws.close_reason or "", events


def _healthy(url: str) -> None:
    started = time.monotonic()
    assert requests.get(f"{url}/healthz", timeout=2).status_code == 200
    assert time.monotonic() - started < 2


def test_live_streams_that_break_the_rules_are_closed_with_their_reason(service, piper_corpus):
    """The live endpoint's guards and limits: each hostile or broken stream is closed with
    its code and reason, the service answers /healthz within 2 s all along, and a good
    stream afterwards gets its answer."""
    url, cfg = service
    end = json.dumps({"type": "end"})
    cases = {  # (query, headers, origin, messages) -> (code, reason)
        "no token": ("", {}, None, [b"\0" * 640], 1008, "missing or wrong token"),
        "wrong token": ("", {}, None, [json.dumps({"type": "auth", "token": "x"})], 1008, "wrong token"),
        "another site": ("", AUTH, "http://evil.example", [], 1008, "not allowed (cors_origins)"),
        "bad format": ("format=mp3", AUTH, None, [], 1008, "format 'mp3'"),
        "not audio": ("format=encoded", AUTH, None, [b"not audio" * 200, end], 1003, "not audio"),
        "text": ("", AUTH, None, ["hello"], 1003, "text messages"),
        "too big": ("", AUTH, None, [b"\0" * (cfg.live.max_message_kb * 1024 + 2)], 1009, "bytes"),
        "idle": ("", AUTH, None, [b"\0" * 3200], 1008, "nothing sent in 2 s"),
    }  # fmt: skip
    for name, (query, headers, origin, send, code, why) in cases.items():
        got = _closed(_socket(url, query, headers, origin), send)
        assert got[0] == code and why in got[1], (name, got)
        _healthy(url)
    # the page's own origin, and one CORS allows, are let in
    quiet_s = np.zeros(16_000, "<i2").tobytes()
    allowed = _closed(_socket(url, origin="http://example.org"), [quiet_s, end])
    assert allowed[0] == 1000 and allowed[2][-1]["result"]["no_speech"] is True
    assert _closed(_socket(url), [end])[:2] == (1003, "the live recording holds no samples")
    # 20 sockets opened and left silent: max_streams held (the idle limit closes them),
    # the rest refused at once (1013); /healthz answers all the while
    sockets = [_socket(url) for _ in range(20)]
    _healthy(url)
    closed = [_closed(ws)[:2] for ws in sockets]
    assert sorted(c for c, _ in closed) == [1008] * cfg.live.max_streams + [1013] * (
        20 - cfg.live.max_streams
    )
    # a client that vanishes mid-segment: the service lets it go and answers the next one
    path, _ = _clip(piper_corpus, 0)
    speech = decode_audio(str(path))
    with contextlib.suppress(Exception), _socket(url) as gone:
        gone.send((speech[: len(speech) // 2] * 32767).astype("<i2").tobytes())
        gone.socket.close()  # no closing handshake
    _healthy(url)
    # ten minutes of a quiet line (as fast as it goes), then the speech: one answer for both
    ws = _socket(url, "interim=false")
    quiet = np.zeros(16_000 * 30, "<i2").tobytes()
    pcm = [quiet[i : i + 64_000] for i in range(0, len(quiet), 64_000)] * 20
    code, why, events = _closed(ws, [*pcm, (speech * 32767).astype("<i2").tobytes(), end], 120)
    assert code == 1000 and events[-1]["type"] == "result", (code, why)
    result = events[-1]["result"]
    assert result["duration_s"] == pytest.approx(600 + len(speech) / 16_000, abs=0.1)
    assert not result["no_speech"] and len(result["segments"]) == 1
    assert result["segments"][0]["start"] > 599.0
    _healthy(url)


def test_auth_cors_health_and_docs(service):
    url, _ = service
    assert requests.get(f"{url}/healthz", timeout=10).json() == {"status": "ok"}
    assert requests.get(f"{url}/readyz", timeout=10).status_code == 200
    denied = requests.get(f"{url}/v1/models", timeout=10)
    assert denied.status_code == 401 and "bearer token" in denied.json()["error"]
    wrong = requests.get(f"{url}/v1/models", headers={"Authorization": "Bearer x"}, timeout=10)
    assert wrong.status_code == 401
    assert requests.post(f"{url}/v1/recognize", data=b"x", timeout=10).status_code == 401
    spec = requests.get(f"{url}/openapi.json", timeout=10).json()
    assert {"/v1/recognize", "/v1/recognize/text", "/v1/models"} <= set(spec["paths"])
    audio = spec["paths"]["/v1/recognize"]["post"]  # what it takes and every answer it gives
    assert {"audio/*", "multipart/form-data"} <= set(audio["requestBody"]["content"])
    assert {"401", "408", "413", "415", "422", "500", "503", "504"} <= set(audio["responses"])
    text = spec["paths"]["/v1/recognize/text"]["post"]
    assert {"401", "404", "413", "422", "500", "503"} <= set(text["responses"])
    assert requests.get(f"{url}/docs", timeout=10).status_code == 200
    allowed = requests.get(f"{url}/healthz", headers={"Origin": "http://example.org"}, timeout=10)
    assert allowed.headers["Access-Control-Allow-Origin"] == "http://example.org"
    other = requests.get(f"{url}/healthz", headers={"Origin": "http://evil.test"}, timeout=10)
    assert "Access-Control-Allow-Origin" not in other.headers


def test_every_error_has_the_apis_shape_and_is_documented(service):
    """Errors FastAPI makes itself (a body that is not JSON, an unknown path, a wrong
    method) come in the API's {error, status} shape, like the API's own, and a documented
    status."""
    url, _ = service
    spec = requests.get(f"{url}/openapi.json", timeout=10).json()
    text_route = f"{url}/v1/recognize/text"
    headers = {**AUTH, "Content-Type": "application/json"}
    for body, status in (("{not json", 400), ('{"text": ""}', 422), ('{"txt": "hi"}', 422)):
        answer = requests.post(text_route, data=body, headers=headers, timeout=30)
        assert answer.status_code == status and answer.json()["status"] == status, answer.text
        assert answer.json()["error"] and "detail" not in answer.json()
        assert str(status) in spec["paths"]["/v1/recognize/text"]["post"]["responses"]
    missing = requests.get(f"{url}/v1/nothing", headers=AUTH, timeout=10)
    assert missing.status_code == 404 and missing.json() == {"error": "Not Found", "status": 404}
    wrong = requests.get(f"{url}/v1/recognize", headers=AUTH, timeout=10)
    assert wrong.status_code == 405 and wrong.json()["status"] == 405


def test_batched_requests_answer_like_single_ones(service, piper_corpus):
    url, _ = service
    clips = [_clip(piper_corpus, i)[0].read_bytes() for i in range(4)]
    single = [_post(url, c).json() for c in clips]
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        together = list(pool.map(lambda c: _post(url, c).json(), clips))
    for a, b in zip(single, together, strict=True):
        assert a["transcript"] == b["transcript"]
        for label in a["emotions"]:
            assert abs(a["emotions"][label] - b["emotions"][label]) < 1e-3


def _long_clip(piper_corpus) -> tuple[bytes, list[str]]:
    parts, texts = [], []
    for i in range(3):
        path, row = _clip(piper_corpus, i)
        parts.append(soundfile.read(path, dtype="float32")[0])
        parts.append(np.zeros(32_000, dtype=np.float32))  # a 2 s pause between sentences
        texts.append(row["text"])
    buf = io.BytesIO()
    soundfile.write(buf, np.concatenate(parts), 16_000, format="WAV")
    return buf.getvalue(), texts


def test_split_layout_from_s3_answers_like_the_single_one(
    service, compare_run, piper_corpus, s3_endpoint
):
    """layout: split (Speech, Text, Head deployments composed by the ingress), the model
    exported (`raymer export`) to s3:// (moto) and read from there: the same answers as the
    single Model deployment on the training run's checkpoints."""
    import boto3
    from ray import serve

    from raymer.serving.app import build_app
    from raymer.trained.checkpoint import export

    url, cfg = service
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket="served")
    # the model alone (spec, safetensors, card; its text model under text/): nothing points
    # back at the training run
    assert export(str(compare_run), "s3://served/model") == [
        "s3://served/model",
        "s3://served/model/text",
    ]
    split = cfg.model_copy(
        update={
            "layout": "split",
            "checkpoint": "s3://served/model",
            "text_checkpoint": None,
            "min_replicas": 1,
            "max_replicas": 1,
            "resources": {"asr": {"num_cpus": 0.3}, "model": {"num_cpus": 0.05}},
            # the long upload's segments and three clips reach Speech at once: room for all
            "max_queued_requests": 32,
        }
    )
    serve.run(build_app(split.model_dump(mode="json")), name="split", route_prefix="/split")
    try:
        deployments = serve.status().applications["split"].deployments
        assert {"Api", "Speech", "Text", "Head"} <= set(deployments) and "Model" not in deployments
        models = requests.get(f"{url}/split/v1/models", headers=AUTH, timeout=60).json()
        assert models["checkpoint"] == "s3://served/model"
        assert models["text_checkpoint"] == "s3://served/model/text"
        long_audio, _ = _long_clip(piper_corpus)
        bodies = [_clip(piper_corpus, i)[0].read_bytes() for i in range(3)] + [long_audio]
        with concurrent.futures.ThreadPoolExecutor(4) as pool:  # batched in each stage
            answers = list(
                pool.map(
                    lambda b: requests.post(
                        f"{url}/split/v1/recognize",
                        data=b,
                        headers={"Content-Type": "audio/wav", **AUTH},
                        timeout=180,
                    ),
                    bodies,
                )
            )
        for body, answer in zip(bodies, answers, strict=True):
            assert answer.status_code == 200, answer.text
            a, b = answer.json(), _post(url, body).json()
            assert a["transcript"] == b["transcript"] and a["label"] == b["label"]
            for label in b["emotions"]:
                assert abs(a["emotions"][label] - b["emotions"][label]) < 1e-4
            assert len(a.get("segments", [])) == len(b.get("segments", []))
            for sa, sb in zip(a.get("segments", []), b.get("segments", []), strict=True):
                assert sa["text"] == sb["text"] and sa["label"] == sb["label"]
        assert "segments" in answers[-1].json()
        streamed = requests.post(  # the stages composed step by step: the same answer
            f"{url}/split/v1/recognize?stream=true",
            data=long_audio,
            headers={"Content-Type": "audio/wav", **AUTH},
            timeout=180,
        )
        *progress, last = [json.loads(line) for line in streamed.text.splitlines() if line]
        whole = answers[-1].json()
        assert progress[-1]["done"] == len(whole["segments"])
        assert progress[-1]["done_s"] == pytest.approx(whole["duration_s"], abs=1e-2)
        assert [s["label"] for s in last["result"]["segments"]] == [
            s["label"] for s in whole["segments"]
        ]
        noise = _post(f"{url}/split", _noise_wav()).json()
        assert noise["no_speech"] is True and noise["label"] is None, noise
        text = requests.post(
            f"{url}/split/v1/recognize/text",
            json={"text": "I am furious!"},
            headers=AUTH,
            timeout=60,
        ).json()
        same = requests.post(
            f"{url}/v1/recognize/text", json={"text": "I am furious!"}, headers=AUTH, timeout=60
        ).json()
        assert text["emotions"] == same["emotions"]
        assert text["checkpoint"] == "s3://served/model/text"
        bad = requests.post(
            f"{url}/split/v1/recognize",
            data=b"RIFF\x00\x00garbage",
            headers={"Content-Type": "audio/wav", **AUTH},
            timeout=60,
        )
        assert bad.status_code == 422 and "audio" in bad.json()["error"]
    finally:
        serve.delete("split")


def test_an_open_service_answers_only_this_machine_and_one_client_cannot_take_every_upload(
    service, compare_run, piper_corpus
):
    """A service without a token (loopback): a page on another origin (its form or its
    fetch) and a rebinding host name get no answer, a script's multipart upload does (as
    `requests` sends it: no Origin); a method a route does not have is 405 before any
    guard; one client holding uploads open gets 429 past max_uploads_per_client while the
    others are served; and schemathesis, every phase and every check, finds nothing."""
    from ray import serve

    from raymer.serving.app import build_app

    url, cfg = service
    open_cfg = cfg.model_copy(
        update={
            "auth_token": None,
            "min_replicas": 1,
            "max_replicas": 1,
            "resources": {"asr": {"num_cpus": 0.1}},
            "max_uploads_per_client": 1,
            "cors_origins": [],
        }
    )
    serve.run(build_app(open_cfg.model_dump(mode="json")), name="open", route_prefix="/open")
    try:
        base = f"{url}/open"
        assert requests.get(f"{base}/readyz", timeout=30).status_code == 200
        rebound = requests.get(f"{base}/healthz", headers={"Host": "evil.test"}, timeout=10)
        assert rebound.status_code == 421 and rebound.json()["status"] == 421
        clip = _clip(piper_corpus, 1)[0]
        with open(clip, "rb") as f:  # a script's upload, as most scripts write it
            script = requests.post(f"{base}/v1/recognize", files={"file": f}, timeout=120)
        assert script.status_code == 200 and script.json()["label"], script.text
        page = {"Origin": "http://evil.test", "Sec-Fetch-Site": "cross-site"}
        form = requests.post(
            f"{base}/v1/recognize", files={"file": b"RIFF"}, headers=page, timeout=10
        )
        assert form.status_code == 403 and "evil.test" in form.json()["error"]
        fetch = requests.post(
            f"{base}/v1/recognize",
            files={"file": b"RIFF"},
            headers={"Sec-Fetch-Site": "cross-site"},
            timeout=10,
        )
        assert fetch.status_code == 403, fetch.text
        for path in ("/healthz", "/readyz", "/v1/models"):
            wrong = requests.post(f"{base}{path}", headers={"Host": "evil.test"}, timeout=10)
            assert wrong.status_code == 405 and wrong.json()["status"] == 405, path
            assert wrong.headers["Allow"].split(", ")[0] == "GET", path
            assert "POST" not in wrong.headers["Allow"], path
        _fuzz(base)
        foreign = requests.post(
            f"{base}/v1/recognize",
            data=b"RIFF",
            headers={"Content-Type": "audio/wav", "Origin": "http://evil.test"},
            timeout=10,
        )
        assert foreign.status_code == 403 and "evil.test" in foreign.json()["error"]
        host, port = url.removeprefix("http://").split(":")
        slow = socket.create_connection((host, int(port)))
        try:  # one upload held open: this client's one place
            slow.sendall(
                b"POST /open/v1/recognize HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Content-Type: audio/wav\r\nContent-Length: 100000\r\n\r\nRIFF"
            )
            time.sleep(0.5)
            second = requests.post(
                f"{base}/v1/recognize",
                data=b"RIFF" * 10,
                headers={"Content-Type": "audio/wav"},
                timeout=10,
            )
            assert second.status_code == 429, second.text
            assert "max_uploads_per_client=1" in second.json()["error"]
        finally:
            slow.close()
        time.sleep(0.5)
        after = requests.post(
            f"{base}/v1/recognize",
            data=b"RIFF" * 10,
            headers={"Content-Type": "audio/wav"},
            timeout=30,
        )
        assert after.status_code == 422  # its place is free again: read, and refused as audio
    finally:
        serve.delete("open")


def _replicas(name: str = "Model") -> int:
    from ray import serve

    status = serve.status().applications["raymer"].deployments[name]
    return sum(status.replica_states.values()) if status.replica_states else 0


@pytest.mark.drill
def test_scales_up_under_load_and_back_down(service, piper_corpus):
    url, _ = service
    clip = _clip(piper_corpus, 2)[0].read_bytes()
    assert _replicas() == 1
    codes: list[int] = []
    seen_two = False
    deadline = time.monotonic() + 120
    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        while time.monotonic() < deadline and not seen_two:
            futures = [pool.submit(_post, url, clip) for _ in range(6)]
            codes += [f.result().status_code for f in futures]
            seen_two = _replicas() >= 2
    assert seen_two, "no second replica under load within 120 s"
    assert set(codes) <= {200, 503} and 200 in codes
    deadline = time.monotonic() + 90
    while _replicas() > 1 and time.monotonic() < deadline:
        time.sleep(1)
    assert _replicas() == 1, "did not scale back down within 90 s"


def test_overload_answers_503_not_a_pile_up(service, piper_corpus):
    url, cfg = service
    clip = _clip(piper_corpus, 3)[0].read_bytes()
    with concurrent.futures.ThreadPoolExecutor(40) as pool:
        responses = list(pool.map(lambda _: _post(url, clip), range(40)))
    codes = [r.status_code for r in responses]
    assert 503 in codes and 200 in codes and set(codes) <= {200, 503}
    busy = next(r for r in responses if r.status_code == 503)
    assert "capacity" in busy.json()["error"]
    assert _post(url, clip).status_code == 200


@pytest.mark.drill
def test_killed_model_replicas_answer_json_503_and_readyz_tells(service, piper_corpus, processes):
    """Real process kills of every model replica in the middle of 8 requests: each gets a
    JSON answer (200 or 503, never a plain-text 500), /readyz says 503 while no replica is
    up, and the service comes back by itself."""
    url, _ = service
    clip, _ = _long_clip(piper_corpus)  # ~10 s in segments: seconds of work per request
    replicas = processes("ServeReplica:raymer:Model")
    assert replicas
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        pending = [pool.submit(_post, url, clip) for _ in range(8)]
        time.sleep(0.5)
        for pid in replicas:
            os.kill(pid, signal.SIGKILL)
        time.sleep(0.6)  # past ready_cache_s: /readyz checks again
        ready = requests.get(f"{url}/readyz", timeout=10)
        answers = [f.result() for f in pending]
    assert ready.status_code == 503 and "not ready" in ready.json()["error"]
    for answer in answers:
        assert answer.headers["content-type"].startswith("application/json"), answer.text
        assert answer.status_code in (200, 503), answer.text
    assert any(a.status_code == 503 and "replica" in a.json()["error"] for a in answers)
    deadline = time.monotonic() + 180
    while requests.get(f"{url}/readyz", timeout=10).status_code != 200:
        assert time.monotonic() < deadline, "no model replica came back"
        time.sleep(1)
    assert _post(url, clip).status_code == 200


def test_predict_cli_against_the_service(service, piper_corpus, tmp_path):
    import os
    import subprocess
    import sys

    url, _ = service
    path, row = _clip(piper_corpus, 0)
    raymer = str(Path(sys.executable).parent / "raymer")
    env = {**os.environ, "RAYMER_API_TOKEN": TOKEN}
    out = subprocess.run(
        [raymer, "predict", str(path), "--url", url, "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)[0]
    assert result["file"] == str(path) and wer(row["text"], result["transcript"]) < 0.35
    (tmp_path / "bad.wav").write_bytes(b"not audio at all" * 10)
    table = subprocess.run(
        [raymer, "predict", str(path), str(tmp_path / "bad.wav"), "--url", url],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert table.returncode == 1  # one file failed; the other is still printed
    assert result["label"] in table.stdout and "HTTP 422" in table.stdout
    # files and texts in one call: texts go to the text-only model of the compare run
    both = subprocess.run(
        [raymer, "predict", str(path), "--text", row["text"], "--text", "", "--url", url, "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert both.returncode == 1, both.stderr  # the empty text failed
    audio, text, empty = json.loads(both.stdout)
    assert audio["file"] == str(path) and audio["label"] == result["label"]
    assert text["text"] == row["text"] and "file" not in text
    assert set(text["emotions"]) == set(audio["emotions"]) and text["label"] in text["emotions"]
    assert text["checkpoint"] != audio["checkpoint"]  # the text model, not the fusion model
    assert empty == {"error": "HTTP 422: the text is empty"}
    # a long recording: its answer streamed, how far the service is shown on the way
    long_audio, texts = _long_clip(piper_corpus)
    (tmp_path / "call.wav").write_bytes(long_audio)
    streamed = subprocess.run(
        [raymer, "predict", str(tmp_path / "call.wav"), "--url", url, "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env | {"RAYMER_PROGRESS_S": "1"},
    )
    assert streamed.returncode == 0, streamed.stderr
    (answer,) = json.loads(streamed.stdout)
    assert len(answer["segments"]) == len(texts) and answer["label"] in answer["emotions"]
    from raymer.serving.client import recognize  # what the command shows its progress from

    events = []
    again = recognize(url, tmp_path / "call.wav", TOKEN, on_progress=events.append)
    assert [s["text"] for s in again["segments"]] == [s["text"] for s in answer["segments"]]
    seconds = len(decode_audio(long_audio)) / 16_000
    assert [e["done_s"] for e in events] == sorted(e["done_s"] for e in events)
    assert events[-1] == {"done": len(texts), "done_s": pytest.approx(seconds, abs=0.01),
                          "duration_s": pytest.approx(seconds, abs=0.01)}  # fmt: skip


def test_page_in_a_headless_browser(service, piper_corpus, tmp_path, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    url, _ = service
    path, row = _clip(piper_corpus, 0)
    driver = browser()
    try:
        driver.get(f"{url}/")
        token = driver.find_element(By.ID, "token")
        assert token.is_displayed()  # auth is on: the page asks for the token
        token.send_keys(TOKEN)
        driver.find_element(By.ID, "file").send_keys(str(path))
        WebDriverWait(driver, 120).until(
            ec.text_to_be_present_in_element((By.ID, "status"), "done")
        )
        transcript = driver.find_element(By.ID, "transcript").text
        assert wer(row["text"], transcript.strip("“”")) < 0.35, transcript
        bars = driver.find_elements(By.CSS_SELECTOR, "#bars .bar")
        assert sorted(b.get_attribute("data-label") for b in bars) == [
            "angry",
            "happy",
            "neutral",
            "sad",
        ]
        top = [b.get_attribute("data-label") for b in bars if "top" in b.get_attribute("class")]
        meta = driver.find_element(By.ID, "meta").text
        assert len(top) == 1 and meta.startswith(f"{top[0]} · ")  # one label: the top one
        # a bad file shows the service's message, not a crash
        bad = tmp_path / "not-audio.wav"
        bad.write_bytes(b"nothing to hear" * 20)
        driver.find_element(By.ID, "file").send_keys(str(bad))
        WebDriverWait(driver, 60).until(ec.text_to_be_present_in_element((By.ID, "status"), "422"))
        # a text goes to the text-only model of the compare run
        driver.find_element(By.ID, "text").send_keys(row["text"])
        driver.find_element(By.CSS_SELECTOR, "#textform button").click()
        WebDriverWait(driver, 60).until(
            ec.text_to_be_present_in_element((By.ID, "status"), "the text: done")
        )
        assert driver.find_element(By.ID, "transcript").text == f"“{row['text']}”"
        meta = driver.find_element(By.ID, "meta").text
        bars = driver.find_elements(By.CSS_SELECTOR, "#bars .bar")
        top = [b.get_attribute("data-label") for b in bars if "top" in b.get_attribute("class")]
        assert len(bars) == 4 and meta == f"{top[0]} · text-only model"
        driver.find_element(By.ID, "text").clear()
        driver.find_element(By.CSS_SELECTOR, "#textform button").click()
        WebDriverWait(driver, 60).until(
            ec.text_to_be_present_in_element((By.ID, "status"), "422: the text is empty")
        )
    finally:
        driver.quit()


def test_page_timeline_of_a_long_recording_in_a_headless_browser(
    service, piper_corpus, tmp_path, browser
):
    """A long recording on the page: progress while it is processed, then one timeline (a
    band per segment coloured by its label, its words on hover, the dimensions as lines), a
    player whose cursor follows the audio; a screenshot shows the timeline drawn."""
    from PIL import Image
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    url, _ = service
    audio, texts = _long_clip(piper_corpus)
    path = tmp_path / "call.wav"
    path.write_bytes(audio)
    driver = browser()
    try:
        driver.get(f"{url}/")
        driver.find_element(By.ID, "token").send_keys(TOKEN)
        driver.execute_script(  # every status line the page shows, in order (each is a new
            # text node: read from the mutation records, not the status's text when they run)
            "window.seen = []; new MutationObserver((records) => records.forEach((r) => "
            "r.addedNodes.forEach((n) => seen.push(n.textContent)))).observe("
            "document.getElementById('status'), {childList: true});"
        )
        driver.find_element(By.ID, "file").send_keys(str(path))
        WebDriverWait(driver, 120).until(
            ec.text_to_be_present_in_element((By.ID, "status"), "call.wav: done")
        )
        seen = driver.execute_script("return window.seen")
        n = len(texts)  # the service's answer streams its progress: segments judged so far,
        # and how far into the recording (m:ss of its length)
        assert any(s.startswith(f"Processing call.wav… {n} segments, 0:") for s in seen), seen
        assert any(" of 0:" in s for s in seen), seen
        assert driver.find_element(By.ID, "timeline").is_displayed()
        bands = driver.find_elements(By.CSS_SELECTOR, "#tl rect.segment")
        rows = driver.find_elements(By.CSS_SELECTOR, "#segments tbody tr")
        assert len(bands) == len(rows) == len(texts)
        first = bands[0].find_element(By.TAG_NAME, "title").get_attribute("textContent")
        assert wer(texts[0], first.split("“")[1].rstrip("”")) < 0.5, first
        colours = {b.get_attribute("fill") for b in bands}
        ticks = [t.text for t in driver.find_elements(By.CSS_SELECTOR, "#ticks span")]
        steps = {int(b.split()[0]) - int(a.split()[0]) for a, b in itertools.pairwise(ticks)}
        assert ticks[0] == "0 s" and 2 <= len(ticks) <= 9 and len(steps) == 1, ticks  # time on x
        for dim in ("arousal", "valence"):
            line = driver.find_element(By.CSS_SELECTOR, f"#tl polyline[data-dim={dim}]")
            assert len(line.get_attribute("points").split()) == len(texts)
        # the player has the file: the cursor goes where the audio is
        WebDriverWait(driver, 30).until(
            lambda d: d.execute_script("return document.getElementById('player').readyState") >= 1
        )
        duration = driver.execute_script("return document.getElementById('player').duration")
        driver.execute_script(
            "document.getElementById('player').currentTime = arguments[0]", duration / 2
        )
        WebDriverWait(driver, 30).until(
            lambda d: abs(float(d.find_element(By.ID, "cursor").get_attribute("x1")) - 500) < 40
        )
        shot = Image.open(io.BytesIO(driver.find_element(By.ID, "tl").screenshot_as_png))
        pixels = np.asarray(shot.convert("RGB")).reshape(-1, 3).astype(int)
        for colour in colours:  # each label's band is drawn, as a share of the picture
            rgb = np.array([int(colour[i : i + 2], 16) for i in (1, 3, 5)])
            assert (np.abs(pixels - rgb).sum(1) < 30).mean() > 0.02, colour
        line = np.array([0x1B, 0x9E, 0x77])  # the first dimension's line
        assert (np.abs(pixels - line).sum(1) < 40).sum() > 100
    finally:
        driver.quit()


def test_page_records_live_in_a_headless_browser(service, piper_corpus, tmp_path, browser):
    """Record on the page, Chromium's fake microphone playing two clips with pauses: the
    segments show while it plays (the timeline grows), and Stop shows the recording's
    answer, the segments and labels its file gets from /v1/recognize, with the recording to
    play. (The browser sends WebM/Opus: the labels of a lossy copy, compared label to label.)"""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    url, _ = service
    parts = []
    for n in range(2):
        path, _ = _clip(piper_corpus, n)
        parts += [decode_audio(str(path)), np.zeros(32_000, np.float32)]
    audio = np.concatenate([np.zeros(16_000, np.float32), *parts])
    mic = tmp_path / "microphone.wav"
    soundfile.write(mic, audio, 16_000, subtype="PCM_16")
    offline = _post(url, mic.read_bytes()).json()
    driver = browser(microphone=mic)
    try:
        driver.get(f"{url}/")
        driver.find_element(By.ID, "token").send_keys(TOKEN)
        driver.find_element(By.ID, "record").click()
        WebDriverWait(driver, 60).until(  # a segment shows while the microphone still plays
            lambda d: d.find_elements(By.CSS_SELECTOR, "#segments tbody tr")
        )
        assert "Listening" in driver.find_element(By.ID, "status").text
        time.sleep(max(0.0, len(audio) / 16_000 + 1.5 - 0.0))
        driver.find_element(By.ID, "record").click()  # Stop
        WebDriverWait(driver, 90).until(
            ec.text_to_be_present_in_element((By.ID, "status"), "the recording: done")
        )
        rows = driver.find_elements(By.CSS_SELECTOR, "#segments tbody tr")
        assert len(rows) == len(offline["segments"]) == 2
        bands = driver.find_elements(By.CSS_SELECTOR, "#timeline [data-label]")
        labels = [b.get_attribute("data-label") for b in bands]
        assert labels == [s["label"] for s in offline["segments"]], (labels, offline["segments"])
        assert driver.find_element(By.ID, "player").get_attribute("src").startswith("blob:")
    finally:
        driver.quit()


def test_the_readme_python_example_runs_inside_a_running_event_loop(
    compare_run, piper_corpus, tmp_path, capsys
):
    """The README's "Use it from Python" block, as a notebook runs it (inside a running
    event loop), on this module's trained compare output exported with `raymer export`
    (the README's paths swapped for it and for clips of the test corpus)."""
    import asyncio
    import re

    import raymer
    from raymer.trained.checkpoint import export

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("## Use it from Python", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    assert len(code.strip().splitlines()) == 5, code
    exported = tmp_path / "exported"
    export(str(compare_run), str(exported))
    clip = _clip(piper_corpus, 0)[0]
    code = code.replace("runs/sample/compare", str(exported))
    code = code.replace("data/sample/joe/joe_00000.wav", str(clip))
    assert str(exported) in code and str(clip) in code

    async def notebook_cell():
        asyncio.get_running_loop()  # what breaks asyncio.run: a loop is running
        exec(compile(code, "README.md", "exec"), {})

    asyncio.run(notebook_cell())
    printed = capsys.readouterr().out.strip().splitlines()
    assert len(printed) == 2, printed
    labels = {"angry", "happy", "neutral", "sad"}
    for line, expect in zip(printed, [None, "I can't believe you did that!"], strict=True):
        label, score, transcript = line.split(" ", 2)
        assert label in labels and 0 < float(score) <= 1
        assert transcript == expect if expect else len(transcript.split()) >= 3

    rec = raymer.Recognizer.from_checkpoint(exported, batch_size=2)
    audio = soundfile.read(clip, dtype="float32")[0]
    results = rec.predict([clip, clip.read_bytes(), audio, str(clip), _noise_array()])
    first = results[0]
    assert first["label"] in labels and first["transcript"] and first["segments"] == []
    assert set(first["emotions"]) == labels  # the service's shape: {label: score}
    assert first["label"] == max(first["emotions"], key=first["emotions"].get)
    for other in results[1:4]:  # a path, its bytes, its samples: one answer
        assert other["label"] == first["label"] and other["transcript"] == first["transcript"]
    assert results[4]["no_speech"] and results[4]["label"] is None
    assert results[4]["emotions"] is None
    with pytest.raises(raymer.AudioError, match="input 0"):
        rec.predict([b"not audio at all"])


def _noise_array():
    return (0.01 * np.random.default_rng(0).standard_normal(16_000 * 2)).astype("float32")


@pytest.mark.drill
def test_sigterm_answers_the_requests_in_flight_and_exits_0(
    compare_run, piper_corpus, free_port, tmp_path
):
    """`raymer serve` as docker stop, systemd and Kubernetes stop it: SIGTERM while a request
    is in flight. The request is answered, Serve shuts down, the process says so in one line
    and exits 0 (no stack trace, and none of Ray's own lines)."""
    import subprocess
    import sys

    port = free_port()
    raymer = str(Path(sys.executable).parent / "raymer")
    proc = subprocess.Popen(
        [raymer, "serve", "--checkpoint", str(compare_run), "--port", str(port),
         "resources.asr.num_cpus=0.5", "resources.asr.threads=1", "segment.segment_over_s=8"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 240
        while True:
            assert proc.poll() is None, proc.stderr.read()
            try:
                if requests.get(f"{url}/readyz", timeout=10).status_code == 200:
                    break
            except requests.RequestException:  # not listening yet, or not answering yet
                pass
            assert time.monotonic() < deadline, "the service did not start"
            time.sleep(1)
        clip, _ = _long_clip(piper_corpus)  # seconds of work: still in flight at the signal
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pending = pool.submit(
                requests.post,
                f"{url}/v1/recognize",
                data=clip,
                headers={"Content-Type": "audio/wav"},
                timeout=120,
            )
            time.sleep(1.0)
            proc.send_signal(signal.SIGTERM)
            answer = pending.result()
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert answer.status_code == 200 and answer.json()["segments"], answer.text
    assert proc.returncode == 0, err[-3000:]
    assert "SIGTERM: requests in flight answered, stopped" in out
    assert "Stack trace" not in err and "SIGTERM received" not in err, err[-3000:]
    # Ray's own lines stay in its log folder: its C++ log, its "(raylet)" messages (Serve's
    # controller ending itself at shutdown), its warnings
    for theirs in ("(raylet)", "core_worker.cc", "Warning"):
        assert theirs not in out + err, (out + err)[-3000:]


def test_the_api_answers_every_generated_request_as_documented(service):
    """schemathesis over the live service, from its own OpenAPI document: for every route,
    generated bodies, content types and headers, each answered with a documented status
    and content type, never a server error, and in the API's {error, status} shape whenever
    it is not a 2xx."""
    import schemathesis
    from schemathesis.checks import positive_data_acceptance as not_required_to_accept

    url, _ = service
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.path for op in operations} >= {"/v1/recognize", "/v1/recognize/text"}
    for operation in operations:

        @hypothesis.given(case=operation.as_strategy())
        @hypothesis.settings(
            max_examples=30,
            deadline=None,
            database=None,
            suppress_health_check=list(hypothesis.HealthCheck),
        )
        def answered_as_documented(case):
            # excluded: "schema-valid data is accepted": any bytes match the upload's schema
            # (binary), and only decodable audio is accepted (422 otherwise, documented)
            response = case.call_and_validate(
                base_url=url, headers=AUTH, excluded_checks=[not_required_to_accept]
            )
            if response.status_code >= 400:
                body = response.json()
                assert body["status"] == response.status_code and body["error"], body

        answered_as_documented()


def _fuzz(url: str) -> None:
    """schemathesis's own command over a service without a token, every phase (examples,
    coverage, fuzzing, stateful) and every check but one: it must find nothing. Excluded:
    "schema-valid data is accepted" (positive_data_acceptance): any bytes match the
    upload's schema (binary), and only decodable audio is accepted (422, documented)."""
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    st = Path(sys.executable).parent / "st"
    scratch = tempfile.TemporaryDirectory()  # its cache (.schemathesis/): not in the checkout
    run = subprocess.run(
        [
            str(st),
            "run",
            f"{url}/openapi.json",
            "--url",
            url,
            "--checks",
            "all",
            "--exclude-checks",
            "positive_data_acceptance",
            "--phases",
            "examples,coverage,fuzzing,stateful",
            "--max-examples",
            "25",
            "--request-timeout",
            "60",
            "--no-color",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=scratch.name,
    )
    scratch.cleanup()
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
