"""Read the input of ``raymer extract``: a manifest file or a directory of audio files.

A manifest is CSV, JSONL or Parquet with a ``path`` column (path or URI; relative paths
resolve against the manifest's folder) and optional ``id``, ``label``, ``speaker``,
``session`` and ``text`` (the reference transcript). Other columns are carried through.
A text corpus (GoEmotions) has ``text`` and no paths: its rows are texts to embed.
"""

from __future__ import annotations

import hashlib
import io
import posixpath
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq

from raymer import storage
from raymer.errors import UsageError
from raymer.schema import MANIFEST_COLUMNS

MANIFEST_SUFFIXES = (".csv", ".jsonl", ".json", ".parquet")


class ManifestError(UsageError):
    """A manifest that cannot be read; the message names the file and the problem."""


@dataclass
class Inputs:
    """Clips to process and the problems found while listing them.

    Attributes:
        rows: one dict per clip, with ``id``, ``path`` (resolved) and the manifest's columns.
        extra_columns: manifest columns beyond the known ones, carried to the output.
        problems: (id, path, error) for rows that cannot be processed (duplicate id, no path).
    """

    rows: list[dict]
    extra_columns: list[str] = field(default_factory=list)
    problems: list[tuple[str, str, str]] = field(default_factory=list)
    text_only: bool = False  # rows are texts to embed, with no audio


def read_inputs(uri: str, kind: str = "auto") -> Inputs:
    """Manifest file or directory -> ``Inputs``. ``kind``: audio (every row needs a
    ``path``), text (every row needs a ``text``; paths are ignored) or auto (text when no row
    of the manifest has a path)."""
    check_input(uri, kind)
    if storage.is_dir(uri):
        return _from_directory(uri)
    table = read_table(uri)
    if kind == "auto":
        kind = "text" if _no_paths(table) and "text" in table.column_names else "audio"
    return _from_manifest(uri, table, text_only=kind == "text")


def check_input(uri: str, kind: str = "auto", files: bool = False) -> None:
    """The checks that need no Ray, made before it starts: the input exists and is a folder
    or a manifest (or, with ``files``, one audio file)."""
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


def _no_paths(table: pa.Table) -> bool:
    if "path" not in table.column_names:
        return True
    return all(p in (None, "") for p in table.column("path").to_pylist())


def read_table(uri: str) -> pa.Table:
    """Read a CSV / JSONL / Parquet manifest into an Arrow table (every column as read)."""
    data = storage.read_bytes(uri)
    lower = uri.lower()
    try:
        if lower.endswith(".parquet"):
            return pq.read_table(io.BytesIO(data))
        if lower.endswith((".jsonl", ".json")):
            return pajson.read_json(io.BytesIO(data))
        # Ids and labels stay strings even when they look like numbers ("01", "007").
        options = pacsv.ConvertOptions(column_types={c: pa.string() for c in MANIFEST_COLUMNS})
        return pacsv.read_csv(io.BytesIO(data), convert_options=options)
    except (pa.ArrowInvalid, OSError) as err:
        raise ManifestError(f"cannot read manifest {uri}: {err}") from None


def _from_manifest(uri: str, table: pa.Table, text_only: bool = False) -> Inputs:
    """Rows of a manifest: clips (each needs a ``path``) or, ``text_only``, texts to embed
    (each needs a ``text``); ``row_id`` names each."""
    needed = "text" if text_only else "path"
    if needed not in table.column_names:
        why = ": inputs=text embeds that column" if text_only else ""
        raise ManifestError(
            f"manifest {uri} has no `{needed}` column (columns: {table.column_names}){why}"
        )
    base = storage.parent(uri)
    extra = [c for c in table.column_names if c not in MANIFEST_COLUMNS]
    rows, problems, seen = [], [], {}
    for n, record in enumerate(table.to_pylist(), start=1):
        path, text = _str_or_none(record.get("path")), _str_or_none(record.get("text"))
        rid = row_id(_str_or_none(record.get("id")), path, text, text_only)
        if text_only and (text is None or not text.strip()):
            problems.append((rid, "", f"manifest row {n} has no text to embed"))
            continue
        if not text_only and not path:
            problems.append((rid, "", f"manifest row {n} has an empty path"))
            continue
        if rid in seen:
            where = "" if text_only else path
            problems.append((rid, where, f"duplicate id: already used by manifest row {seen[rid]}"))
            continue
        seen[rid] = n
        row = {k: record.get(k) for k in extra}
        row.update(
            id=rid,
            path=(path or "") if text_only else storage.resolve_relative(path, base),
            label=_str_or_none(record.get("label")),
            speaker=_str_or_none(record.get("speaker")),
            session=_str_or_none(record.get("session")),
            reference_text=text,
        )
        rows.append(row)
    return Inputs(rows, extra, problems, text_only=text_only)


def _from_directory(uri: str) -> Inputs:
    files = storage.list_files(uri, storage.AUDIO_EXTENSIONS)
    root = uri.rstrip("/")
    if not storage.is_remote(uri):
        root = storage.filesystem(uri)[1]
    rows = []
    for path in files:
        rel = path[len(root) :].lstrip("/") if path.startswith(root) else posixpath.basename(path)
        rows.append(
            dict(
                id=id_from_path(rel),
                path=path,
                label=None,
                speaker=None,
                session=None,
                reference_text=None,
            )
        )
    return Inputs(rows)


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


def _str_or_none(value) -> str | None:
    if value is None or (isinstance(value, float) and value != value):
        return None
    text = str(value)
    return text if text != "" else None
