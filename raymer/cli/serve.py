"""``raymer serve`` and ``raymer predict``: the model over HTTP (``raymer.serving``) and its
client."""

from __future__ import annotations

import argparse

from raymer.cli.common import fields_help
from raymer.config import ServeConfig, load_config
from raymer.errors import UsageError


def cmd_serve(args: argparse.Namespace) -> int:
    import time
    from pathlib import Path

    from raymer.serving import server
    from raymer.serving.client import recognize, table

    cfg = load_config(
        ServeConfig,
        args.config,
        args.overrides,
        checkpoint=args.checkpoint,
        port=args.port,
        host=args.host,
    )
    url = server.start(cfg)
    print(f"serving {cfg.checkpoint} at {url}/ (API docs: {url}/docs)", flush=True)
    server.on_stop_signals()  # SIGTERM (docker stop, systemd, Kubernetes), SIGINT
    stopping = None
    try:
        for path in args.predict or []:
            result = recognize(url, Path(path), cfg.auth_token)
            print(table([(Path(path).name, result)]), flush=True)
        if args.once:
            return 0
        if args.detach:
            print("detached: the application keeps running on the cluster", flush=True)
            return 0
        print("Ctrl-C (or SIGTERM) stops the service.", flush=True)
        while True:
            time.sleep(3600)
    except server.Stopped as signal_:
        stopping = signal_
        return 0
    except KeyboardInterrupt:
        return 0
    finally:
        if not args.detach:
            started = time.monotonic()
            server.stop()  # Serve drains: requests in flight are answered first
            if isinstance(stopping, server.Stopped):
                print(
                    f"raymer serve: {stopping.name}: requests in flight answered, stopped "
                    f"in {time.monotonic() - started:.1f} s",
                    flush=True,
                )


def _streamed(url: str, path, token: str | None) -> dict:
    """One file's answer, streamed: how far the service is through it (seconds of audio
    judged, of its length), by the console's rule (a bar on a terminal, else a line every
    ``RAYMER_PROGRESS_S`` seconds: nothing for a file answered sooner)."""
    from raymer.console import Progress
    from raymer.serving.client import recognize

    shown = Progress(path.name, None, "audio s")

    def step(event: dict) -> None:
        if event.get("duration_s"):
            shown.set_total(round(event["duration_s"]))
        shown.update(round(event.get("done_s") or 0.0), event.get("done_s") or 0.0)

    try:
        return recognize(url, path, token, on_progress=step)
    finally:
        shown.close()


def cmd_predict(args: argparse.Namespace) -> int:
    import json
    from functools import partial

    from raymer.serving.client import (
        ServiceError,
        audio_files,
        recognize_text,
        table,
    )

    if not args.inputs and not args.text:
        raise UsageError("nothing to send: give audio files or folders, or --text TEXT")
    files = audio_files(args.inputs)
    if args.inputs and not files:
        raise FileNotFoundError(f"no audio files in {args.inputs}")
    asks = [({"file": str(p)}, p.name, partial(_streamed, args.url, p, args.token)) for p in files]
    asks += [({}, "(text)", partial(recognize_text, args.url, t, args.token)) for t in args.text]
    answers, failed = [], 0
    for key, name, ask in asks:
        try:
            answer = key | ask()
        except ServiceError as err:
            if "cannot reach" in str(err):
                raise
            answer = key | {"error": str(err).split(": ", 1)[-1]}
            failed += 1
        answers.append((name, answer))
    if args.json:
        print(json.dumps([answer for _, answer in answers], indent=2))
    else:
        print(table(answers))
    return 1 if failed else 0


def add_serve_commands(sub) -> None:
    sv = sub.add_parser(
        "serve",
        help="serve a trained model over HTTP (Ray Serve): API, docs and a page",
        description="Deploy the model behind an HTTP API on Ray Serve (local Ray, or the "
        "cluster at RAY_ADDRESS) and print its URL: POST /v1/recognize (audio), POST "
        "/v1/recognize/text, GET /healthz, /readyz, /v1/models, the OpenAPI docs at /docs and "
        "a page at /. Runs until Ctrl-C.",
        epilog=fields_help(ServeConfig),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sv.add_argument(
        "--checkpoint",
        help="checkpoint, train output or compare output; local or s3:// "
        "(default runs/sample/compare, what `make demo` trains)",
    )
    sv.add_argument("--port", type=int, help="HTTP port (default 8000)")
    sv.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    sv.add_argument("--config", help="YAML config file (see configs/serve/)")
    sv.add_argument(
        "--predict", nargs="*", metavar="FILE", help="once ready, send these files and print"
    )
    sv.add_argument("--once", action="store_true", help="stop after --predict instead of serving")
    sv.add_argument(
        "--detach",
        action="store_true",
        help="deploy and return, leaving the application running (on a cluster: RAY_ADDRESS)",
    )
    sv.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    sv.set_defaults(func=cmd_serve)
    _add_predict(sub)


def _add_predict(sub) -> None:
    pr = sub.add_parser(
        "predict",
        help="send audio files or texts to a running service; print a table (or --json)",
        description="Client of `raymer serve`: POST each file (folders: every audio file in "
        "them) to URL/v1/recognize, and each --text to URL/v1/recognize/text (the text-only "
        "model), and print label, score, duration and transcript. A multi-label model's "
        "labels are joined by +. A file's answer is streamed: on a long recording, how far the "
        "service is (seconds judged of its length) shows as a bar on a terminal, or a line "
        "every RAYMER_PROGRESS_S seconds (30) in a log. Exits 1 when any input failed (the "
        "others are printed).",
    )
    pr.add_argument("inputs", nargs="*", metavar="FILE_OR_DIR")
    pr.add_argument(
        "--text",
        action="append",
        default=[],
        metavar="TEXT",
        help="a text for the text-only model (repeatable)",
    )
    pr.add_argument("--url", default="http://127.0.0.1:8000", help="service URL")
    pr.add_argument("--token", help="bearer token (default: $RAYMER_API_TOKEN)")
    pr.add_argument("--json", action="store_true", help="print the JSON answers")
    pr.set_defaults(func=cmd_predict)
    ls = sub.add_parser(
        "listen",
        help="stream a file or the microphone to a running service; print emotions live",
        description="Client of `raymer serve`'s live endpoint (WebSocket /v1/stream): send a "
        "file, paced as it plays (--no-pace: as fast as the service takes it), or the default "
        "microphone (--mic; needs the sounddevice package: pip install 'raymer[mic]'), and print each segment as it is "
        "judged: first its interim answer (~), as soon as its pause is heard, then its final "
        "one (the answer the file gets from /v1/recognize), and at the end the recording's. "
        "Exits 1 when the service closes the stream before its answer (code and reason said).",
    )
    ls.add_argument("file", nargs="?", help="an audio file (any format the decoder reads)")
    ls.add_argument("--mic", action="store_true", help="the default microphone (Ctrl-C ends)")
    ls.add_argument("--seconds", type=float, help="with --mic: stop after this long")
    ls.add_argument("--url", default="http://127.0.0.1:8000", help="service URL")
    ls.add_argument("--token", help="bearer token (default: $RAYMER_API_TOKEN)")
    ls.add_argument("--chunk-ms", type=int, default=250, help="audio per message (default 250)")
    ls.add_argument("--no-pace", action="store_true", help="send a file as fast as it is read")
    ls.add_argument("--no-interim", action="store_true", help="final answers only")
    ls.add_argument("--json", action="store_true", help="print every event as a JSON line")
    ls.set_defaults(func=cmd_listen)


def cmd_listen(args: argparse.Namespace) -> int:
    import json

    from raymer.serving import listen

    if bool(args.file) == bool(args.mic):
        raise UsageError("give one audio FILE, or --mic")
    if not 20 <= args.chunk_ms <= 5000:
        raise UsageError(f"--chunk-ms {args.chunk_ms}: 20 to 5000")
    if args.mic:
        chunks = listen.microphone_chunks(args.chunk_ms, args.seconds)
    else:
        chunks = listen.file_chunks(args.file, args.chunk_ms, pace=not args.no_pace)

    def shown(event: dict) -> None:
        said = json.dumps(event) if args.json else listen.line(event)
        if said:
            print(said, flush=True)

    result = listen.listen(args.url, chunks, args.token, not args.no_interim, shown)
    if not args.json:
        shares = result.get("shares") or {}
        mix = ", ".join(f"{k} {v:.0%}" for k, v in shares.items() if v)
        print(f"recording: {result.get('label') or '-'} ({mix or 'no speech'}), "
              f"{result['duration_s']:.1f} s, {len(result.get('segments') or [1])} segment(s)")  # fmt: skip
    return 0
