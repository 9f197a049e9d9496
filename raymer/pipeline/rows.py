"""The rows and errors every pipeline stage shares (``extract``'s and ``recognize``'s):
column batches <-> row dicts, a read error in one sentence, error parts written where a
row fails and merged at the end."""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from raymer import storage
from raymer.audio.turns import TurnsError
from raymer.contract.schema import ERRORS_SCHEMA
from raymer.errors import AudioError

Batch = dict[str, np.ndarray]


def to_rows(batch: Batch) -> list[dict[str, Any]]:
    """Column batch -> row dicts; a missing value (None, or NaN in an all-null column) is None."""
    keys = list(batch)
    n = len(batch[keys[0]]) if keys else 0
    return [{k: _value(batch[k][i]) for k in keys} for i in range(n)]


def _value(v: Any) -> Any:
    if isinstance(v, float | np.floating) and np.isnan(v):
        return None
    return v


def floats(data: bytes) -> np.ndarray:
    """Samples or frames as they cross stages (raw float32 bytes: a binary column holds
    ragged arrays and failed rows alike) -> an array (no copy)."""
    return np.frombuffer(data, dtype=np.float32)


def to_columns(rows: list[dict[str, Any]], keys: list[str]) -> Batch:
    out = {}
    for k in keys:
        column = np.empty(len(rows), dtype=object)
        column[:] = [r.get(k) for r in rows]
        out[k] = column
    return out


def row_columns(rows: list[dict[str, Any]]) -> Batch:
    """``to_columns`` with every key that any row has, in first-seen order."""
    return to_columns(rows, list(dict.fromkeys(k for r in rows for k in r)))


NO_PATH = ("manifest", "the manifest row has no path")  # (stage, error)


def file_failure(uri: str, err: BaseException, opened: bool) -> tuple[str, str]:
    """(stage, error) of a file that failed: the one error row of ``extract`` and
    ``recognize``. Before it is opened (``opened`` False: its kind and size are checked)
    every failure is the read's; after, audio that cannot be used and a decoder's bug are
    the decode's, and an OS error (a network read) the read's."""
    if isinstance(err, TurnsError):  # its turn file's, whether or not the audio was opened
        return "turns", f"cannot use the speaker turns: {err}"
    if isinstance(err, AudioError):
        return (
            ("decode", f"cannot use this audio: {err}")
            if opened
            else ("read", f"cannot read {uri}: {err}")
        )
    if isinstance(err, OSError) or not opened:
        return "read", describe_read_error(uri, err)
    return "decode", f"decoding failed: {type(err).__name__}: {err}"


def describe_read_error(uri: str, err: BaseException) -> str:
    if isinstance(err, FileNotFoundError):
        return f"cannot read {uri}: file not found"
    if isinstance(err, PermissionError):
        return f"cannot read {uri}: permission denied"
    return (
        f"cannot read {uri}: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
    )


def write_errors(rows: list[dict], errors_uri: str, prefix: str = "part") -> None:
    """Failed rows (``id``, ``path``, ``stage``, ``error``; ``segment`` where there is one)
    -> one error part under ``errors_uri``, named by its rows and written whole: a retried
    task (or two tasks reporting the same rows) rewrites it."""
    if not rows:
        return
    table = pa.table(
        {
            "id": [str(r["id"]) for r in rows],
            "path": [str(r.get("path") or "") for r in rows],
            "stage": [r["stage"] for r in rows],
            "error": [r["error"] for r in rows],
        },
        schema=ERRORS_SCHEMA,
    )
    keys = "\x00".join(sorted(f"{r['id']}\x00{r.get('segment')}" for r in rows))
    name = f"{prefix}-{hashlib.sha1(keys.encode()).hexdigest()[:20]}.parquet"
    storage.write_table(storage.join(errors_uri, name), table)


def summarize_errors(parts: list[str], merged_uri: str) -> int:
    """Merge error parts into one Parquet file, a row group at a time; returns the rows."""
    if not parts:
        return 0
    count = 0
    fs, path = storage.filesystem(merged_uri)
    with pq.ParquetWriter(path, ERRORS_SCHEMA, filesystem=fs) as writer:
        for uri in parts:
            part_fs, part = storage.filesystem(uri)
            parquet = pq.ParquetFile(part_fs.open_input_file(part))
            for batch in parquet.iter_batches(batch_size=4096):  # bounded, whatever the part
                writer.write_batch(batch)
                count += batch.num_rows
    return count
