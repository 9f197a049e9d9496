"""A corpus as a Ray Dataset of input rows, without the driver ever holding it.

A manifest (CSV, JSONL or Parquet) is read by Ray Data's own readers; a directory is listed
one folder at a time into Parquet parts of at most ``LISTING_ROWS`` paths, which Ray Data then
reads; a single file is a one-row listing. Every row gets ``id`` and a resolved ``path``; the
manifest's other columns come along as strings (one schema whatever each file's types), and
those named like an output column are renamed ``manifest_<name>``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from raymer import storage
from raymer.contract.schema import FEATURES_SCHEMA, MANIFEST_COLUMNS, PARTY_FIELDS
from raymer.pipeline.listing import LISTING_SCHEMA, ListedRows, walk, write_listing
from raymer.pipeline.manifest import (
    LIST_SEPARATOR,
    ManifestError,
    csv_column_types,
    header_names,
    manifest_format,
    manifest_kind,
    row_id,
)
from raymer.pipeline.packed import Source
from raymer.pipeline.shards import BYTES, PASSED
from raymer.runtime import READ_ARGS

logger = logging.getLogger(__name__)


@dataclass
class Inputs:
    """A command's input rows (lazy: nothing is read until the job runs) and the manifest
    columns they carry, under the names they are written with."""

    dataset: Any
    carried: list[str]
    sharded: bool = False  # shards with the audio inside, Parquet or tar (``pipeline.shards``)


def read_inputs(src: Source, listing_uri: str, reserved: frozenset[str]) -> Inputs:
    """An input (as ``packed.source`` found it: manifest, directory, file or packed) -> its
    rows, lazily: ``id`` (``row_id``), ``path`` and the manifest's other columns
    (``reserved``: output column names, which a manifest column must not take: it is
    carried as ``manifest_<name>``), with the carried names read from the manifest's header
    (no Ray Data execution). Directory and file inputs are listed under ``listing_uri``
    first."""
    import ray.data

    uri = src.uri
    if src.packed:  # shards, Lhotse's supervisions
        carried = carried_names(list(src.columns), reserved)
        warn_renamed(uri, carried)
        rows = src.rows(listing_uri).map_batches(
            ManifestRows("", reserved), batch_format="pyarrow", **READ_ARGS
        )
        return Inputs(rows, list(carried.values()), src.sharded)
    if src.kind == "folder":
        root = write_listing(walk(uri), listing_uri)
        ds = ray.data.read_parquet(root[1], filesystem=root[0], **READ_ARGS)
        return Inputs(ds.map_batches(ListedRows(uri), batch_format="pyarrow", **READ_ARGS), [])
    if src.kind != "file":
        carried = carried_names(manifest_columns(src), reserved)
        warn_renamed(uri, carried)
        ds = read_manifest(uri).map_batches(
            ManifestRows(storage.parent(uri), reserved), batch_format="pyarrow", **READ_ARGS
        )
        return Inputs(ds, list(carried.values()), src.sharded)
    root = write_listing(iter([uri]), listing_uri)  # one audio file
    ds = ray.data.read_parquet(root[1], filesystem=root[0], **READ_ARGS)
    rows = ListedRows(storage.parent(uri))
    return Inputs(ds.map_batches(rows, batch_format="pyarrow", **READ_ARGS), [])


def manifest_columns(src: Source) -> list[str]:
    """The columns an input carries beside ``id`` and ``path``: a manifest's, read from its
    header; a packed input's (a shard's footer, a Lhotse manifest's first rows); none for a
    directory or an audio file."""
    if src.packed:
        return list(src.columns)
    if src.kind in ("folder", "file"):
        return []
    return [n for n in header_names(src.uri) if n not in ("id", "path")]


def one_per_id(group: pa.Table, errors_uri: str, text_column: str) -> pa.Table:
    """Ray Data ``map_groups`` over the input rows by ``id``: one row per id (the first by
    path, then text: the rows' ``text_column``, as the command's row mapper names the
    manifest's text); each other row of that id is written to ``errors/`` as a duplicate
    (stage ``manifest``). The one duplicate rule of every command."""
    from raymer.pipeline.rows import write_errors

    if group.num_rows == 1:
        return group
    names = group.column_names

    def column(name: str) -> list:
        return group.column(name).to_pylist() if name in names else [None] * group.num_rows

    paths, texts = column("path"), column(text_column)
    keep, duplicates = first_of(group.column("id")[0].as_py(), paths, texts)
    write_errors(duplicates, errors_uri, prefix="duplicate")
    return group.take(pa.array([keep], type=pa.int64()))


def first_of(rid: str, paths: list, texts: list) -> tuple[int, list[dict]]:
    """The duplicate rule: of the rows sharing id ``rid``, the one kept (the first by path,
    then text: the same whichever order the rows came in) and an error row for each other."""
    order = sorted(range(len(paths)), key=lambda i: (paths[i] or "", texts[i] or ""))
    keep, rest = order[0], order[1:]
    text = texts[keep] or ""
    kept = paths[keep] or (f"the text {text[:60]!r}" if text else "a row")
    error = f"duplicate id: {rid} is already {kept}"
    return keep, [{"id": rid, "path": paths[i], "stage": "manifest", "error": error} for i in rest]


def unique_ids(ds, errors_uri: str, partitions: int, num_cpus: float, text_column: str):
    """One row per id (``one_per_id``), grouped by Ray Data into ``partitions`` blocks;
    ``text_column``: where the rows hold the manifest's text (``ExtractRows``:
    ``reference_text``; ``ManifestRows``: ``text``)."""
    return ds.groupby("id", num_partitions=partitions).map_groups(
        one_per_id,
        fn_kwargs={"errors_uri": errors_uri, "text_column": text_column},
        batch_format="pyarrow",
        num_cpus=num_cpus,
    )


def read_manifest(uri: str):
    """The manifest as Ray Data reads it; ids and labels stay strings ("007")."""
    import pyarrow.csv as pacsv
    import ray.data

    fs, path = storage.filesystem(uri)
    form = manifest_format(uri)
    if form == "parquet":
        return ray.data.read_parquet(path, filesystem=fs, **READ_ARGS)
    if form == "json":  # newline-delimited, as pyarrow reads it
        return ray.data.read_json(path, filesystem=fs, **READ_ARGS)
    options = pacsv.ConvertOptions(column_types=csv_column_types())
    return ray.data.read_csv(path, filesystem=fs, convert_options=options, **READ_ARGS)


class ManifestRows:
    """Manifest rows -> ``id`` (``row_id``: given, else from the path), ``path`` (resolved against the
    manifest's folder; ``turns`` too, recognize's RTTM file per recording) and the other
    columns as strings. A row without a path keeps an
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
        others = [n for n in table.column_names if n not in ("id", "path", *PASSED)]
        for name, key in carried_names(others, self.reserved).items():
            out[key] = [_text(v) for v in table.column(name).to_pylist()]
        for name in PASSED:  # a shard row's: what fetch_audio reads (never written)
            if name in table.column_names:
                out[name] = table.column(name)
        if "turns" in out:  # an RTTM file per recording (recognize's turns), as its path is
            out["turns"] = [
                storage.resolve_relative(t, self.base) if t else t for t in out["turns"]
            ]
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
EXTRACT_RESERVED |= {BYTES, *PASSED}


def carried_names(names: list[str], reserved: frozenset[str]) -> dict[str, str]:
    """Manifest columns -> the names they are written under: their own, or
    ``manifest_<name>`` for one named like an output column."""
    return {n: f"manifest_{n}" if n in reserved else n for n in names}


def warn_renamed(uri: str, carried: dict[str, str]) -> None:
    renamed = {a: b for a, b in carried.items() if a != b}
    if renamed:
        pairs = ", ".join(f"{a} -> {b}" for a, b in renamed.items())
        logger.warning(
            "input %s has columns named like output columns; they are kept as %s",
            uri,
            pairs,
        )


def extract_dataset(src: Source, listing_uri: str, kind: str = "auto", parties: bool = False):
    """``raymer extract``'s input as a Ray Dataset -> (dataset, text_only, extra columns).
    ``kind``: audio (every row needs a ``path``), text (every row needs a ``text``) or auto
    (text when the manifest has texts and no paths). ``parties`` (``segment.channels:
    split``): a row per channel, named by its party (``PARTY_FIELDS``; the manifest's own
    ``speaker`` kept as ``manifest_speaker``, as recognize keeps it)."""
    party = [name for name, _, _ in PARTY_FIELDS]
    uri = src.uri
    if src.packed:  # shards, Lhotse's supervisions
        carried = carried_names(
            _own(list(src.columns), parties), EXTRACT_RESERVED | set(party * parties)
        )
        warn_renamed(uri, carried)
        rows = ExtractRows("", False, carried)
        ds = src.rows(listing_uri).map_batches(rows, batch_format="pyarrow", **READ_ARGS)
        return ds, False, list(carried.values()) + party * parties
    if src.kind == "folder":
        ds = read_inputs(src, listing_uri, frozenset()).dataset
        ds = ds.map_batches(ExtractRows(uri, False, {}), batch_format="pyarrow", **READ_ARGS)
        return ds, False, party * parties
    ds = read_manifest(uri)
    names = header_names(uri)
    kind = manifest_kind(uri, names, kind, lambda: _has_paths(ds, names))
    parties = parties and kind != "text"
    carried = carried_names(_own(names, parties), EXTRACT_RESERVED | set(party * parties))
    warn_renamed(uri, carried)
    rows = ExtractRows(storage.parent(uri), kind == "text", carried)
    ds = ds.map_batches(rows, batch_format="pyarrow", **READ_ARGS)
    return ds, kind == "text", list(carried.values()) + party * parties


def _own(names: list[str], parties: bool) -> list[str]:
    """A manifest's columns extract carries (with ``parties``, its speaker too)."""
    return [n for n in names if n not in MANIFEST_COLUMNS or (parties and n == "speaker")]


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
            "speaker": pa.array(  # heard as parties: the party's (the manifest's carried)
                [None] * n if "speaker" in self.extra else get("speaker"), pa.string()
            ),
            "session": pa.array(get("session"), pa.string()),
            "reference_text": pa.array(texts, pa.string()),
        }
        for name, key in self.extra.items():  # (a block of an unreadable shard has none)
            out[key] = table.column(name) if name in table.column_names else pa.nulls(n)
        for name in PASSED:  # what fetch_audio reads (never written)
            if name in table.column_names:
                out[name] = table.column(name)
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
