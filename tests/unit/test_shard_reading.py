"""Parquet shards with the audio inside (``raymer.pipeline.shards``), without Ray: what is a
shard, the id rule of a shard row, the bytes read a row group at a time, and what an
unreadable shard, a missing row or an empty row give."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from raymer.pipeline import shards

AUDIO = pa.struct([("bytes", pa.binary()), ("path", pa.string())])


def _shard(path, n: int, group: int = 2, **columns) -> str:
    audio = [{"bytes": f"clip-{i}".encode(), "path": None} for i in range(n)]
    table = pa.table({"audio": pa.array(audio, AUDIO), **columns})
    pq.write_table(table, path, row_group_size=group)
    return str(path)


def test_what_is_a_shard(tmp_path):
    one = _shard(tmp_path / "train-0.parquet", 3)
    _shard(tmp_path / "train-1.parquet", 2)
    assert shards.shard_files(one) == [one]
    both = [str(tmp_path / "train-0.parquet"), str(tmp_path / "train-1.parquet")]
    assert shards.shard_files(str(tmp_path)) == both
    assert shards.shard_files(str(tmp_path / "train-*.parquet")) == both
    with pytest.raises(shards.ShardError, match="no file matches"):
        shards.shard_files(str(tmp_path / "test-*.parquet"))
    paths = tmp_path / "paths"
    paths.mkdir()
    pq.write_table(pa.table({"path": ["a.wav"]}), paths / "manifest.parquet")
    (paths / "a.wav").write_bytes(b"RIFF")
    assert shards.shard_files(str(paths / "manifest.parquet")) is None  # a manifest of paths
    assert shards.shard_files(str(paths)) is None  # a folder of audio
    binary = pa.schema([("wav", pa.binary()), ("text", pa.string())])
    assert shards.audio_column(binary, "x") == ("wav", "wav")  # a plain binary column
    with pytest.raises(shards.ShardError, match=r"2 binary columns \(\['a', 'b'\]\)"):
        shards.audio_column(pa.schema([("a", pa.binary()), ("b", pa.binary())]), "x")


def test_every_command_takes_shards_as_a_file_a_folder_or_a_glob(tmp_path):
    """The check every command makes before Ray starts, and the summary's name for them."""
    from raymer.pipeline.manifest import ManifestError
    from raymer.pipeline.packed import source

    _shard(tmp_path / "train-0.parquet", 3)
    _shard(tmp_path / "train-1.parquet", 2)
    for given in ("train-0.parquet", "", "train-*.parquet"):
        assert source(str(tmp_path / given), files=True).kind == "parquet"  # recognize's
        assert source(str(tmp_path / given)).sharded  # extract's
    assert source(str(tmp_path / "train-*.parquet")).describe() == "2 Parquet shards"
    assert source(str(tmp_path / "train-0.parquet")).describe() == "1 Parquet shard"
    with pytest.raises(ManifestError, match="does not exist"):
        source(str(tmp_path / "nothing.csv"))
    # a manifest whose paths are the shards' addresses (as corpus prepare writes one): its
    # rows get their audio from the shards; a manifest of files does not
    manifest = tmp_path / "prepared.csv"
    manifest.write_text(f"id,path,label\na,{tmp_path}/train-0.parquet#row=000000001,neu\n")
    found = source(str(manifest))
    assert (found.kind, found.sharded, found.describe()) == (
        "addresses",
        True,
        "a manifest of shard addresses",
    )
    manifest.write_text("id,path,label\na,clips/a.wav,neu\n")
    assert (source(str(manifest)).kind, source(str(manifest)).sharded) == ("manifest", False)


def test_a_shard_row_s_id_is_its_id_its_key_its_audio_s_path_or_its_place(tmp_path):
    audio = pa.array(
        [{"bytes": b"x", "path": "clips/a.flac"}, {"bytes": b"y", "path": None}], AUDIO
    )
    cases = {
        "ids": ({"id": ["one", "two"]}, ["one", "two"]),
        "keys": ({"__key__": ["k1", "k2"]}, ["k1", "k2"]),
        "named": ({}, ["clips/a", "named/000001"]),
        "own": ({"path": ["cv/x.mp3", "cv/y.mp3"]}, ["clips/a", "cv/y"]),
    }
    for name, (columns, ids) in cases.items():
        path = tmp_path / f"{name}.parquet"
        pq.write_table(pa.table({"audio": audio, "text": ["a", "b"], **columns}), path)
        rows = shards.ShardRows()(pa.table({"path": [str(path)]})).to_pylist()
        assert [r["id"] for r in rows] == ids, name
        assert [shards.parse_address(r["path"]) for r in rows] == [(str(path), 0), (str(path), 1)]
        assert [r["text"] for r in rows] == ["a", "b"] and "audio" not in rows[0]
        assert all(r[shards.FETCH_ERROR] is None for r in rows)
    assert [r["source_path"] for r in rows] == ["cv/x.mp3", "cv/y.mp3"]
    broken = tmp_path / "broken.parquet"
    broken.write_bytes((tmp_path / "ids.parquet").read_bytes()[:40])  # cut short
    (row,) = shards.ShardRows()(pa.table({"path": [str(broken)]})).to_pylist()
    assert row["path"] == str(broken) and f"cannot read shard {broken}" in row["fetch_error"]


def test_the_bytes_are_read_a_row_group_at_a_time(tmp_path):
    one = _shard(tmp_path / "a.parquet", 5, group=3)
    gone = str(tmp_path / "gone.parquet")
    wanted = [shards.address(one, i) for i in (0, 3, 4, 9)] + [shards.address(gone, 0)]
    table = pa.table({"id": list("abcde"), "path": wanted})
    parts = list(shards.fetch_audio(table))
    rows = {r["id"]: r for part in parts for r in part.to_pylist()}
    assert [rows[k]["audio_bytes"] for k in "abc"] == [b"clip-0", b"clip-3", b"clip-4"]
    assert all(rows[k]["fetch_error"] is None for k in "abc")
    assert "has no row 9 (5 rows)" in rows["d"]["fetch_error"]
    assert f"cannot read shard {gone}" in rows["e"]["fetch_error"]
    assert sorted(p.num_rows for p in parts) == [1, 1, 1, 2]  # group 0, group 1 (3, 4) once


def test_the_decoder_gets_a_row_s_bytes_or_the_reason_it_has_none():
    path = shards.address("/s/a.parquet", 3)
    row = {"path": path, "audio_bytes": b"RIFF...", "fetch_error": None}
    assert shards.source_of(row) == (b"RIFF...", None) and "audio_bytes" not in row
    empty = shards.source_of({"path": path, "audio_bytes": b"", "fetch_error": None})
    assert empty[1] == f"{path}: the row holds no audio (its bytes are empty)"
    assert shards.source_of({"path": path, "fetch_error": "cannot read"})[1] == "cannot read"
    assert shards.source_of({"path": "/data/a.wav"}) == ("/data/a.wav", None)


def _tar(path, samples: dict[str, dict[str, bytes]]) -> str:
    """A WebDataset tar, written by the ``webdataset`` library."""
    import webdataset as wds

    with wds.TarWriter(str(path)) as sink:
        for key, members in samples.items():
            sink.write({"__key__": key, **members})
    return str(path)


def test_a_tar_s_samples_are_indexed_and_their_audio_read_by_range(tmp_path):
    import tarfile

    from raymer.pipeline import tars

    uri = _tar(
        tmp_path / "train-0.tar",
        {
            "a": {"flac": b"audio-a" * 10, "json": {"text": "hi", "label": "sad", "id": "A1"}},
            "b": {"wav": b"audio-b", "txt": "hello there"},
            "c": {"json": {"text": "no audio"}},
        },
    )
    assert shards.shard_files(str(tmp_path)) == [uri]
    assert tars.tar_columns(uri) == ["text", "label"]
    rows = tars.TarRows(["text", "label"])(pa.table({"path": [uri]})).to_pylist()
    assert [r["id"] for r in rows] == ["A1", "b", "c"]  # the JSON's id, else the key
    paths = [r["path"] for r in rows]  # the audio's address: member, offset and size
    with tarfile.open(uri) as tar:
        at = {m.name: (m.offset_data, m.size) for m in tar.getmembers()}
    assert paths[:2] == [tars.member_address(uri, n, *at[n]) for n in ("a.flac", "b.wav")]
    assert paths[0] == f"{uri}#member=a.flac@{at['a.flac'][0]:012d}+70"
    assert tars.parse_member(paths[1]) == (uri, *at["b.wav"])
    assert paths[2] == f"{uri}#c" and tars.parse_member(paths[2]) is None
    assert [r["text"] for r in rows] == ["hi", "hello there", "no audio"]
    assert rows[2]["fetch_error"] == f"{uri}: c has no audio (c.json)"
    table = pa.Table.from_pylist(rows[:2])
    (got,) = list(shards.fetch_audio(table))
    assert got.column("audio_bytes").to_pylist() == [b"audio-a" * 10, b"audio-b"]
    cut = tmp_path / "cut.tar"
    with tarfile.open(uri) as tar:
        third = tar.getmembers()[2].offset_data  # b's first member's data
    cut.write_bytes(Path(uri).read_bytes()[: third + 2])  # the first sample, then a break
    broken = tars.TarRows(["text"])(pa.table({"path": [str(cut)]})).to_pylist()
    assert [r["id"] for r in broken] == ["A1", str(cut)]
    assert broken[1]["fetch_error"].startswith(f"cannot read shard {cut} after 1 samples")
    with pytest.raises(shards.ShardError, match="a compressed tar cannot be read"):
        shards.shard_files(str(tmp_path / "train.tar.gz"))


def test_lhotse_manifests_are_found_by_the_supervisions_or_their_folder(tmp_path):
    from raymer.pipeline import supervisions

    sups = tmp_path / "demo_supervisions_dev.jsonl.gz"
    recs = tmp_path / "demo_recordings_dev.jsonl.gz"
    sups.write_bytes(b"")
    with pytest.raises(supervisions.SupervisionsError, match="no recordings manifest beside it"):
        supervisions.manifests(str(sups))
    recs.write_bytes(b"")
    assert supervisions.manifests(str(sups)) == (str(sups), str(recs))
    assert supervisions.manifests(str(tmp_path)) == (str(sups), str(recs))
    assert supervisions.manifests(str(tmp_path / "manifest.csv")) is None
    (tmp_path / "more_supervisions_x.jsonl").write_bytes(b"")  # two: not one recipe's pair
    assert supervisions.manifests(str(tmp_path)) is None
