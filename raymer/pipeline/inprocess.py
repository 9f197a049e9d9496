"""An input read in this process (``read_rows``): for ``raymer corpus prepare``, which writes a
manifest from it, and tests. The same rules as the Ray Data readers of ``inputs``: the
rows are what ``ExtractRows`` makes of each input row, one per id by ``first_of``."""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa

from raymer import storage
from raymer.contract.schema import MANIFEST_COLUMNS
from raymer.pipeline.inputs import ExtractRows, _text, first_of
from raymer.pipeline.listing import LISTING_SCHEMA, ListedRows, walk
from raymer.pipeline.manifest import FETCH_ERROR, manifest_kind, read_table
from raymer.pipeline.packed import Source, source
from raymer.runtime import READ_ARGS


@dataclass
class Rows:
    """A manifest or folder read in this process (``read_rows``): for ``raymer corpus
    prepare``, which writes a manifest from it, and tests. The rows are what ``ExtractRows``
    makes of each input row, the duplicates and rows without a path (or text) are
    ``problems``: (id, path, error), as the pipeline's error rows say them."""

    rows: list[dict]
    extra_columns: list[str] = field(default_factory=list)
    problems: list[tuple[str, str, str]] = field(default_factory=list)
    text_only: bool = False


def read_rows(uri: str, kind: str = "auto") -> Rows:
    """``uri`` -> ``Rows``, by the rules of the Ray Data reader (``ExtractRows``: the id,
    the paths, the carried columns; ``first_of``: the duplicates). ``kind`` as
    ``extract_dataset``'s. A packed input's rows (their small columns; addresses as paths)
    are read by Ray Data and gathered here; a row its reader could not read (an unreadable
    shard, a sample without audio, a span past its recording) is a problem."""
    src = source(uri, kind)
    if src.packed:
        extra = [n for n in src.columns if n not in MANIFEST_COLUMNS]
        table, text_only = _packed_table(src, extra), False
    elif src.kind == "folder":
        listed = ListedRows(uri)(pa.table({"path": list(walk(uri))}, schema=LISTING_SCHEMA))
        table, extra, text_only = ExtractRows(uri, False, {})(listed), [], False
    else:
        raw = read_table(uri)
        names = raw.column_names

        def has_paths() -> bool:
            return "path" in names and any(_text(p) for p in raw.column("path").to_pylist())

        text_only = manifest_kind(uri, names, kind, has_paths) == "text"
        extra = [n for n in names if n not in MANIFEST_COLUMNS]
        table = ExtractRows(storage.parent(uri), text_only, {n: n for n in extra})(raw)
    return _checked(table, extra, text_only)


def _packed_table(src: Source, extra: list[str]) -> pa.Table:
    """A packed input's rows through ``ExtractRows`` (``extra``: its carried columns),
    gathered from Ray Data."""
    import tempfile

    from raymer.runtime import init_ray

    init_ray()
    scratch = tempfile.mkdtemp(prefix="raymer-rows-")
    try:
        rows = src.rows(storage.join(scratch, "inputs"))
        ds = rows.map_batches(
            ExtractRows("", False, {n: n for n in extra}), batch_format="pyarrow", **READ_ARGS
        )
        parts = list(ds.iter_batches(batch_size=None, batch_format="pyarrow"))
    finally:
        storage.delete_dir(scratch)
    return pa.concat_tables(parts, promote_options="permissive")


def _checked(table: pa.Table, extra: list[str], text_only: bool) -> Rows:
    out = Rows([], extra, [], text_only)
    groups: dict[str, list[dict]] = {}
    for n, row in enumerate(table.to_pylist(), start=1):
        why = row.pop(FETCH_ERROR, None)
        if why:
            out.problems.append((row["id"], row["path"] or "", why))
        elif text_only and not (row["reference_text"] or "").strip():
            out.problems.append((row["id"], "", f"manifest row {n} has no text to embed"))
        elif not text_only and not row["path"]:
            out.problems.append((row["id"], "", f"manifest row {n} has an empty path"))
        else:
            groups.setdefault(row["id"], []).append(row)
    for rid, group in groups.items():
        texts = [r["reference_text"] for r in group]
        keep, duplicates = first_of(rid, [r["path"] for r in group], texts)
        out.rows.append(group[keep])
        out.problems += [(d["id"], d["path"] or "", d["error"]) for d in duplicates]
    return out
