"""A corpus as a Ray Dataset of input rows, without the driver ever holding it.

A manifest (CSV, JSONL or Parquet) is read by Ray Data's own readers; a directory is listed
one folder at a time into Parquet parts of at most ``LISTING_ROWS`` paths, which Ray Data then
reads; a single file is a one-row listing. Every row gets ``id`` and a resolved ``path``; the
manifest's other columns come along as strings (one schema whatever each file's types), and
those named like an output column are renamed ``manifest_<name>``.
"""

from __future__ import annotations

import logging
import posixpath
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from raymer import storage
from raymer.corpora.manifest import (
    MANIFEST_SUFFIXES,
    ManifestError,
    check_input,
    id_from_path,
    row_id,
)
from raymer.corpora.prepared import LIST_SEPARATOR
from raymer.runtime import READ_ARGS
from raymer.schema import FEATURES_SCHEMA, MANIFEST_COLUMNS

logger = logging.getLogger(__name__)

LISTING_ROWS = 50_000  # paths per listing part: bounds the driver's memory while listing
LISTING_SCHEMA = pa.schema([("path", pa.string())])
HEADER_BYTES = 16 << 20  # a JSONL manifest's first row is read up to this size


@dataclass
class Inputs:
    """A command's input rows (lazy: nothing is read until the job runs) and the manifest
    columns they carry, under the names they are written with."""

    dataset: Any
    carried: list[str]


def read_inputs(uri: str, listing_uri: str, reserved: frozenset[str]) -> Inputs:
    """``uri`` (manifest, directory or file) -> its rows, lazily: ``id`` (``row_id``),
    ``path`` and the manifest's other columns (``reserved``: output column names, which a
    manifest column must not take: it is carried as ``manifest_<name>``), with the carried
    names read from the manifest's header (no Ray Data execution). Directory and file inputs
    are listed under ``listing_uri`` first."""
    import ray.data

    check_input(uri, files=True)
    if storage.is_dir(uri):
        root = _write_listing(_walk(uri), listing_uri)
        ds = ray.data.read_parquet(root[1], filesystem=root[0], **READ_ARGS)
        return Inputs(ds.map_batches(ListedRows(uri), batch_format="pyarrow", **READ_ARGS), [])
    if uri.lower().endswith(MANIFEST_SUFFIXES):
        others = [n for n in header_names(uri) if n not in ("id", "path")]
        carried = carried_names(others, reserved)
        warn_renamed(uri, carried)
        ds = read_manifest(uri).map_batches(
            ManifestRows(storage.parent(uri), reserved), batch_format="pyarrow", **READ_ARGS
        )
        return Inputs(ds, list(carried.values()))
    root = _write_listing(iter([uri]), listing_uri)  # one audio file
    ds = ray.data.read_parquet(root[1], filesystem=root[0], **READ_ARGS)
    rows = ListedRows(storage.parent(uri))
    return Inputs(ds.map_batches(rows, batch_format="pyarrow", **READ_ARGS), [])


def header_names(uri: str) -> list[str]:
    """A manifest's column names, from its header alone (CSV: the first line; JSONL: the
    first row's keys; Parquet: the footer's schema)."""
    import json

    import pyarrow.csv as pacsv

    fs, path = storage.filesystem(uri)
    lower = uri.lower()
    try:
        if lower.endswith(".parquet"):
            with fs.open_input_file(path) as f:
                return list(pq.read_schema(f).names)
        with fs.open_input_stream(path) as f:
            if lower.endswith((".jsonl", ".json")):
                head = b""
                while b"\n" not in head.lstrip() and len(head) < HEADER_BYTES:
                    chunk = f.read(65536)
                    if not chunk:
                        break
                    head += chunk
                line = head.lstrip().split(b"\n", 1)[0]
                return list(json.loads(line)) if line.strip() else []
            reader = pacsv.open_csv(f)
            return list(reader.schema.names)
    except (OSError, ValueError, pa.ArrowInvalid) as err:
        raise ManifestError(f"cannot read manifest {uri}: {err}") from None


def one_per_id(group: pa.Table, errors_uri: str) -> pa.Table:
    """Ray Data ``map_groups`` over the input rows by ``id``: one row per id (the first by
    path, then text); each other row of that id is written to ``errors/`` as a duplicate
    (stage ``manifest``). The one duplicate rule of every command."""
    from raymer.pipeline.rows import write_errors

    if group.num_rows == 1:
        return group
    names = group.column_names

    def column(name: str) -> list:
        return group.column(name).to_pylist() if name in names else [None] * group.num_rows

    paths = column("path")
    texts = column("reference_text") if "reference_text" in names else column("text")
    order = sorted(range(group.num_rows), key=lambda i: (paths[i] or "", texts[i] or ""))
    keep, rest = order[0], order[1:]
    rid = group.column("id")[0].as_py()
    error = f"duplicate id: {rid} is already {paths[keep] or 'a row'}"
    duplicates = [{"id": rid, "path": paths[i], "stage": "manifest", "error": error} for i in rest]
    write_errors(duplicates, errors_uri, prefix="duplicate")
    return group.take(pa.array([keep], type=pa.int64()))


def unique_ids(ds, errors_uri: str, partitions: int, num_cpus: float):
    """One row per id (``one_per_id``), grouped by Ray Data into ``partitions`` blocks."""
    return ds.groupby("id", num_partitions=partitions).map_groups(
        one_per_id,
        fn_kwargs={"errors_uri": errors_uri},
        batch_format="pyarrow",
        num_cpus=num_cpus,
    )


def read_manifest(uri: str):
    """The manifest as Ray Data reads it; ids and labels stay strings ("007")."""
    import pyarrow.csv as pacsv
    import ray.data

    fs, path = storage.filesystem(uri)
    lower = uri.lower()
    if lower.endswith(".parquet"):
        return ray.data.read_parquet(path, filesystem=fs, **READ_ARGS)
    if lower.endswith((".jsonl", ".json")):
        return ray.data.read_json(
            path, filesystem=fs, **READ_ARGS
        )  # newline-delimited, as pyarrow reads it
    strings = {c: pa.string() for c in MANIFEST_COLUMNS}
    options = pacsv.ConvertOptions(column_types=strings)
    return ray.data.read_csv(path, filesystem=fs, convert_options=options, **READ_ARGS)


def _walk(uri: str) -> Iterator[str]:
    """Audio files under ``uri``, one folder listing at a time (sorted within a folder)."""
    fs, root = storage.filesystem(uri)
    prefix = "s3://" if uri.startswith("s3://") else ""
    folders = [root]
    while folders:
        folder = folders.pop()
        infos = fs.get_file_info(pafs.FileSelector(folder, recursive=False))
        for info in sorted(infos, key=lambda i: i.path):
            name = posixpath.basename(info.path)
            if name.startswith("."):
                continue
            if info.type == pafs.FileType.Directory:
                folders.append(info.path)
            elif info.path.lower().endswith(storage.AUDIO_EXTENSIONS):
                yield prefix + info.path


def _write_listing(paths: Iterator[str], listing_uri: str) -> tuple[pafs.FileSystem, str]:
    """Write ``paths`` as Parquet parts under ``listing_uri`` (replacing an older listing);
    returns its (filesystem, path) for Ray Data."""
    fs, root = storage.filesystem(listing_uri)
    fs.create_dir(root, recursive=True)
    for info in fs.get_file_info(pafs.FileSelector(root, allow_not_found=True)):
        fs.delete_file(info.path)
    part: list[str] = []
    count = 0
    for path in paths:
        part.append(path)
        if len(part) >= LISTING_ROWS:
            count = _write_part(fs, root, part, count)
            part = []
    if part or not count:
        _write_part(fs, root, part, count)
    return fs, root


def _write_part(fs: pafs.FileSystem, root: str, paths: list[str], count: int) -> int:
    table = pa.table({"path": paths}, schema=LISTING_SCHEMA)
    pq.write_table(table, f"{root}/part-{count:06d}-{uuid.uuid4().hex[:8]}.parquet", filesystem=fs)
    return count + 1


class ListedRows:
    """Listing rows -> ``id`` (the path relative to ``root``, without extension), ``path``."""

    def __init__(self, root: str) -> None:
        self.root = storage.filesystem(root)[1].rstrip("/") if not storage.is_remote(root) else root

    def __call__(self, table: pa.Table) -> pa.Table:
        paths = table.column("path").to_pylist()
        bare = [p.split("://", 1)[-1] for p in paths]
        root = self.root.split("://", 1)[-1].rstrip("/")
        rel = [
            p[len(root) :].lstrip("/") if p.startswith(root) else posixpath.basename(p)
            for p in bare
        ]
        return pa.table({"id": [id_from_path(r) for r in rel], "path": paths})


class ManifestRows:
    """Manifest rows -> ``id`` (``row_id``: given, else from the path), ``path`` (resolved against the
    manifest's folder) and the other columns as strings. A row without a path keeps an
    empty one: the decoding stage reports it as an error."""

    def __init__(self, base: str, reserved: frozenset[str]) -> None:
        self.base, self.reserved = base, reserved

    def __call__(self, table: pa.Table) -> pa.Table:
        if "path" not in table.column_names:
            raise ManifestError(
                f"the manifest has no `path` column (columns: {table.column_names})"
            )
        paths = [_text(p) for p in table.column("path").to_pylist()]
        given = (
            table.column("id").to_pylist() if "id" in table.column_names else [None] * len(paths)
        )
        texts = (
            [_text(t) for t in table.column("text").to_pylist()]
            if "text" in table.column_names
            else [None] * len(paths)
        )
        ids = [row_id(_text(i), p, t) for i, p, t in zip(given, paths, texts, strict=True)]
        out = {
            "id": ids,
            "path": [storage.resolve_relative(p, self.base) if p else "" for p in paths],
        }
        others = [n for n in table.column_names if n not in ("id", "path")]
        for name, key in carried_names(others, self.reserved).items():
            out[key] = [_text(v) for v in table.column(name).to_pylist()]
        return pa.table(out)


def _text(value) -> str | None:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    text = str(value)
    return text if text else None


# ``raymer extract``'s rows: the manifest's known columns under the names the extraction
# stages use (``text`` is the reference transcript), the others carried with their types.
EXTRACT_KEYS = ("id", "path", "label", "speaker", "session", "reference_text")
# Names a carried manifest column must not take: the features' columns and the keys the
# stages add to a row on its way (a manifest's own ``duration_s`` would meet the decoder's).
EXTRACT_RESERVED = frozenset(FEATURES_SCHEMA.names) | {"audio", "audio_dim", "error", "stage"}


def carried_names(names: list[str], reserved: frozenset[str]) -> dict[str, str]:
    """Manifest columns -> the names they are written under: their own, or
    ``manifest_<name>`` for one named like an output column."""
    return {n: f"manifest_{n}" if n in reserved else n for n in names}


def warn_renamed(uri: str, carried: dict[str, str]) -> None:
    renamed = {a: b for a, b in carried.items() if a != b}
    if renamed:
        pairs = ", ".join(f"{a} -> {b}" for a, b in renamed.items())
        logger.warning(
            "manifest %s has columns named like output columns; they are kept as %s",
            uri,
            pairs,
        )


def extract_dataset(uri: str, listing_uri: str, kind: str = "auto"):
    """``raymer extract``'s input as a Ray Dataset -> (dataset, text_only, extra columns).
    ``kind``: audio (every row needs a ``path``), text (every row needs a ``text``) or auto
    (text when the manifest has texts and no paths)."""
    check_input(uri, kind)
    if storage.is_dir(uri):
        ds = read_inputs(uri, listing_uri, frozenset()).dataset
        return (
            ds.map_batches(ExtractRows(uri, False, {}), batch_format="pyarrow", **READ_ARGS),
            False,
            [],
        )
    ds = read_manifest(uri)
    names = header_names(uri)
    if kind == "auto":
        kind = "text" if "text" in names and not _has_paths(ds, names) else "audio"
    needed = "text" if kind == "text" else "path"
    if needed not in names:
        why = ": inputs=text embeds that column" if kind == "text" else ""
        raise ManifestError(f"manifest {uri} has no `{needed}` column (columns: {names}){why}")
    carried = carried_names([n for n in names if n not in MANIFEST_COLUMNS], EXTRACT_RESERVED)
    warn_renamed(uri, carried)
    rows = ExtractRows(storage.parent(uri), kind == "text", carried)
    ds = ds.map_batches(rows, batch_format="pyarrow", **READ_ARGS)
    return ds, kind == "text", list(carried.values())


def _has_paths(ds, names: list[str]) -> bool:
    """Whether any row of the manifest names a file (read until the first one)."""
    if "path" not in names:
        return False
    found = ds.select_columns(["path"]).map_batches(
        _named_paths, batch_format="pyarrow", **READ_ARGS
    )
    return bool(found.take(1))


def _named_paths(table: pa.Table) -> pa.Table:
    paths = [_text(p) for p in table.column("path").to_pylist()]
    return pa.table({"path": [p for p in paths if p]}, schema=LISTING_SCHEMA)


class ExtractRows:
    """Input rows (a listing's or a manifest's) -> ``EXTRACT_KEYS`` and the carried columns
    (``extra``: manifest name -> output name). An audio row without a path keeps an empty
    one and a text row without a text an empty text: the stages report them as errors, as
    they do unreadable files."""

    def __init__(self, base: str, text_only: bool, extra: dict[str, str]) -> None:
        self.base, self.text_only, self.extra = base, text_only, extra

    def __call__(self, table: pa.Table) -> pa.Table:
        n = table.num_rows

        def get(name: str) -> list:
            if name not in table.column_names:
                return [None] * n
            return [_text(v) for v in table.column(name).to_pylist()]

        paths, texts = get("path"), get("text")
        ids = [
            row_id(i, p, t, self.text_only) for i, p, t in zip(get("id"), paths, texts, strict=True)
        ]
        out = {
            "id": pa.array(ids, pa.string()),
            "path": pa.array(
                [
                    "" if self.text_only or not p else storage.resolve_relative(p, self.base)
                    for p in paths
                ],
                pa.string(),
            ),
            "label": pa.array(get("label"), pa.string()),
            "speaker": pa.array(get("speaker"), pa.string()),
            "session": pa.array(get("session"), pa.string()),
            "reference_text": pa.array(texts, pa.string()),
        }
        for name, key in self.extra.items():
            out[key] = table.column(name)
        if pa.types.is_string(out.get("labels", pa.array([[]])).type):
            out["labels"] = _label_lists(out["labels"])
        return pa.table(out)


def _label_lists(column) -> pa.Array:
    """A CSV manifest's ``labels`` ("anger;joy", as ``corpus prepare`` writes a list) -> a
    list of labels per row; an empty cell is no list."""
    values = [
        [x.strip() for x in v.split(LIST_SEPARATOR) if x.strip()] if v else None
        for v in column.to_pylist()
    ]
    return pa.array(values, pa.list_(pa.string()))


def anti_join(ds, written_uri: str, keys: tuple[str, ...], cast=None, partitions: int = 2):
    """Rows of ``ds`` whose ``keys`` are not yet in the Parquet files under ``written_uri``:
    a left anti-join by Ray Data (the driver never holds the keys). ``cast`` types the keys
    as the written files store them."""
    import ray.data

    if not storage.list_files(written_uri, (".parquet",)):
        return ds
    fs, path = storage.filesystem(written_uri)
    done = ray.data.read_parquet(path, filesystem=fs, **READ_ARGS).select_columns(list(keys))
    if cast is not None:
        ds = ds.map_batches(cast, batch_format="pyarrow", **READ_ARGS)
    return ds.join(done, join_type="left_anti", num_partitions=partitions, on=keys)
