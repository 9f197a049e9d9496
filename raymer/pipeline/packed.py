"""What ``--input`` names, found once per run: a manifest, a folder or a file, or an input
whose clips are packed inside something else: shards with the audio inside (Parquet,
WebDataset tars: ``shards``, ``tars``), Lhotse manifests, whose supervisions are spans of
recordings (``supervisions``), or a manifest of shard addresses (as ``corpus prepare``
writes one for shards). ``source`` looks once, before Ray starts; the run's readers
(``inputs``), its fetch stage and its summary line are given the ``Source`` it found."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from raymer import storage
from raymer.pipeline.shards import is_address, shard_columns, shard_files, shard_rows
from raymer.pipeline.supervisions import custom_fields, manifests
from raymer.pipeline.supervisions import read as read_supervisions
from raymer.pipeline.tars import is_tar


@dataclass(frozen=True)
class Source:
    """An input as found (``source``): ``kind`` one of ``parquet``, ``webdataset``,
    ``lhotse`` (packed: its rows come from ``rows``), ``addresses`` (a manifest whose paths
    are clips' addresses in shards), ``manifest``, ``folder`` or ``file``; ``shards`` and
    ``manifests`` where it has them; ``columns``: what a packed input's rows carry."""

    uri: str
    kind: str
    shards: tuple[str, ...] = ()
    manifests: tuple[str, str] | None = None
    columns: tuple[str, ...] = ()

    @property
    def packed(self) -> bool:
        return self.kind in ("parquet", "webdataset", "lhotse")

    @property
    def sharded(self) -> bool:
        """Whether rows get their audio from shards (``shards.fetched``) before decoding."""
        return self.kind in ("parquet", "webdataset", "addresses")

    def describe(self) -> str | None:
        """As a run's summary names it ("20 Parquet shards", "Lhotse supervisions"); None
        for a manifest, a folder or a file."""
        if self.kind == "lhotse":
            return "Lhotse supervisions"
        if self.kind in ("parquet", "webdataset"):
            n = len(self.shards)
            name = "WebDataset" if self.kind == "webdataset" else "Parquet"
            return f"{n} {name} shard{'s' * (n != 1)}"
        return "a manifest of shard addresses" if self.kind == "addresses" else None

    def rows(self, listing_uri: str) -> Any:
        """A packed input's rows, lazily (Ray Data): Lhotse's supervisions joined with their
        recordings, or the shards' rows (their small columns; listed under ``listing_uri``)."""
        if self.manifests is not None:
            return read_supervisions(*self.manifests, list(self.columns))
        return shard_rows(list(self.shards), listing_uri)


def source(uri: str, kind: str = "auto", files: bool = False) -> Source:
    """What ``uri`` is, looked at once (a folder's listing, a shard's footer, a manifest's
    header and first row), before Ray starts: a wrong path fails here, at once. ``kind``
    text: a manifest of texts, never a packed input; ``files``: one audio file may be given
    (recognize, inspect), else a folder or a manifest is needed (extract)."""
    from raymer.pipeline.manifest import MANIFEST_SUFFIXES, check_input, first_path

    if kind != "text":
        found = manifests(uri)
        if found is not None:
            return Source(uri, "lhotse", manifests=found, columns=tuple(custom_fields(found[0])))
        shards = shard_files(uri)
        if shards is not None:
            name = "webdataset" if is_tar(shards[0]) else "parquet"
            return Source(uri, name, tuple(shards), columns=tuple(shard_columns(shards)))
    check_input(uri, kind, files)
    if storage.is_dir(uri):
        return Source(uri, "folder")
    if not uri.lower().endswith(MANIFEST_SUFFIXES):
        return Source(uri, "file")
    return Source(uri, "addresses" if is_address(first_path(uri)) else "manifest")
