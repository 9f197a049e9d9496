"""Inputs whose clips are packed inside something else: shards with the audio inside
(Parquet, WebDataset tars: ``shards``, ``tars``) and Lhotse manifests, whose supervisions
are spans of recordings (``supervisions``). One place says which an input is and gives its
rows (``id``, ``path``, its columns) as a manifest's reader would; ``inputs`` maps them to
each command's rows, as it does a manifest's."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from raymer.pipeline.shards import shard_columns, shard_files, shard_rows
from raymer.pipeline.supervisions import custom_fields, manifests
from raymer.pipeline.supervisions import read as read_supervisions


@dataclass
class Packed:
    """A packed input's rows (lazy), the columns they carry, and whether their audio is in
    shards (read by ``shards.fetched`` after the resume, in shard order)."""

    rows: Any
    columns: list[str]
    sharded: bool


def packed_columns(uri: str, kind: str = "auto") -> list[str] | None:
    """The columns a packed input's rows carry (None: ``uri`` is not one)."""
    if kind == "text":
        return None
    found = manifests(uri)
    if found is not None:
        return custom_fields(found[0])
    shards = shard_files(uri)
    return shard_columns(shards) if shards is not None else None


def packed_rows(uri: str, listing_uri: str, kind: str = "auto") -> Packed | None:
    """A packed input's rows (None: ``uri`` is not one): Lhotse's supervisions joined with
    their recordings, or the shards' rows (listed under ``listing_uri``)."""
    if kind == "text":
        return None
    found = manifests(uri)
    if found is not None:
        columns = custom_fields(found[0])
        return Packed(read_supervisions(*found, columns), columns, False)
    shards = shard_files(uri)
    if shards is None:
        return None
    return Packed(shard_rows(shards, listing_uri), shard_columns(shards), True)


def check_source(uri: str, kind: str = "auto", files: bool = False) -> None:
    """``manifest.check_input``, made before Ray starts; nothing to check where ``uri``
    names a packed input (its readers say what is wrong with it)."""
    from raymer.pipeline.manifest import check_input

    if packed_columns(uri, kind) is None:
        check_input(uri, kind, files)


def describe_input(uri: str) -> str | None:
    """A packed input as a run's summary names it ("20 Parquet shards", "Lhotse
    supervisions"); None for a manifest, a folder or a file."""
    if packed_columns(uri) is None:
        return None
    if manifests(uri) is not None:
        return "Lhotse supervisions"
    shards = shard_files(uri) or []
    kind = "WebDataset" if shards and shards[0].lower().endswith(".tar") else "Parquet"
    return f"{len(shards)} {kind} shard{'s' * (len(shards) != 1)}"
