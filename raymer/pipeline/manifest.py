"""What an input is, before any reader: a manifest file (its header and, in process, its
table) or a directory of audio files; the id rule; the checks made before Ray starts. The
readers are ``raymer.pipeline.inputs`` (Ray Data's) and ``inprocess`` (``read_rows``).

A manifest is CSV, JSONL or Parquet with a ``path`` column (path or URI; relative paths
resolve against the manifest's folder) and optional ``id``, ``label``, ``speaker``,
``session`` and ``text`` (the reference transcript). Other columns are carried through.
A text corpus (GoEmotions) has ``text`` and no paths: its rows are texts to embed.
"""

from __future__ import annotations

import hashlib
import posixpath

import pyarrow as pa
import pyarrow.parquet as pq

from raymer import storage
from raymer.contract.schema import MANIFEST_COLUMNS
from raymer.errors import UsageError

MANIFEST_SUFFIXES = (".csv", ".jsonl", ".json", ".parquet")
HEADER_BYTES = 16 << 20  # a JSONL manifest's first row is read up to this size

LIST_SEPARATOR = ";"  # a list (GoEmotions' labels) in a CSV cell: "anger;joy"
# Why a sharded or Lhotse input row has no audio to decode (its shard, row group or
# recording could not be read): carried to the decoder, which makes it the row's error.
FETCH_ERROR = "fetch_error"


class ManifestError(UsageError):
    """A manifest that cannot be read; the message names the file and the problem."""


def check_input(uri: str, kind: str = "auto", files: bool = False) -> None:
    """The checks that need no Ray, made before it starts: the input exists and is a folder
    or a manifest (or, with ``files``, one audio file). (Shards and Lhotse manifests:
    ``packed.source``.)"""
    if not storage.exists(uri):
        raise ManifestError(f"input {uri} does not exist")
    if storage.is_dir(uri):
        if kind == "text":
            raise ManifestError(
                f"inputs=text needs a manifest with a `text` column; {uri} is a folder of audio"
            )
    elif not uri.lower().endswith(MANIFEST_SUFFIXES) and not files:
        raise ManifestError(
            f"input {uri} is neither a directory nor a manifest ({', '.join(MANIFEST_SUFFIXES)})"
        )


def id_from_path(path: str) -> str:
    """A clip id from its path (as the manifest wrote it, or relative to a listed folder):
    the path without its extension."""
    stem, _ = posixpath.splitext(path.split("://", 1)[-1])
    return stem.strip("/")


def row_id(given: str | None, path: str | None, text: str | None, text_only: bool = False) -> str:
    """The one id rule of every command (extract, recognize, corpus prepare): the row's own
    ``id``; else, for audio, its path without the extension; else (a text row, or a row
    with neither) a digest of its content: the same id on every run, so a re-run resumes."""
    if given:
        return given
    if path and not text_only:
        return id_from_path(path)
    digest = hashlib.sha1(f"{path}\x00{text}".encode()).hexdigest()[:12]
    return f"row-{digest}"


def manifest_format(uri: str) -> str:
    """``parquet``, ``json`` (JSON lines) or ``csv``: a manifest's format, by its name (the
    one rule of Ray Data's reader, the in-process one and the header reader)."""
    lower = uri.lower()
    if lower.endswith(".parquet"):
        return "parquet"
    return "json" if lower.endswith((".jsonl", ".json")) else "csv"


def csv_column_types() -> dict:
    """A CSV manifest's known columns read as strings: ids and labels stay "007"."""
    return {c: pa.string() for c in MANIFEST_COLUMNS}


def manifest_kind(uri: str, names: list[str], kind: str, has_paths) -> str:
    """``audio`` or ``text``: what a manifest's rows are. ``kind`` auto: text when it has a
    ``text`` column and no row names a file (``has_paths()``, asked only then); the column
    that kind needs is required. The one rule of Ray Data's reader and ``read_rows``."""
    if kind == "auto":
        kind = "text" if "text" in names and not has_paths() else "audio"
    needed = "text" if kind == "text" else "path"
    if needed not in names:
        why = ": inputs=text embeds that column" if kind == "text" else ""
        raise ManifestError(f"manifest {uri} has no `{needed}` column (columns: {names}){why}")
    return kind


def header_names(uri: str) -> list[str]:
    """A manifest's column names, from its header alone (CSV: the first line; JSONL: the
    first row's keys; Parquet: the footer's schema)."""
    return list(header(uri)[0])


def first_path(uri: str) -> str | None:
    """The first row's ``path`` (read with the header: a prepared manifest of shard
    addresses is told from one of files by it)."""
    path = header(uri)[1].get("path")
    return str(path) if path not in (None, "") else None


def header(uri: str) -> tuple[list[str], dict]:
    """A manifest's column names and its first row (CSV: its first block; JSONL: its first
    line; Parquet: the footer and the first row's ``path``), never the whole file."""
    import json

    import pyarrow.csv as pacsv

    fs, path = storage.filesystem(uri)
    form = manifest_format(uri)
    try:
        if form == "parquet":
            with fs.open_input_file(path) as f:
                pf = pq.ParquetFile(f)
                names = list(pf.schema_arrow.names)
                if "path" not in names or not pf.metadata.num_rows:
                    return names, {}
                first = next(pf.iter_batches(batch_size=1, columns=["path"]))
                return names, first.to_pylist()[0]
        with fs.open_input_stream(path) as f:
            if form == "json":
                head = b""
                while b"\n" not in head.lstrip() and len(head) < HEADER_BYTES:
                    chunk = f.read(65536)
                    if not chunk:
                        break
                    head += chunk
                line = head.lstrip().split(b"\n", 1)[0]
                row = json.loads(line) if line.strip() else {}
                return list(row), row if isinstance(row, dict) else {}
            options = pacsv.ConvertOptions(column_types=csv_column_types())
            reader = pacsv.open_csv(f, convert_options=options)
            batch = next(iter(reader), None)
            rows = batch.to_pylist() if batch is not None else []
            return list(reader.schema.names), rows[0] if rows else {}
    except (OSError, ValueError, pa.ArrowInvalid) as err:
        raise ManifestError(f"cannot read manifest {uri}: {err}") from None


def read_table(uri: str) -> pa.Table:
    """A CSV / JSONL / Parquet manifest read whole in this process (``read_rows``); ids
    and labels stay strings ("007")."""
    import io

    import pyarrow.csv as pacsv
    import pyarrow.json as pajson

    data = storage.read_bytes(uri)
    form = manifest_format(uri)
    try:
        if form == "parquet":
            return pq.read_table(io.BytesIO(data))
        if form == "json":
            return pajson.read_json(io.BytesIO(data))
        options = pacsv.ConvertOptions(column_types=csv_column_types())
        return pacsv.read_csv(io.BytesIO(data), convert_options=options)
    except (pa.ArrowInvalid, OSError) as err:
        raise ManifestError(f"cannot read manifest {uri}: {err}") from None
