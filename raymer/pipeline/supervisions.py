"""Lhotse manifests as input: a recipe's recordings (``*recordings*.jsonl.gz``: an id, its
audio ``sources``, its ``duration``) and supervisions (``*supervisions*.jsonl.gz``: a
segment of a recording, ``start`` and ``duration`` in it, its ``channel``, ``text``,
``speaker``, ``language``, ``gender`` and ``custom`` fields). Each supervision is a row,
decoded as only its span of its recording (the decoder seeks to it), with its fields as a
manifest's columns (``custom``'s among them; ``custom.emotion`` is the ``label`` where there
is no ``label``). ``--input`` names the supervisions manifest (its recordings manifest is the
one named alike, ``supervisions`` -> ``recordings``) or a folder holding one of each.

Both are read by Ray Data's text reader and joined by Ray Data on the recording's id: the
driver holds neither. A supervision of a recording the recordings do not have, one that
runs past its recording's end, or one whose recording is not a file or URL is an error row.
"""

from __future__ import annotations

import json
import posixpath

import pyarrow as pa

from raymer import storage
from raymer.audio.decode import SPAN_GRACE_S
from raymer.errors import UsageError
from raymer.pipeline.manifest import FETCH_ERROR

SPAN = ("offset_s", "span_s")  # where a supervision lies in its recording, seconds
FIELDS = ("text", "speaker", "language", "gender")
PEEK = 64  # supervisions read on the driver to learn the custom fields' names
PEEK_BYTES = 1 << 20  # ... from the manifest's first MB at most


class SupervisionsError(UsageError):
    """Lhotse manifests that cannot be used (no recordings manifest beside them)."""


def manifests(uri: str) -> tuple[str, str] | None:
    """(supervisions, recordings) manifests ``uri`` names; None when it is something else."""
    lower = uri.lower()
    if storage.is_dir(uri):
        names = [u for u in storage.list_files(uri, (".jsonl.gz", ".jsonl")) if "/" in u]
        sups = [u for u in names if "supervisions" in posixpath.basename(u)]
        recs = [u for u in names if "recordings" in posixpath.basename(u)]
        if len(sups) == 1 and len(recs) == 1:
            return sups[0], recs[0]
        return None
    if "supervisions" not in posixpath.basename(lower) or not lower.endswith(
        (".jsonl.gz", ".jsonl")
    ):
        return None
    folder, name = posixpath.split(uri)
    recs = posixpath.join(folder, name.replace("supervisions", "recordings"))
    if not storage.exists(recs):
        raise SupervisionsError(f"{uri}: no recordings manifest beside it (looked for {recs})")
    return uri, recs


def custom_fields(sups: str) -> list[str]:
    """The columns a supervisions manifest's rows carry: its fields, its custom fields (of
    its first ``PEEK`` rows), ``label`` where there is an ``emotion``, and where each lies."""
    fs, path = storage.filesystem(sups)
    names: dict[str, None] = {}
    with fs.open_input_stream(path) as stream:  # (.gz: decompressed, by its name)
        head = stream.read(PEEK_BYTES)
    for line in head.splitlines()[:PEEK]:
        try:
            row = json.loads(line)
        except ValueError:  # (a line cut by the head's end)
            break
        names |= dict.fromkeys(f for f in FIELDS if f in row)
        names |= dict.fromkeys(str(k) for k in (row.get("custom") or {}))
    if "emotion" in names:
        names["label"] = None
    return [*names, "recording_id", "channel", *SPAN]


def read(sups: str, recs: str, columns: list[str]):
    """A Ray Dataset of a row per supervision: ``id``, ``path`` (its recording's), the
    ``columns`` (text), ``fetch_error`` where it cannot be decoded."""
    import ray.data

    from raymer.runtime import READ_ARGS

    def lines(uri: str):
        fs, path = storage.filesystem(uri)
        return ray.data.read_text(path, filesystem=fs, **READ_ARGS)

    left = lines(sups).map_batches(_supervisions, batch_format="pyarrow", **READ_ARGS)
    right = lines(recs).map_batches(
        _recordings, fn_kwargs={"base": storage.parent(recs)}, batch_format="pyarrow", **READ_ARGS
    )
    joined = left.join(right, join_type="left_outer", on=("recording_id",), num_partitions=2)
    return joined.map_batches(Rows(columns, recs), batch_format="pyarrow", **READ_ARGS)


def _supervisions(table: pa.Table) -> pa.Table:
    rows = [json.loads(t) for t in table.column("text").to_pylist() if t.strip()]
    return pa.table(
        {
            "recording_id": pa.array([str(r.get("recording_id")) for r in rows], pa.string()),
            "supervision": pa.array([json.dumps(r) for r in rows], pa.string()),
        }
    )


def _recordings(table: pa.Table, base: str) -> pa.Table:
    rows = [json.loads(t) for t in table.column("text").to_pylist() if t.strip()]
    ids, paths, durations = [], [], []
    for r in rows:
        sources = [s for s in r.get("sources") or [] if s.get("type") in ("file", "url")]
        ids.append(str(r.get("id")))
        paths.append(storage.resolve_relative(sources[0]["source"], base) if sources else None)
        durations.append(float(r["duration"]) if r.get("duration") is not None else None)
    return pa.table(
        {
            "recording_id": pa.array(ids, pa.string()),
            "recording_path": pa.array(paths, pa.string()),
            "recording_s": pa.array(durations, pa.float64()),
        }
    )


class Rows:
    """Joined supervisions -> input rows: ``id``, ``path``, the ``columns``, and why a
    supervision cannot be decoded (``fetch_error``) where it cannot."""

    def __init__(self, columns: list[str], recs: str) -> None:
        self.columns, self.recs = columns, recs

    def __call__(self, table: pa.Table) -> pa.Table:
        out: dict[str, list] = {"id": [], "path": [], FETCH_ERROR: []}
        out |= {c: [] for c in self.columns}
        for sup, path, length in zip(
            table.column("supervision").to_pylist(),
            table.column("recording_path").to_pylist(),
            table.column("recording_s").to_pylist(),
            strict=True,
        ):
            row = self._row(json.loads(sup), path, length)
            for key in out:
                out[key].append(row.get(key))
        return pa.table({k: pa.array(v, pa.string()) for k, v in out.items()})

    def _row(self, sup: dict, path: str | None, length: float | None) -> dict:
        custom = {str(k): v for k, v in (sup.get("custom") or {}).items()}
        row = {k: _text(v) for k, v in {**custom, **{f: sup.get(f) for f in FIELDS}}.items()}
        row.setdefault("label", _text(custom.get("emotion")))
        start, span = float(sup.get("start") or 0.0), float(sup.get("duration") or 0.0)
        rid = str(sup.get("recording_id"))
        row |= {"id": str(sup.get("id")), "path": path or f"{self.recs}#{rid}"}
        row |= {"recording_id": rid, "offset_s": f"{start:.6g}", "span_s": f"{span:.6g}"}
        if sup.get("channel") is not None and not isinstance(sup["channel"], list):
            row["channel"] = str(sup["channel"])
        if path is None:
            row[FETCH_ERROR] = f"no recording {rid} (a file or URL) in {self.recs}"
        else:
            row[FETCH_ERROR] = past_end(row["id"], (start, span), length, rid)
        return row


def past_end(rid: str, span: tuple[float, float], length: float | None, recording: str):
    """Why a supervision's span runs past its recording's end (of ``length`` s), or None."""
    start, span_s = span
    if length is None or start + span_s <= length + SPAN_GRACE_S:
        return None
    return (
        f"supervision {rid} ({start:.2f}-{start + span_s:.2f} s) runs past the end of "
        f"recording {recording} ({length:.2f} s)"
    )


def _text(value) -> str | None:
    if value is None or value == "":
        return None
    return value if isinstance(value, str) else json.dumps(value)


def channel_of(row: dict) -> int | None:
    """The channel a row names (a supervision's, or a features row's of a split call), or
    None where it names none (None, "", or NaN: a batch's missing value)."""
    channel = row.get("channel")
    if channel is None or channel == "" or channel != channel:
        return None
    return int(channel)


def span_of(row: dict) -> tuple[tuple[float, float] | None, int | None]:
    """A row's span of its recording (a supervision's) and its channel, or (None, None)."""
    start, span = row.get("offset_s"), row.get("span_s")
    if start in (None, "") or span in (None, ""):
        return None, None
    return (float(start), float(span)), channel_of(row)
