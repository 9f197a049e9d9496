"""Files against shards: the same short clips as one file each, as Parquet shards with the
audio inside (the ``datasets`` layout) and as WebDataset tars, on local disk and on moto's
S3 (127.0.0.1), through ``raymer corpus inspect`` and through extract's read and decode stages.

    python benchmarks/shard_throughput.py [--clips 20000] [--shards 20] [--s3]

The clips: the first second of each clip of the sample corpus (``data/sample``, made by
``make demo``), copied round until there are N (16 kHz mono WAV, 32 KB each). Each way is
timed in this process on one Ray (started before the clocks): ``inspect_corpus`` whole, and
the stages extract runs before its models (``extract_dataset`` -> ``_todo``: one row per
id, in shard order for shards -> the shards' ``fetched`` -> ``decode_batch``), counted at
their end. Prints clips per
second and each way's ratio to the files' on the same storage.
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import platform
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import soundfile
from s3_local import moto_server  # benchmarks/s3_local.py

ROOT = Path(__file__).resolve().parents[1]
RATE = 16_000
AUDIO = pa.struct([("bytes", pa.binary()), ("path", pa.string())])


def clips(n: int) -> list[tuple[str, bytes, str]]:
    """(id, WAV bytes, label) of N one-second clips, copies of the sample corpus's."""
    rows = list(csv.DictReader((ROOT / "data" / "sample" / "manifest.csv").open()))
    base = []
    for r in rows:
        audio, rate = soundfile.read(ROOT / "data" / "sample" / r["path"], dtype="float32")
        buf = io.BytesIO()
        soundfile.write(buf, audio[:rate], rate, format="WAV", subtype="PCM_16")
        base.append((buf.getvalue(), r["label"]))
    return [(f"c{i:07d}", *base[i % len(base)]) for i in range(n)]


def write_files(made, root: Path) -> Path:
    root.mkdir(parents=True)
    with open(root / "manifest.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "id", "label"])
        for k, (rid, data, label) in enumerate(made):
            folder = root / f"{k // 1000:03d}"
            folder.mkdir(exist_ok=True)
            (folder / f"{rid}.wav").write_bytes(data)
            writer.writerow([f"{folder.name}/{rid}.wav", rid, label])
    return root / "manifest.csv"


def write_parquet(made, root: Path, shards: int) -> Path:
    root.mkdir(parents=True)
    size = -(-len(made) // shards)
    for k in range(shards):
        part = made[k * size : (k + 1) * size]
        table = pa.table(
            {
                "audio": pa.array([{"bytes": d, "path": f"{i}.wav"} for i, d, _ in part], AUDIO),
                "id": [i for i, _, _ in part],
                "label": [lab for _, _, lab in part],
            }
        )
        pq.write_table(table, root / f"train-{k:05d}.parquet", row_group_size=100)
    return root


def write_tars(made, root: Path, shards: int) -> Path:
    import webdataset as wds

    root.mkdir(parents=True)
    size = -(-len(made) // shards)
    for k in range(shards):
        with wds.TarWriter(str(root / f"train-{k:05d}.tar")) as sink:
            for rid, data, label in made[k * size : (k + 1) * size]:
                sink.write({"__key__": rid, "wav": data, "json": {"label": label}})
    return root


def decoded(uri: str, scratch: str) -> int:
    """Clips through extract's stages before its models: read, order, fetch, decode."""
    from raymer.config import ExtractConfig
    from raymer.pipeline.extract import _todo
    from raymer.pipeline.faults import new_ledger
    from raymer.pipeline.inputs import extract_dataset
    from raymer.pipeline.shards import fetched
    from raymer.pipeline.stages import decode_batch
    from raymer.runtime import shuffle_by_sort

    cfg = ExtractConfig()
    ds, _, _, sharded = extract_dataset(uri, f"{scratch}/inputs", "audio")
    with shuffle_by_sort():  # extract's own: one row per id, in shard order for shards
        ds = _todo(cfg, ds, f"{scratch}/features", f"{scratch}/errors", new_ledger(), sharded)
    if sharded:
        ds = fetched(ds, cfg.resources.decode_num_cpus)
    ds = ds.map_batches(
        decode_batch,
        fn_kwargs={"limits": cfg.decode},
        batch_size=cfg.batch_size,
        num_cpus=cfg.resources.decode_num_cpus,
        batch_format="numpy",
    )
    return ds.select_columns(["id", "duration_s"]).count()


def timed(fn, *args) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - start, out


def s3_upload(local: Path, bucket: str, endpoint: str) -> str:
    import boto3

    s3 = boto3.client("s3", endpoint_url=endpoint)
    s3.create_bucket(Bucket=bucket)
    for path in sorted(local.rglob("*")):
        if path.is_file():
            s3.upload_file(str(path), bucket, str(path.relative_to(local)))
    return f"s3://{bucket}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=20_000)
    parser.add_argument("--shards", type=int, default=20)
    parser.add_argument("--s3", action="store_true", help="also on moto_server's S3")
    parser.add_argument(
        "--ways", default="files,parquet,tars", help="which inputs (files first: the base)"
    )
    args = parser.parse_args()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    proc, endpoint = moto_server(5924) if args.s3 else (None, "")
    tmp = Path(tempfile.mkdtemp(prefix="shard-bench-"))
    made = clips(args.clips)
    writers = {
        "files": lambda: str(write_files(made, tmp / "files")),
        "parquet": lambda: str(write_parquet(made, tmp / "parquet", args.shards)),
        "tars": lambda: str(write_tars(made, tmp / "tars", args.shards)),
    }
    inputs = {way: writers[way]() for way in args.ways.split(",")}
    places = {"local": inputs}
    if proc is not None:
        bucket = {"files": "files", "parquet": "parquet", "tars": "tars"}
        places["s3 (moto)"] = {
            k: s3_upload(Path(v).parent if k == "files" else Path(v), bucket[k], endpoint)
            + ("/manifest.csv" if k == "files" else "/")
            for k, v in inputs.items()
        }
    from raymer.pipeline.inspect import inspect_corpus
    from raymer.runtime import init_ray

    init_ray()
    print(f"{args.clips:,} one-second clips, {args.shards} shards; {platform.machine()}, "
          f"{os.cpu_count()} CPUs")  # fmt: skip
    print("| storage | input | inspect clips/s | vs files | read + decode clips/s | vs files |")
    print("| --- | --- | --- | --- | --- | --- |")
    try:
        for place, ways in places.items():
            base = None
            for way, uri in ways.items():
                t_inspect, survey = timed(inspect_corpus, uri)
                t_decode, n = timed(decoded, uri, str(tmp / f"scratch-{way}"))
                assert survey.readable == n == args.clips, (survey.readable, n)
                rates = (args.clips / t_inspect, args.clips / t_decode)
                base = base or rates
                print(
                    f"| {place} | {way} | {rates[0]:,.0f} | {rates[0] / base[0]:.2f} | "
                    f"{rates[1]:,.0f} | {rates[1] / base[1]:.2f} |"
                )
    finally:
        if proc is not None:
            proc.kill()


if __name__ == "__main__":
    main()
