"""Peak memory of the ``raymer recognize`` (or ``extract``, or ``corpus inspect``) driver for
a small and a large manifest.

    python benchmarks/driver_memory.py [--small 2000] [--large 200000] [--checkpoint DIR]
                                       [--command recognize|extract|inspect]

Each run is ``raymer recognize`` (``extract``: with configs/extract/tiny.yaml; ``inspect``:
``raymer corpus inspect``) in a process
of its own on a manifest of N rows naming files
that do not exist (cheap rows: each becomes an error row, through every stage of the job);
its peak resident memory is the driver process's own ``VmHWM`` (``/proc/PID/status``, read
until it exits; Ray's own processes are not counted). The rule: the driver
never holds the corpus, so the large manifest may cost at most 1.3x the small one. Prints
both peaks, the ratio and the wall times.
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RAYMER = str(Path(sys.executable).with_name("raymer"))


def manifest(rows: int, folder: Path) -> Path:
    path = folder / f"manifest-{rows}.csv"
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "id", "speaker", "text"])
        for i in range(rows):
            writer.writerow([f"missing/clip_{i:08d}.wav", f"clip_{i:08d}", f"s{i % 97}", "hello"])
    return path


def _high_water_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def command(name: str, rows: int, folder: Path, checkpoint: str, extra: list[str]) -> list[str]:
    out, listed = str(folder / f"out-{rows}"), str(manifest(rows, folder))
    if name == "inspect":
        return [RAYMER, "corpus", "inspect", listed, "--output", out, *extra]
    if name == "extract":
        config = str(ROOT / "configs" / "extract" / "tiny.yaml")
        cmd = [RAYMER, "extract", "--config", config, "--input", listed, "--output", out]
        return cmd + extra
    cmd = [RAYMER, "recognize", listed, "--checkpoint", checkpoint, "--output", out]
    return cmd + ["plots=false", "resources.asr.actors=1", "batch_size=256", *extra]


def peak_mb(
    name: str, rows: int, folder: Path, checkpoint: str, extra: list[str]
) -> tuple[float, float, str]:
    """(peak RSS MB of the driver process, wall s, its summary line)."""
    cmd = command(name, rows, folder, checkpoint, extra)
    env = os.environ | {"RAY_USAGE_STATS_ENABLED": "0", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    start = time.perf_counter()
    # Files, not pipes: Ray Data logs a lot, and a full pipe would block the driver.
    log, err = folder / f"stdout-{rows}.log", folder / f"stderr-{rows}.log"
    with (
        open(log, "w") as out_f,
        open(err, "w") as err_f,
        subprocess.Popen(cmd, stdout=out_f, stderr=err_f, env=env) as proc,
    ):
        peak = 0
        while proc.poll() is None:
            peak = max(peak, _high_water_kb(proc.pid))
            time.sleep(0.2)
    wall = time.perf_counter() - start
    stdout, stderr = log.read_text(), err.read_text()
    if proc.returncode != 0:
        sys.exit(f"{name} failed on {rows} rows:\n{stderr[-3000:]}")
    first = "corpus " if name == "inspect" else f"{name}:"
    line = next(x for x in stdout.splitlines() if x.startswith(first))
    return peak / 1024, wall, line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=2000)
    parser.add_argument("--large", type=int, default=200_000)
    parser.add_argument("--checkpoint", default=str(ROOT / "tests" / "data" / "checkpoint-0.1.0"))
    parser.add_argument(
        "--command", choices=("recognize", "extract", "inspect"), default="recognize"
    )
    parser.add_argument("overrides", nargs="*", help="key=value settings for both runs")
    args = parser.parse_args()
    print(
        f"machine: {platform.platform()}, {os.cpu_count()} CPUs; raymer {args.command}"
        + (f", checkpoint {args.checkpoint}" if args.command == "recognize" else "")
    )
    with tempfile.TemporaryDirectory() as tmp:
        small = peak_mb(args.command, args.small, Path(tmp), args.checkpoint, args.overrides)
        large = peak_mb(args.command, args.large, Path(tmp), args.checkpoint, args.overrides)
    for rows, (mb, wall, line) in ((args.small, small), (args.large, large)):
        print(f"{rows:>8} rows: driver peak {mb:7.1f} MB, {wall:6.1f} s | {line}")
    ratio = large[0] / small[0]
    print(
        f"ratio large/small: {ratio:.2f} (rule: at most 1.30) -> {'ok' if ratio <= 1.3 else 'FAIL'}"
    )


if __name__ == "__main__":
    main()
