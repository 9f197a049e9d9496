"""Latency and throughput of ``raymer serve`` at 1, 4 and 16 concurrent clients.

    python benchmarks/serve_load.py [--checkpoint runs/sample/compare] [--clips data/sample]
                                    [--levels 1,4,16] [--per-client 6] [--max-replicas 2]
                                    [--layouts single,split]

In one process: (a) the model's own compute time for one clip (the same ``Recognizer`` the
replicas run, called directly, median over the clips), then (b) the service on local Ray
Serve over real HTTP, at each concurrency level: p50 / p95 / p99 latency, requests and audio
seconds per second, the ratio p50 / (a) (what serving adds), and the model replica count over
time (autoscaling). Each layout in ``--layouts`` is measured in turn: ``single`` (one Model
deployment runs the three stages) and ``split`` (Speech, Text and Head deployments composed
by the ingress); the replica count is the Model's, or the Speech stage's when split.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import platform
import socket
import statistics
import threading
import time
from pathlib import Path

from raymer.config import ServeConfig
from raymer.runtime import init_ray


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def compute_time(checkpoint: str, files: list[Path]) -> float:
    import soundfile

    from raymer.inference.core import Inference

    recognizer = Inference(checkpoint, threads=1)
    clips = [soundfile.read(f, dtype="float32")[0] for f in files[:12]]
    recognizer.recognize(clips[:1])  # warm-up
    times = []
    for clip in clips:
        start = time.perf_counter()
        recognizer.recognize([clip])
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def replicas(deployment: str) -> int:
    from ray import serve

    status = serve.status().applications["raymer"].deployments[deployment]
    return sum(status.replica_states.values()) if status.replica_states else 0


def load(url: str, files: list[Path], clients: int, per_client: int, deployment: str) -> dict:
    import requests
    import soundfile

    bodies = [f.read_bytes() for f in files]
    seconds = [soundfile.info(f).duration for f in files]
    latencies, codes, audio = [], [], 0.0
    lock = threading.Lock()

    def client(k: int) -> None:
        nonlocal audio
        for i in range(per_client):
            j = (k * per_client + i) % len(bodies)
            start = time.perf_counter()
            r = requests.post(
                f"{url}/v1/recognize",
                data=bodies[j],
                headers={"Content-Type": "audio/wav"},
                timeout=300,
            )
            with lock:
                latencies.append(time.perf_counter() - start)
                codes.append(r.status_code)
                audio += seconds[j] if r.status_code == 200 else 0.0

    counts, stop = [], threading.Event()

    def watch() -> None:
        while not stop.is_set():
            counts.append((time.perf_counter(), replicas(deployment)))
            time.sleep(0.5)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        list(pool.map(client, range(clients)))
    wall = time.perf_counter() - start
    stop.set()
    watcher.join()
    ok = [lat for lat, c in zip(latencies, codes, strict=True) if c == 200]
    return {
        "n": len(codes),
        "errors": sum(c != 200 for c in codes),
        "p50": _pct(ok, 0.50),
        "p95": _pct(ok, 0.95),
        "p99": _pct(ok, 0.99),
        "rps": len(ok) / wall,
        "audio_s_per_s": audio / wall,
        "replicas": [c for _, c in counts],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="runs/sample/compare")
    parser.add_argument("--clips", default="data/sample", help="folder of WAV clips")
    parser.add_argument("--levels", default="1,4,16")
    parser.add_argument("--per-client", type=int, default=6)
    parser.add_argument("--max-replicas", type=int, default=2)
    parser.add_argument("--layouts", default="single,split", help="serving layouts to measure")
    args = parser.parse_args()
    files = sorted(Path(args.clips).rglob("*.wav"))[:64]
    if not files:
        parser.error(f"no WAV files under {args.clips}: run `make demo` first")

    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs")
    compute = compute_time(args.checkpoint, files)
    print(f"(a) model compute, one clip, in-process: {compute * 1000:.0f} ms (median)")
    init_ray(include_dashboard=False)
    for layout in args.layouts.split(","):
        serve_layout(layout, args, files, compute)


def serve_layout(layout: str, args, files: list[Path], compute: float) -> None:
    from raymer.serving import server

    cfg = ServeConfig(
        checkpoint=args.checkpoint,
        port=_port(),
        layout=layout,
        min_replicas=1,
        max_replicas=args.max_replicas,
        target_ongoing_requests=2,
        upscale_delay_s=2,
        downscale_delay_s=30,
        max_queued_requests=512,
        resources={"asr": {"threads": 1}, "model": {"threads": 1}},
    )
    url = server.start(cfg)
    deployment = "Model" if layout == "single" else "Speech"
    load(url, files[:2], 1, 2, deployment)  # warm-up
    print(f"\nlayout: {layout}")
    print(
        "| clients | requests | p50 ms | p95 ms | p99 ms | req/s | audio s/s | p50 / (a) | "
        "replicas over time |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for clients in (int(c) for c in args.levels.split(",")):
        r = load(url, files, clients, args.per_client, deployment)
        trace = "→".join(
            str(c) for i, c in enumerate(r["replicas"]) if i == 0 or c != r["replicas"][i - 1]
        )
        print(
            f"| {clients} | {r['n']} ({r['errors']} failed) | {r['p50'] * 1000:.0f} | "
            f"{r['p95'] * 1000:.0f} | {r['p99'] * 1000:.0f} | {r['rps']:.2f} | "
            f"{r['audio_s_per_s']:.1f} | {r['p50'] / compute:.2f} | {trace} |",
            flush=True,
        )
    server.stop()


if __name__ == "__main__":
    main()
