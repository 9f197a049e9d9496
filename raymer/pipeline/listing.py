"""A directory input, listed one folder at a time into Parquet parts of at most
``LISTING_ROWS`` paths (the driver never holds the listing), and the rows a listing gives:
``id`` (the path relative to the listed folder, without the extension) and ``path``."""

from __future__ import annotations

import posixpath
import uuid
from collections.abc import Iterator

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from raymer import storage
from raymer.pipeline.manifest import id_from_path

LISTING_ROWS = 50_000  # paths per listing part: bounds the driver's memory while listing
LISTING_SCHEMA = pa.schema([("path", pa.string())])


def walk(uri: str) -> Iterator[str]:
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


def write_listing(paths: Iterator[str], listing_uri: str) -> tuple[pafs.FileSystem, str]:
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
            count = write_part(fs, root, part, count)
            part = []
    if part or not count:
        write_part(fs, root, part, count)
    return fs, root


def write_part(fs: pafs.FileSystem, root: str, paths: list[str], count: int) -> int:
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
