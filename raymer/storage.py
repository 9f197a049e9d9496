"""URI -> filesystem. The one module that knows about ``s3://`` and ``pyarrow.fs``.

Local paths and ``file://`` URIs map to the local filesystem; ``s3://bucket/key`` maps to
pyarrow's S3 filesystem with credentials from the standard AWS chain (environment,
``~/.aws/credentials``, instance roles). S3-compatible stores (MinIO, moto, Ceph) are
reached by setting ``AWS_ENDPOINT_URL`` (or ``RAYMER_S3_ENDPOINT``).
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
import posixpath
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from raymer.errors import UsageError

if TYPE_CHECKING:
    import pyarrow.fs as pafs
# pyarrow is imported where a filesystem is asked for: reading a local audio file (the
# library, a replica, the portable runtime) needs none of it (27 MB a process)

AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a", ".webm", ".aac", ".wma")


def is_remote(uri: str) -> bool:
    return "://" in uri and not uri.startswith("file://")


def s3_endpoint() -> str | None:
    """Endpoint override for S3-compatible stores, from the environment."""
    return os.environ.get("RAYMER_S3_ENDPOINT") or os.environ.get("AWS_ENDPOINT_URL")


@functools.lru_cache(maxsize=8)
def _s3_filesystem(endpoint: str | None, region: str) -> pafs.S3FileSystem:
    import pyarrow.fs as pafs

    kwargs: dict = {"region": region}
    if endpoint:
        scheme, _, host = endpoint.partition("://")
        kwargs.update(endpoint_override=host or scheme, scheme=scheme if host else "https")
    return pafs.S3FileSystem(**kwargs)


def filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
    """Return ``(filesystem, path inside it)`` for a local path or URI."""
    import pyarrow.fs as pafs

    if uri.startswith("s3://"):
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
        return _s3_filesystem(s3_endpoint(), region), uri[len("s3://") :].rstrip("/")
    return pafs.LocalFileSystem(), local_path(uri)


def local_path(uri: str) -> str:
    """The absolute path of a local path or ``file://`` URI (any other scheme refused)."""
    if is_remote(uri):
        scheme = uri.split("://", 1)[0]
        raise UsageError(f"unsupported URI scheme {scheme!r} in {uri!r}; use a local path or s3://")
    if uri.startswith("file://"):
        uri = uri[len("file://") :]
    return str(Path(uri).expanduser().absolute())


class _Nameless(io.BufferedReader):
    """A local file read without its name: a demuxer given it probes its bytes and never
    guesses from the name's extension (a text file called notes.flac is not FLAC), as it
    does with pyarrow's files."""

    name = "<none>"  # what PyAV calls a file-like object without a name


def open_input(uri: str) -> BinaryIO:
    """A seekable binary file to read: a local one opened as Python opens files, an S3
    object through pyarrow (ranged reads)."""
    if not uri.startswith("s3://"):
        return _Nameless(io.FileIO(local_path(uri), "r"))
    fs, path = filesystem(uri)
    return fs.open_input_file(path)


def absolute(uri: str) -> str:
    """A local path made absolute (Ray workers run in other folders); URIs as they are."""
    if is_remote(uri):
        return uri
    if uri.startswith("file://"):
        uri = uri[len("file://") :]
    return str(Path(uri).expanduser().absolute())


def join(base: str, *parts: str) -> str:
    """Join path parts onto a local path or URI."""
    if is_remote(base):
        return posixpath.join(base.rstrip("/"), *parts)
    return str(Path(base).joinpath(*parts))


def resolve_relative(path: str, base_dir: str) -> str:
    """A manifest's relative ``path`` resolves against the manifest's folder."""
    if is_remote(path) or path.startswith("file://") or Path(path).is_absolute():
        return path
    return join(base_dir, path)


def parent(uri: str) -> str:
    if is_remote(uri):
        scheme, rest = uri.split("://", 1)
        return f"{scheme}://{posixpath.dirname(rest.rstrip('/'))}"
    return str(Path(uri).expanduser().absolute().parent)


def file_size(uri: str) -> int:
    """A file's size in bytes before it is read (a local one that is not there: ``OSError``;
    an S3 key that is not there: 0, and reading it fails)."""
    if not uri.startswith("s3://"):
        return os.stat(local_path(uri)).st_size
    fs, path = filesystem(uri)
    return fs.get_file_info(path).size or 0


def read_bytes(uri: str) -> bytes:
    if not uri.startswith("s3://"):
        return Path(local_path(uri)).read_bytes()
    fs, path = filesystem(uri)
    with fs.open_input_stream(path) as stream:  # one GET (a random-access file asks its size first)
        return stream.read()


def partial_of(name: str) -> str | None:
    """The file a leftover of ``write_bytes`` (a crash between write and rename) was to
    become, or None when ``name`` is not such a leftover."""
    if not (name.startswith(".") and name.endswith(".tmp")):
        return None
    target, dot, _ = name[1:-4].rpartition(".")
    return target if dot and target else None


def write_bytes(uri: str, data: bytes) -> None:
    """Write a whole file, never a part of one: locally to a temporary name in the same
    folder, flushed, then renamed over ``uri`` (a crash or a full disk leaves the old file or
    none, never half of the new one); on s3:// an object appears only once its upload
    completes."""
    fs, path = filesystem(uri)
    fs.create_dir(posixpath.dirname(path), recursive=True)
    if is_remote(uri):
        with fs.open_output_stream(path) as stream:
            stream.write(data)
        return
    with _written(path, data) as tmp:
        os.replace(tmp, path)


def write_table(uri: str, table) -> None:
    """A pyarrow table as a Parquet file, written whole (``write_bytes``): two writers of
    the same name never leave a mix of both."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    write_bytes(uri, sink.getvalue().to_pybytes())


def create_exclusive(uri: str, data: bytes) -> None:
    """Write a whole file only if none is there (else ``FileExistsError``), atomically: two
    writers racing never both win. Locally a hard link of a written temporary file; on
    s3:// a conditional PUT (``If-None-Match: *``, through s3fs)."""
    fs, path = filesystem(uri)
    fs.create_dir(posixpath.dirname(path), recursive=True)
    if is_remote(uri):
        import errno

        try:
            _s3fs().pipe_file(path, data, mode="create")
        except FileExistsError:
            raise
        except OSError as err:  # some s3fs versions: 412 as EINVAL
            if err.errno == errno.EINVAL or "Precondition" in str(err):
                raise FileExistsError(uri) from err
            raise
        return
    with _written(path, data) as tmp:
        os.link(tmp, path)  # fails if the file exists: the exclusive step


@contextlib.contextmanager
def _written(path: str, data: bytes):
    """``data`` in a temporary file beside ``path`` (named so ``partial_of`` knows it),
    flushed to disk; removed on leaving (after a rename there is nothing left to remove)."""
    folder, name = os.path.split(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        yield tmp
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def _s3fs():
    """s3fs for what pyarrow's S3 filesystem cannot do (conditional writes)."""
    import s3fs

    endpoint = s3_endpoint()
    return s3fs.S3FileSystem(
        client_kwargs={"endpoint_url": endpoint} if endpoint else {},
        skip_instance_cache=True,
    )


def exists(uri: str) -> bool:
    if not uri.startswith("s3://"):
        return os.path.exists(local_path(uri))
    import pyarrow.fs as pafs

    fs, path = filesystem(uri)
    return fs.get_file_info(path).type != pafs.FileType.NotFound


def is_dir(uri: str) -> bool:
    if not uri.startswith("s3://"):
        return os.path.isdir(local_path(uri))
    import pyarrow.fs as pafs

    fs, path = filesystem(uri)
    return fs.get_file_info(path).type == pafs.FileType.Directory


def makedirs(uri: str) -> None:
    fs, path = filesystem(uri)
    fs.create_dir(path, recursive=True)


def list_files(uri: str, suffixes: tuple[str, ...] = ()) -> list[str]:
    """Every file under ``uri`` (recursively) whose name ends with one of ``suffixes``."""
    return sorted(file_sizes(uri, suffixes))


def file_sizes(uri: str, suffixes: tuple[str, ...] = ()) -> dict[str, int]:
    """``list_files``'s files with their sizes in bytes, from the one listing."""
    import pyarrow.fs as pafs

    fs, path = filesystem(uri)
    infos = fs.get_file_info(pafs.FileSelector(path, recursive=True, allow_not_found=True))
    prefix = "s3://" if uri.startswith("s3://") else ""
    return {
        prefix + info.path: info.size or 0
        for info in infos
        if info.type == pafs.FileType.File
        and (not suffixes or info.path.lower().endswith(suffixes))
        and not posixpath.basename(info.path).startswith(".")
    }


def delete_file(uri: str) -> None:
    fs, path = filesystem(uri)
    fs.delete_file(path)


def delete_dir(uri: str) -> None:
    """Remove a folder and everything under it (nothing when it is not there)."""
    import pyarrow.fs as pafs

    fs, path = filesystem(uri)
    if fs.get_file_info(path).type == pafs.FileType.Directory:
        fs.delete_dir(path)


def copy_tree(src: str, dst: str) -> int:
    """Copy a file or a folder (recursively) between local paths and s3:// URIs; returns the
    number of files copied."""
    import pyarrow.fs as pafs

    src_fs, src_path = filesystem(src)
    dst_fs, dst_path = filesystem(dst)
    info = src_fs.get_file_info(src_path)
    if info.type == pafs.FileType.NotFound:
        raise FileNotFoundError(f"{src} does not exist")
    if info.type == pafs.FileType.File:
        dst_fs.create_dir(posixpath.dirname(dst_path), recursive=True)
        pafs.copy_files(src_path, dst_path, src_fs, dst_fs)
        return 1
    infos = src_fs.get_file_info(pafs.FileSelector(src_path, recursive=True))
    count = sum(i.type == pafs.FileType.File for i in infos)
    dst_fs.create_dir(dst_path, recursive=True)
    pafs.copy_files(src_path, dst_path, src_fs, dst_fs)
    return count
