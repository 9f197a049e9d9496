"""The portable export (``raymer export --format onnx``) against the torch path, same clips,
same machine, one run.

    python benchmarks/portable_runtime.py [--checkpoint runs/sample/compare] [--clips data/sample]
                                          [--runtime-venv /tmp/rtvenv]

(a) per-clip latency in process (``Recognizer.predict`` of one clip at a time, 1 thread, the
median over the clips after a warm-up); (b) cold start: a fresh process from its start to
its first answer; (c) memory: that process's peak resident memory once it has answered (what
a ``raymer serve`` model replica holds: the same recognizer); (d) the installed size of this
venv (torch, transformers: ``requirements.txt``) and of a runtime venv
(``requirements-runtime.txt`` then ``pip install --no-deps .``) when one is given.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = """
import json, sys, time
t0 = float(sys.argv[3])
import raymer
rec = raymer.Recognizer.from_checkpoint(sys.argv[1], threads=1)
answer = rec.predict(sys.argv[2])
first = time.time() - t0
status = open("/proc/self/status").read().split("VmHWM:")[1]  # (ru_maxrss survives exec)
peak = int(status.split()[0]) / 1024
print(json.dumps({"first_answer_s": first, "peak_mb": peak, "label": answer["label"],
                  "torch": "torch" in sys.modules}))
"""


def latency(checkpoint: str, clips: list[str]) -> tuple[float, list]:
    import raymer

    rec = raymer.Recognizer.from_checkpoint(checkpoint, threads=1)
    rec.predict(clips[0])  # warm-up
    times, answers = [], []
    for clip in clips:
        start = time.perf_counter()
        answers.append(rec.predict(clip))
        times.append(time.perf_counter() - start)
    return statistics.median(times), answers


def cold(checkpoint: str, clip: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, checkpoint, clip, str(time.time())],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return json.loads(done.stdout.strip().splitlines()[-1])


def size_mb(venv: str) -> float:
    lib = next(Path(venv).glob("lib/python3*/site-packages"))
    total = sum(p.stat().st_size for p in lib.rglob("*") if p.is_file() and not p.is_symlink())
    return total / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", default="runs/sample/compare")
    parser.add_argument("--clips", default="data/sample")
    parser.add_argument("--count", type=int, default=12)
    parser.add_argument("--runtime-venv", help="a venv of requirements-runtime.txt, to size")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from raymer.trained.export_onnx import export_onnx

    clips = sorted(str(p) for p in Path(args.clips).rglob("*.wav"))[::7][: args.count]
    folder = export_onnx(args.checkpoint, tempfile.mkdtemp(prefix="portable-"))
    print(f"{platform.machine()}, {os.cpu_count()} CPUs; {len(clips)} clips; export {folder}")
    rows = {}
    for way, checkpoint in (("torch", args.checkpoint), ("onnx", folder)):
        median, answers = latency(checkpoint, clips)
        rows[way] = {"latency_s": median, "answers": answers} | cold(checkpoint, clips[0])
    same = all(
        a["label"] == b["label"]
        and max(abs(a["emotions"][k] - b["emotions"][k]) for k in a["emotions"]) <= 1e-4
        for a, b in zip(rows["torch"]["answers"], rows["onnx"]["answers"], strict=True)
    )
    print("| runtime | per clip (median) | cold start to first answer | peak MB | torch imported |")
    print("| --- | --- | --- | --- | --- |")
    for way, r in rows.items():
        print(f"| {way} | {r['latency_s'] * 1000:.0f} ms | {r['first_answer_s']:.1f} s "
              f"| {r['peak_mb']:,.0f} | {r['torch']} |")  # fmt: skip
    t, o = rows["torch"], rows["onnx"]
    print(f"onnx / torch: latency {o['latency_s'] / t['latency_s']:.2f}x, cold start "
          f"{o['first_answer_s'] / t['first_answer_s']:.2f}x, memory {o['peak_mb'] / t['peak_mb']:.2f}x; "
          f"the same labels, scores within 1e-4: {same}")  # fmt: skip
    full = size_mb(sys.prefix)
    print(f"installed: this venv {full:,.0f} MB", end="")
    if args.runtime_venv:
        slim = size_mb(args.runtime_venv)
        print(f"; the runtime venv {slim:,.0f} MB ({slim / full:.2f}x)", end="")
    print(
        f"; the export folder {sum(p.stat().st_size for p in Path(folder).rglob('*') if p.is_file()) / 2**20:,.0f} MB"
    )


if __name__ == "__main__":
    main()
