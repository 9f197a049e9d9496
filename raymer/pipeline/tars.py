"""WebDataset tar shards: each sample is the members ``KEY.EXT`` sharing a key, one after the
other (``KEY.flac`` the audio, ``KEY.json`` its metadata, ``KEY.txt`` its transcript), as
the ``webdataset`` library writes them. Read as Parquet shards are (``shards``): a first
pass indexes each tar (its members' headers: where each sample's audio lies, and its small
members' content), a second gives the rows left to do their audio by byte ranges, nearby
members in one read. A sample's id: its JSON's ``id``, else its key; its ``path``, the
address of its audio: ``SHARD.tar#member=NAME@OFFSET+SIZE`` (all a reader needs, so a
manifest of addresses, as ``corpus prepare`` writes one, is read as the tars are).
Uncompressed tars only: a compressed one cannot be read by offsets.
"""

from __future__ import annotations

import json
import posixpath
import tarfile

import pyarrow as pa

from raymer import storage
from raymer.pipeline.manifest import FETCH_ERROR

MEMBER = "#member="  # a sample's audio: SHARD.tar#member=NAME@OFFSET+SIZE
AUDIO_EXTS = tuple(e.lstrip(".") for e in storage.AUDIO_EXTENSIONS)
RANGE_BYTES = 64 * 1024 * 1024  # one read covers members this close together, at most
PEEK_SAMPLES = 8  # samples read from the first shard to learn its metadata's fields
STREAM_BUFFER = 8 * 1024 * 1024  # a remote tar is streamed this many bytes a request


def is_tar(uri: str) -> bool:
    return uri.lower().endswith(".tar")


def member_address(shard: str, name: str, offset: int, size: int) -> str:
    return f"{shard}{MEMBER}{name}@{offset:012d}+{size}"


def parse_member(path: str) -> tuple[str, int, int] | None:
    """(shard, offset, size) of a tar member's address; None for anything else."""
    shard, sep, rest = path.rpartition(MEMBER)
    where = rest.rpartition("@")[2]
    offset, plus, size = where.partition("+")
    if not sep or not plus or not (offset.isdigit() and size.isdigit()):
        return None
    return shard, int(offset), int(size)


def _open(uri: str):
    """A tarfile over ``uri``: seekable (headers only are read) on a local disk; one
    streamed read of the shard elsewhere (a request per member would be the slow way)."""
    fs, path = storage.filesystem(uri)
    if storage.is_remote(uri):  # read ahead in large pieces: never a request per header
        handle = fs.open_input_stream(path, buffer_size=STREAM_BUFFER)
        return handle, tarfile.open(fileobj=handle, mode="r|")
    handle = fs.open_input_file(path)
    return handle, tarfile.open(fileobj=handle, mode="r:")


def samples(uri: str):
    """(key, {ext: member}, {ext: small member's bytes}) of each sample, in order. The small
    members (json, txt, cls) are read as they pass; the audio is not."""
    handle, tar = _open(uri)
    with handle, tar:
        key, members, small = None, {}, {}
        for member in tar:
            if not member.isfile():
                continue
            name = posixpath.basename(member.name)
            stem, _, ext = name.partition(".")
            here = posixpath.join(posixpath.dirname(member.name), stem)
            if here != key and key is not None:
                yield key, members, small
                members, small = {}, {}
            key, members[ext.lower()] = here, member
            if ext.lower() in ("json", "txt", "cls") and member.size <= 1 << 20:
                small[ext.lower()] = tar.extractfile(member).read()
        if key is not None:
            yield key, members, small


def tar_columns(first: str) -> list[str]:
    """The columns a tar's samples carry: their JSON's fields (of the first samples of the
    first shard), and ``text`` where they have a ``.txt``."""
    names: dict[str, None] = {}
    for n, (_, _, small) in enumerate(samples(first)):
        if "json" in small:
            names |= dict.fromkeys(k for k in _json(small["json"]) if k not in ("id", "path"))
        if "txt" in small:
            names["text"] = None
        if n + 1 >= PEEK_SAMPLES:
            break
    return list(names)


def _json(data: bytes) -> dict:
    try:
        found = json.loads(data)
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


class TarRows:
    """Ray Data ``map_batches`` over a listing of tar shards -> a row per sample: ``id``,
    ``path`` (its audio's address, ``member_address``) and the ``columns`` of its metadata
    (as text). A sample with no audio member is a row with a
    ``fetch_error``; a shard that stops being readable (cut short) gives the samples
    before the break and one row naming the shard and why."""

    def __init__(self, columns: list[str]) -> None:
        self.columns = columns

    def __call__(self, table: pa.Table) -> pa.Table:
        rows = [r for uri in table.column("path").to_pylist() for r in self._rows(uri)]
        out = {
            "id": pa.array([r["id"] for r in rows], pa.string()),
            "path": pa.array([r["path"] for r in rows], pa.string()),
        }
        for name in self.columns:
            out[name] = pa.array([_text(r.get(name)) for r in rows], pa.string())
        out[FETCH_ERROR] = pa.array([r.get(FETCH_ERROR) for r in rows], pa.string())
        return pa.table(out)

    def _rows(self, uri: str) -> list[dict]:
        rows, n = [], 0
        try:
            for key, members, small in samples(uri):
                n += 1
                rows.append(_row(uri, key, members, small))
        except Exception as err:  # what was read stands; the shard's break is one row
            why = f"cannot read shard {uri} after {n} samples: {type(err).__name__}: {err}"
            rows.append({"id": uri, "path": uri, FETCH_ERROR: why})
        return rows


def _row(uri: str, key: str, members: dict, small: dict) -> dict:
    meta = _json(small["json"]) if "json" in small else {}
    if "txt" in small:
        meta.setdefault("text", small["txt"].decode("utf-8", "replace").strip())
    audio = next((e for e in members if e in AUDIO_EXTS), None)
    row = meta | {"id": str(meta.get("id") or key)}
    if audio is None:
        names = ", ".join(sorted(f"{key}.{e}" for e in members))
        return row | {"path": f"{uri}#{key}", FETCH_ERROR: f"{uri}: {key} has no audio ({names})"}
    member = members[audio]
    return row | {"path": member_address(uri, member.name, member.offset_data, member.size)}


def _text(value) -> str | None:
    if value is None or value == "":
        return None
    return value if isinstance(value, str) else json.dumps(value)


def fetch_members(shard: str, rows: list[tuple[int, int, int]]):
    """(row, bytes or None, why) of each (row, offset, size) of ``shard``: members read a
    range at a time (nearby members in one read, ``RANGE_BYTES`` at most)."""
    fs, path = storage.filesystem(shard)
    try:
        handle = fs.open_input_file(path)
    except Exception as err:
        why = f"cannot read shard {shard}: {type(err).__name__}: {err}"
        for k, _, _ in rows:
            yield k, None, why
        return
    with handle:
        for span in _spans(sorted(rows, key=lambda r: r[1])):
            start = span[0][1]
            end = max(offset + size for _, offset, size in span)
            data = handle.read_at(end - start, start)
            for k, offset, size in span:
                piece = data[offset - start : offset - start + size]
                if len(piece) < size:
                    yield k, None, f"{shard}: its member at {offset} is cut short"
                else:
                    yield k, bytes(piece), None


def _spans(rows: list[tuple[int, int, int]]) -> list[list[tuple[int, int, int]]]:
    spans: list[list[tuple[int, int, int]]] = []
    for row in rows:
        if spans and row[1] + row[2] - spans[-1][0][1] <= RANGE_BYTES:
            spans[-1].append(row)
        else:
            spans.append([row])
    return spans
