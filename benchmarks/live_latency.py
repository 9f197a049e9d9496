"""Latency of live recordings over ``raymer serve``'s WebSocket at 1, 4 and 8 streams.

    python benchmarks/live_latency.py [--checkpoint runs/sample/compare] [--minutes 1]
                                      [--levels 1,4,8] [--max-replicas 2]

In one process: a recording of held-out voices with pauses (``raymer corpus recording``),
then the service on local Ray Serve, and at each level that many clients streaming it at
once, each paced as it plays (16-bit PCM, 250 ms messages, as a microphone sends it). For
every segment, the time from its end in the audio (when the client sent its last sample) to
its interim event (the first answer) and to its final one: p50 / p95 per level, and the
model replica count at the end (autoscaling). Then more streams until the interim p95
passes 3 s: the real-time streams one replica holds (``--max-replicas 1`` for that).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import platform
import tempfile
import time
from pathlib import Path

from serve_load import _pct, _port  # (this folder: the HTTP benchmark's helpers)

from raymer.config import ServeConfig
from raymer.runtime import init_ray


def one_stream(url: str, audio, chunk_ms: int = 250) -> dict[str, list[float]]:
    """Stream ``audio`` paced as it plays; the latency of each segment's interim and final
    events (seconds after its end was sent)."""
    from raymer.serving import listen

    started = time.monotonic()
    lat: dict[str, list[float]] = {"interim": [], "final": [], "first": []}

    def chunks():
        n = chunk_ms * 16
        for i in range(0, len(audio), n):
            time.sleep(max(0.0, started + i / 16_000 - time.monotonic()))
            yield audio[i : i + n]

    def seen(event: dict) -> None:
        if event.get("type") == "segment":
            sent_end = started + min(event["end"], len(audio) / 16_000)
            lat["final" if event["final"] else "interim"].append(time.monotonic() - sent_end)
            if not event["final"] and event["index"] == 0:
                lat["first"].append(lat["interim"][-1])

    listen.listen(url, chunks(), on_event=seen, timeout=600)
    return lat


def replicas(deployment: str = "Model") -> int:
    from ray import serve

    status = serve.status().applications["raymer"].deployments[deployment]
    return sum(status.replica_states.values()) if status.replica_states else 0


def level(url: str, audio, streams: int) -> dict[str, list[float]]:
    with concurrent.futures.ThreadPoolExecutor(streams) as pool:
        found = list(pool.map(lambda _: one_stream(url, audio), range(streams)))
    return {k: [x for f in found for x in f[k]] for k in ("interim", "final", "first")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", default="runs/sample/compare")
    parser.add_argument("--minutes", type=float, default=1.0)
    parser.add_argument("--levels", default="1,4,8")
    parser.add_argument("--max-replicas", type=int, default=2)
    parser.add_argument("--capacity", action="store_true", help="also: streams until p95 > 3 s")
    args = parser.parse_args()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    from raymer.audio.decode import decode_audio
    from raymer.corpora.recording import synthesize_recording
    from raymer.serving import server

    folder = Path(tempfile.mkdtemp(prefix="live-bench-"))
    audio = decode_audio(str(synthesize_recording(folder, args.minutes, seed=11, workers=1)))
    init_ray()
    cfg = ServeConfig(
        checkpoint=args.checkpoint,
        port=_port(),
        max_replicas=args.max_replicas,
        upscale_delay_s=2.0,
        resources={"asr": {"num_cpus": 0.4, "threads": 1}},
        live={"max_streams": 64, "max_streams_per_client": 64},
    )
    url = server.start(cfg)
    print(f"{platform.machine()}, {os.cpu_count()} CPUs; {len(audio) / 16_000:.0f} s recording")
    print("| streams | interim p50 | interim p95 | first segment's | final p50 | final p95 | segments "
          "| replicas |")  # fmt: skip
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    try:
        for n in [int(x) for x in args.levels.split(",")]:
            lat = level(url, audio, n)
            i, f = lat["interim"], lat["final"]
            first = max(lat["first"], default=0.0)
            print(f"| {n} | {_pct(i, .5):.2f} s | {_pct(i, .95):.2f} s | {first:.2f} s | {_pct(f, .5):.2f} s "
                  f"| {_pct(f, .95):.2f} s | {len(f)} | {replicas()} |", flush=True)  # fmt: skip
        if args.capacity:
            n = 1
            while True:
                p95 = _pct(level(url, audio, n)["interim"], 0.95)
                print(f"capacity: {n} streams, interim p95 {p95:.2f} s", flush=True)
                if p95 > 3.0:
                    print(f"real-time streams held with p95 <= 3 s: {n - 1}")
                    break
                n += 1
    finally:
        server.stop()


if __name__ == "__main__":
    main()
