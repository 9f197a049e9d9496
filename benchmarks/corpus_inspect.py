"""``raymer corpus inspect`` on a generated corpus of short clips, with odd files planted.

    python benchmarks/corpus_inspect.py [--files 100000] [--s3-files 10000] [--root DIR]

Writes N short clips (0.5-2 s, 16 kHz mono noise: four in five WAV, one in five FLAC, in
folders of 1,000) and a manifest of them (id, path, label, speaker), with odd files
planted among them, each of which extract would refuse: an empty file, a WAV cut short, a
file that is not audio, a 2 kHz WAV, a 2-hour FLAC, a 40-channel WAV, a folder named like a
clip and a missing file; and two rows that share an id. Then ``inspect_corpus`` in this
process on the manifest (Ray's start included, the files in the page cache as a second run
would find them), and with ``--s3-files``, the first M clips uploaded to moto_server on
127.0.0.1 and inspected from ``s3://``. Prints files per second, and whether each planted
file was flagged with the reason extract gives.
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import struct
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile
from s3_local import moto_server  # benchmarks/s3_local.py

RATE = 16_000
LABELS = ("angry", "happy", "neutral", "sad")


def write_corpus(root: Path, n: int, seed: int = 0) -> tuple[Path, dict[str, str]]:
    """N short clips and their manifest, and the planted files: id -> what extract says."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        folder = root / f"{i // 1000:04d}"
        if i % 1000 == 0:
            folder.mkdir(parents=True, exist_ok=True)
        ext = "flac" if i % 5 == 4 else "wav"
        audio = (0.05 * rng.standard_normal(int(RATE * rng.uniform(0.5, 2.0)))).astype(np.float32)
        soundfile.write(folder / f"c{i:07d}.{ext}", audio, RATE, subtype="PCM_16")
        rows.append((f"{folder.name}/c{i:07d}.{ext}", f"c{i:07d}", LABELS[i % 4], f"s{i % 500}"))
    planted = plant(root / "odd")
    rows += [(f"odd/{name}", name.split(".")[0], "neutral", "odd") for name in planted]
    rows.append((rows[0][0], rows[0][1], rows[0][2], rows[0][3]))  # an id twice
    manifest = root / "manifest.csv"
    with open(manifest, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "id", "label", "speaker"])
        writer.writerows(rows)
    return manifest, {name.split(".")[0]: why for name, why in planted.items()}


def plant(folder: Path) -> dict[str, str]:
    """The odd files: file name -> the words of extract's reason for it."""
    folder.mkdir(parents=True, exist_ok=True)
    noise = (0.05 * np.random.default_rng(1).standard_normal(RATE)).astype(np.float32)
    (folder / "empty.wav").write_bytes(b"")
    soundfile.write(folder / "cut.wav", noise, RATE)
    data = (folder / "cut.wav").read_bytes()
    (folder / "cut.wav").write_bytes(data[: len(data) // 2])
    (folder / "text.wav").write_bytes(b"this is not audio at all\n" * 40)
    soundfile.write(folder / "low.wav", noise[:2000], 2000)
    long = np.zeros(8000 * 600, np.int16)
    with soundfile.SoundFile(folder / "long.flac", "w", 8000, 1, format="FLAC") as f:
        for _ in range(12):  # two hours of silence: a small file, a long header
            f.write(long)
    header = b"RIFF" + struct.pack("<I", 36 + 8000) + b"WAVEfmt "
    header += struct.pack("<IHHIIHH", 16, 1, 40, RATE, RATE * 80, 80, 16) + b"data"
    (folder / "wide.wav").write_bytes(header + struct.pack("<I", 8000) + bytes(8000))
    (folder / "folder.wav").mkdir(exist_ok=True)
    return {
        "empty.wav": "empty file",
        "cut.wav": "truncated WAV file",
        "text.wav": "not a readable audio file",
        "low.wav": "min_sample_rate",
        "long.flac": "max_duration_s",
        "wide.wav": "max_channels",
        "folder.wav": "it is a directory",
        "missing.wav": "file not found",
    }


def flagged(survey, planted: dict[str, str], problems: Path) -> list[str]:
    import pyarrow.parquet as pq

    found = {r["id"]: r["error"] for r in pq.read_table(problems).to_pylist()}
    return [
        f"{rid}: {'flagged' if why in (found.get(rid) or '') else 'MISSED'} ({found.get(rid)})"
        for rid, why in planted.items()
    ]


def run(manifest: Path, out: Path):
    from raymer.pipeline.inspect import inspect_corpus

    start = time.perf_counter()
    survey = inspect_corpus(str(manifest), str(out))
    return survey, time.perf_counter() - start


def s3_copy(manifest: Path, m: int, endpoint: str) -> str:
    import boto3

    s3 = boto3.client("s3", endpoint_url=endpoint)
    s3.create_bucket(Bucket="corpus")
    lines = manifest.read_text().splitlines()
    for line in lines[1 : m + 1]:
        path = line.split(",")[0]
        s3.upload_file(str(manifest.parent / path), "corpus", f"c/{path}")
    s3.put_object(Bucket="corpus", Key="c/manifest.csv", Body="\n".join(lines[: m + 1]) + "\n")
    return "s3://corpus/c/manifest.csv"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--s3-files", type=int, default=0)
    parser.add_argument("--root", type=Path, help="where to write the corpus (a temp folder)")
    args = parser.parse_args()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    root = args.root or Path(tempfile.mkdtemp(prefix="inspect-bench-"))
    proc = None
    if args.s3_files:  # before Ray starts: its workers inherit the endpoint
        proc, endpoint = moto_server(5923)
    start = time.perf_counter()
    manifest, planted = write_corpus(root / "corpus", args.files)
    print(f"wrote {args.files:,} clips in {time.perf_counter() - start:.0f} s under {root}")
    print(f"{platform.machine()}, {os.cpu_count()} CPUs")
    survey, wall = run(manifest, root / "survey")
    from raymer.pipeline.inspect import table

    print(table(survey))
    print(f"local: {survey.clips:,} files in {wall:.1f} s = {survey.clips / wall:,.0f} files/s")
    print("\n".join(flagged(survey, planted, root / "survey" / "problems")))
    if proc is not None:
        try:
            uri = s3_copy(manifest, args.s3_files, endpoint)
            s3_survey, s3_wall = run(uri, root / "survey-s3")
            print(
                f"s3 (moto on 127.0.0.1): {s3_survey.clips:,} files in {s3_wall:.1f} s = "
                f"{s3_survey.clips / s3_wall:,.0f} files/s"
            )
        finally:
            proc.kill()


if __name__ == "__main__":
    main()
