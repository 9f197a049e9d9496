"""s3:// input and output against moto_server on 127.0.0.1 (real HTTP, real S3 API)."""

from __future__ import annotations

import boto3
import pyarrow.parquet as pq

from raymer import storage
from raymer.config import ExtractConfig, load_config
from raymer.pipeline.extract import extract


def test_extract_from_and_to_s3(ray_session, s3_endpoint, piper_corpus):
    s3 = boto3.client("s3", endpoint_url=s3_endpoint)
    s3.create_bucket(Bucket="corpus")
    s3.create_bucket(Bucket="features")
    root = piper_corpus.parent
    files = [p for p in root.rglob("*") if p.is_file() and (p.suffix in {".wav", ".csv"})]
    for p in files:
        if p.name == "messy.csv" or p.parent.name == "bad":
            continue
        s3.upload_file(str(p), "corpus", f"sample/{p.relative_to(root)}")
    s3.put_object(Bucket="corpus", Key="sample/joe/broken.wav", Body=b"RIFF....not audio")

    cfg = load_config(
        ExtractConfig,
        None,
        ["asr_model=whisper-tiny.en", "beam_size=1", "batch_size=4", "resources.asr.actors=1"],
        input="s3://corpus/sample/manifest.csv",
        output="s3://features/run1",
    )
    summary = extract(cfg)
    assert (summary.clips_ok, summary.clips_failed) == (12, 0)  # broken.wav is not in the manifest

    fs, path = storage.filesystem("s3://features/run1/features")
    table = pq.read_table(path, filesystem=fs)
    assert table.num_rows == 12
    assert all(p.startswith("s3://corpus/sample/joe/") for p in table.column("path").to_pylist())
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="features", Prefix="run1/")["Contents"]]
    assert "run1/config.yaml" in keys and "run1/summary.json" in keys
    assert "run1/_SUCCESS.json" in keys and "run1/_lease.json" not in keys

    # A directory URI: every audio file under the prefix, the broken one reported.
    dir_cfg = cfg.model_copy(
        update={"input": "s3://corpus/sample/joe", "output": "s3://features/run2"}
    )
    summary = extract(dir_cfg)
    assert (summary.clips_ok, summary.clips_failed) == (12, 1)
    fs, path = storage.filesystem("s3://features/run2/errors/errors.parquet")
    errors = pq.read_table(path, filesystem=fs).to_pylist()
    assert errors[0]["id"] == "broken" and "not a readable audio file" in errors[0]["error"]


def test_one_run_at_a_time_on_s3(s3_endpoint):
    """The output lease on s3://: created by a conditional PUT (If-None-Match), so of runs
    starting at the same moment exactly one wins."""
    import pytest

    from raymer.pipeline.lease import Lease, OutputInUse

    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket="leases")
    with Lease("s3://leases/out") as held:
        assert storage.exists("s3://leases/out/_lease.json")
        with pytest.raises(OutputInUse, match=r"another run is writing s3://leases/out"):
            Lease("s3://leases/out").acquire()
        assert held.record["run_id"] in storage.read_bytes("s3://leases/out/_lease.json").decode()
    assert not storage.exists("s3://leases/out/_lease.json")

    import threading

    wins, losses = [], []
    barrier = threading.Barrier(6)

    def race(i: int) -> None:
        barrier.wait()
        try:
            storage.create_exclusive("s3://leases/race/_lease.json", str(i).encode())
            wins.append(i)
        except FileExistsError:
            losses.append(i)

    threads = [threading.Thread(target=race, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(wins) == 1 and len(losses) == 5, (wins, losses)
    assert storage.read_bytes("s3://leases/race/_lease.json") == str(wins[0]).encode()
