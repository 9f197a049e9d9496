"""Corpora shipped as shards with the audio inside: Parquet in the Hugging Face ``datasets``
layout (an ``audio`` column of structs holding ``bytes`` and ``path``) or with a plain
binary column, and WebDataset tars (``raymer.pipeline.tars``). ``--input`` names one shard,
a folder holding them, or a glob (``data/*.parquet``).

Nothing is unpacked to files and no clip is one GET of its own. The rows are read in two
passes: ``ShardRows`` reads each shard's small columns (everything but the audio's bytes),
which is what the one id rule, the duplicates and the resume see; each row's ``path`` is
its address, ``SHARD.parquet#row=N``. After them, the rows left to do (sorted by address,
so a task meets its rows shard by shard) are given their bytes by ``fetch_audio``, a row
group at a time, before the one decoder reads them (``open_audio`` takes bytes, and checks
their size and header before decoding). The id rule for a shard row: its ``id`` column;
else its ``key`` or ``__key__``; else its audio's own ``path`` without the extension; else
the shard's name and the row's number in it. A shard's own ``path`` column (the file a clip
came from, as Common Voice keeps it) stands in for the audio's path, and is carried as
``source_path``.
"""

from __future__ import annotations

import bisect
import fnmatch
import os
import posixpath
from collections.abc import Iterator

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from raymer import storage
from raymer.errors import UsageError
from raymer.pipeline.manifest import FETCH_ERROR, id_from_path
from raymer.pipeline.tars import TarRows, fetch_members, is_tar, parse_member, tar_columns

ADDRESS = "#row="  # a shard row's path: SHARD#row=N (N zero-padded: addresses sort in order)
KEYS = ("key", "__key__")  # a shard row's id where it has no `id` column
BYTES = "audio_bytes"  # the column fetch_audio fills (a row's encoded audio)
MAX_GROUP_MB = 1024.0  # a row group's audio a task reads at once: bounded before it is read
PASSED = (FETCH_ERROR,)  # what the input rows carry to fetch_audio, never written


class ShardError(UsageError):
    """A sharded input that cannot be used (no shard, no audio column, two of them)."""


def audio_column(schema: pa.Schema, where: str) -> tuple[str, str] | None:
    """Where a Parquet schema keeps embedded audio: (column, the leaf holding the bytes:
    ``audio.bytes`` in the ``datasets`` layout, the column itself for a binary one); None:
    a table without audio (a manifest of paths). An ``audio`` column first; else the one
    binary column (two or more, none named ``audio``: refused with their names)."""
    if "audio" in schema.names:
        kind = schema.field("audio").type
        if pa.types.is_struct(kind) and kind.get_field_index("bytes") >= 0:
            return "audio", "audio.bytes"
        if pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
            return "audio", "audio"
    binary = [
        f.name for f in schema if pa.types.is_binary(f.type) or pa.types.is_large_binary(f.type)
    ]
    if len(binary) > 1:
        raise ShardError(
            f"{where} has {len(binary)} binary columns ({binary}) and none named `audio`: "
            "name the audio's column `audio`"
        )
    return (binary[0], binary[0]) if binary else None


def shard_files(uri: str) -> list[str] | None:
    """The shards ``uri`` names, sorted: Parquet files holding embedded audio, or WebDataset
    tars (``raymer.pipeline.tars``), as one shard, a folder whose top level holds them, or a
    glob in the last part of the path; None when ``uri`` is something else (a manifest of
    paths, a folder of audio files, a file). Compressed tars are refused with the reason."""
    if uri.lower().endswith((".tar.gz", ".tgz", ".tar.zst", ".tar.xz", ".tar.bz2")):
        raise ShardError(
            f"{uri}: a compressed tar cannot be read by its members' offsets; give "
            "uncompressed .tar shards (the audio inside is compressed already)"
        )
    if any(c in posixpath.basename(uri) for c in "*?["):
        parent, pattern = uri.rsplit("/", 1) if "/" in uri else (".", uri)
        found = [u for u in _top_level(parent) if fnmatch.fnmatch(posixpath.basename(u), pattern)]
        if not found:
            raise ShardError(f"no file matches {uri}")
        return found if _is_shard(found[0]) else None
    if storage.is_dir(uri):
        found = [u for u in _top_level(uri) if u.lower().endswith(".tar")]
        found = found or [u for u in _top_level(uri) if u.lower().endswith(".parquet")]
        return found if found and _is_shard(found[0]) else None
    if uri.lower().endswith((".parquet", ".tar")) and storage.exists(uri) and _is_shard(uri):
        return [uri if storage.is_remote(uri) else os.path.abspath(uri)]
    return None


def _is_shard(uri: str) -> bool:
    return is_tar(uri) or _has_audio(uri)


def _top_level(folder: str) -> list[str]:
    folder = folder if storage.is_remote(folder) else os.path.abspath(folder)
    fs, root = storage.filesystem(folder)
    prefix = "s3://" if folder.startswith("s3://") else ""
    try:
        infos = fs.get_file_info(pafs.FileSelector(root, recursive=False))
    except (FileNotFoundError, OSError) as err:
        raise ShardError(f"cannot list {folder}: {err}") from None
    return sorted(
        prefix + i.path
        for i in infos
        if i.type == pafs.FileType.File and not posixpath.basename(i.path).startswith(".")
    )


def _has_audio(uri: str) -> bool:
    fs, path = storage.filesystem(uri)
    try:
        with fs.open_input_file(path) as f:
            schema = pq.read_schema(f)
    except (OSError, pa.ArrowInvalid):
        return False  # not a Parquet file: not a shard (the manifest reader says why)
    return audio_column(schema, uri) is not None


def address(shard: str, index: int) -> str:
    return f"{shard}{ADDRESS}{index:09d}"


def parse_address(path: str) -> tuple[str, int] | None:
    """(shard, row) of a Parquet shard row's ``path``; None for anything else."""
    shard, sep, index = path.rpartition(ADDRESS)
    return (shard, int(index)) if sep and index.isdigit() else None


def is_address(path: str | None) -> bool:
    """Whether ``path`` is a clip's address in a shard (Parquet row or tar member)."""
    return bool(path) and (parse_address(path) or parse_member(path)) is not None


def file_of(path: str) -> str:
    """The file a path's audio lies in: its shard for an address, else the path itself."""
    where = parse_address(path) or parse_member(path)
    return where[0] if where else path


class ShardRows:
    """Ray Data ``map_batches`` over a listing of shards -> a row per clip, as a manifest's
    rows are: ``id`` (the id rule above), ``path`` (its address) and the shard's other small
    columns (the audio's bytes are not read here). A shard that cannot be read is one row
    of its own: its ``path`` the shard's, ``fetch_error`` why (an error row later)."""

    def __call__(self, table: pa.Table) -> pa.Table:
        tables = [self._rows(uri) for uri in table.column("path").to_pylist()]
        return pa.concat_tables(tables, promote_options="permissive")

    def _rows(self, uri: str) -> pa.Table:
        fs, path = storage.filesystem(uri)
        try:
            with fs.open_input_file(path) as f:
                shard = pq.ParquetFile(f)
                found = audio_column(shard.schema_arrow, uri)
                if found is None:
                    raise ShardError(f"{uri} has no audio column")
                column, leaf = found
                small = [n for n in shard.schema_arrow.names if n != column]
                own = [f"{column}.path"] if leaf != column else []
                read = shard.read(columns=small + own)
        except Exception as err:  # the shard is an error row; the other shards go on
            why = f"cannot read shard {uri}: {type(err).__name__}: {err}"
            return pa.table({"id": [uri], "path": [uri], FETCH_ERROR: [why]})
        n = read.num_rows
        named = (
            read.column(column).combine_chunks().field("path").to_pylist() if own else [None] * n
        )
        out = {name: read.column(name) for name in small if name not in ("id", "path")}
        given = next((read.column(k).to_pylist() for k in ("id", *KEYS) if k in small), None)
        if "path" in small:  # the shard's own path column: the file the clip came from
            own_path = read.column("path").to_pylist()
            named = [a or b for a, b in zip(named, own_path, strict=True)]
        stem = posixpath.splitext(posixpath.basename(uri))[0]
        out["id"] = pa.array(
            [
                str(g) if g not in (None, "") else id_from_path(str(p)) if p else f"{stem}/{i:06d}"
                for i, (g, p) in enumerate(zip(given or [None] * n, named, strict=True))
            ],
            pa.string(),
        )
        out["path"] = pa.array([address(uri, i) for i in range(n)], pa.string())
        if "path" in small:
            out["source_path"] = read.column("path")
        out[FETCH_ERROR] = pa.nulls(n, pa.string())
        return pa.table(out)


def fetch_audio(table: pa.Table) -> Iterator[pa.Table]:
    """Ray Data ``map_batches`` (a generator) over rows sorted by address -> the same rows
    with their encoded audio (``BYTES``), read a row group at a time: only the audio's
    column of the row groups that hold them, a group's size checked before it is read
    (``MAX_GROUP_MB``), so a task holds one group's audio at most. A shard or group that
    cannot be read gives its rows a ``FETCH_ERROR``; rows that are files pass through."""
    paths = table.column("path").to_pylist()
    by_shard: dict[str, list[tuple[int, int]]] = {}
    by_tar: dict[str, list[tuple[int, int, int]]] = {}
    plain = []
    for k, p in enumerate(paths):
        where, member = parse_address(p or ""), parse_member(p or "")
        if member is not None:
            by_tar.setdefault(member[0], []).append((k, member[1], member[2]))
        elif where is None:
            plain.append(k)
        else:
            by_shard.setdefault(where[0], []).append((k, where[1]))
    if plain:
        yield _with_bytes(table, plain, [b""] * len(plain), [None] * len(plain))
    for shard, rows in by_shard.items():
        yield from _fetched(table, shard, rows)
    for shard, members in by_tar.items():
        got = list(fetch_members(shard, members))
        yield _with_bytes(table, [k for k, _, _ in got], [d or b"" for _, d, _ in got],
                          [why for _, _, why in got])  # fmt: skip


def _fetched(table: pa.Table, shard: str, rows: list[tuple[int, int]]) -> Iterator[pa.Table]:
    fs, path = storage.filesystem(shard)
    try:
        f = fs.open_input_file(path)
    except Exception as err:
        yield _failed(table, rows, f"cannot read shard {shard}: {type(err).__name__}: {err}")
        return
    with f:
        try:
            pf = pq.ParquetFile(f)
            leaf = audio_column(pf.schema_arrow, shard)
            if leaf is None:
                raise ShardError(f"{shard} has no audio column")
        except Exception as err:
            yield _failed(table, rows, f"cannot read shard {shard}: {type(err).__name__}: {err}")
            return
        starts, at = [], 0
        for g in range(pf.metadata.num_row_groups):
            starts.append(at)
            at += pf.metadata.row_group(g).num_rows
        groups: dict[int, list[tuple[int, int]]] = {}
        for k, index in rows:
            g = bisect.bisect_right(starts, index) - 1
            if index >= at or g < 0:
                yield _failed(table, [(k, index)], f"{shard} has no row {index} ({at} rows)")
                continue
            groups.setdefault(g, []).append((k, index - starts[g]))
        for g, members in sorted(groups.items()):
            yield _group(table, pf, shard, g, leaf[1], members)


def _group(table, pf: pq.ParquetFile, shard: str, g: int, leaf: str, members) -> pa.Table:
    meta = pf.metadata.row_group(g)
    size = sum(
        meta.column(c).total_uncompressed_size
        for c in range(meta.num_columns)
        if meta.column(c).path_in_schema == leaf
    )
    if size > MAX_GROUP_MB * 1024 * 1024:
        why = (
            f"row group {g} of {shard} holds {size / 2**20:,.0f} MB of audio, over the "
            f"{MAX_GROUP_MB:,.0f} MB a task reads at once: write the shards with smaller row groups"
        )
        return _failed(table, members, why)
    try:
        read = pf.read_row_group(g, columns=[leaf])
    except Exception as err:
        return _failed(table, members, f"cannot read row group {g} of {shard}: {err}")
    values = read.column(0).combine_chunks()
    if pa.types.is_struct(values.type):
        values = values.field("bytes")
    data = [values[i].as_py() or b"" for _, i in members]
    return _with_bytes(table, [k for k, _ in members], data, [None] * len(members))


def _failed(table: pa.Table, rows: list[tuple[int, int]], why: str) -> pa.Table:
    return _with_bytes(table, [k for k, _ in rows], [b""] * len(rows), [why] * len(rows))


def _with_bytes(table: pa.Table, keep: list[int], data: list[bytes], errors: list) -> pa.Table:
    out = table.take(pa.array(keep, pa.int64()))
    if FETCH_ERROR in out.column_names:  # the first pass's: an unreadable shard
        first = out.column(FETCH_ERROR).to_pylist()
        errors = [a or b for a, b in zip(first, errors, strict=True)]
        out = out.drop_columns([FETCH_ERROR])
    out = out.append_column(BYTES, pa.array(data, pa.binary()))
    return out.append_column(FETCH_ERROR, pa.array(errors, pa.string()))


FETCH_ROWS = 512  # rows per block for fetch_audio: its row groups are read once per block
SHARD_TASKS = 8  # tasks reading the shards' small columns (each a few shards, in turn)


def in_shard_order(ds):
    """The rows left to do, sorted by address into blocks of ``FETCH_ROWS``: a fetch task
    meets its rows shard by shard and reads each row group it needs once."""
    return ds.sort("path").repartition(target_num_rows_per_block=FETCH_ROWS)


def fetched(ds, num_cpus: float):
    """``ds`` (in shard order) with each row's encoded audio (``fetch_audio``); each clip's
    size and header are checked by the decoder before it decodes."""
    return ds.map_batches(fetch_audio, batch_size=None, batch_format="pyarrow", num_cpus=num_cpus)


def source_of(row: dict) -> tuple[str | bytes, str | None]:
    """What the decoder opens for an input row, taking its bytes out of the row (they go
    no further): a shard row's encoded audio, else its path; and why there is nothing to
    open (its shard or row group could not be read, or the row holds no audio), else None.
    The one rule of extract's decode and recognize's segmenting."""
    data, why = row.pop(BYTES, None), row.get(FETCH_ERROR)
    path = row.get("path") or ""
    if why:
        return path, why
    if not is_address(path):
        return path, None
    if not data:
        return path, f"{path}: the row holds no audio (its bytes are empty)"
    return bytes(data), None


def shard_columns(shards: list[str]) -> list[str]:
    """The columns shard rows carry: a tar's samples' metadata fields (``tar_columns``); a
    Parquet shard's small columns (the first shard's footer), its own ``path`` as
    ``source_path``."""
    if is_tar(shards[0]):
        return tar_columns(shards[0])
    from raymer.pipeline.manifest import header_names

    names = header_names(shards[0])
    audio = audio_column(_schema(shards[0]), shards[0])
    small = [n for n in names if n not in ("id", "path", audio[0] if audio else None)]
    return small + ["source_path"] * ("path" in names)


def _schema(uri: str) -> pa.Schema:
    import pyarrow.parquet as pq

    fs, path = storage.filesystem(uri)
    with fs.open_input_file(path) as f:
        return pq.read_schema(f)


def shard_rows(shards: list[str], listing_uri: str):
    """A row per clip of the shards (``ShardRows``, ``TarRows``: their small columns), read
    by Ray Data from a listing of the shards, in ``SHARD_TASKS`` tasks at most."""
    import ray.data

    from raymer.pipeline.listing import write_listing
    from raymer.runtime import READ_ARGS

    root = write_listing(iter(shards), listing_uri)
    ds = ray.data.read_parquet(root[1], filesystem=root[0], **READ_ARGS)
    per = max(1, -(-len(shards) // SHARD_TASKS))  # shards read by one task
    ds = ds.repartition(target_num_rows_per_block=per)
    rows = TarRows(tar_columns(shards[0])) if is_tar(shards[0]) else ShardRows()
    return ds.map_batches(rows, batch_size=1, batch_format="pyarrow", **READ_ARGS)
