"""raymer.storage reads local files as Python opens them (no pyarrow for a judged clip) and
answers as pyarrow's local filesystem would."""

from __future__ import annotations

import pytest

from raymer import storage
from raymer.errors import UsageError


def test_local_reads_answer_as_pyarrow_s_filesystem_does(tmp_path):
    import pyarrow.fs as pafs

    (tmp_path / "a").mkdir()
    clip = tmp_path / "a" / "notes.flac"
    clip.write_bytes(b"not audio at all " * 100)
    local = pafs.LocalFileSystem()
    for uri in (str(clip), f"file://{clip}", str(tmp_path / "a"), str(tmp_path / "gone.wav")):
        _, path = storage.filesystem(uri)
        info = local.get_file_info(path)
        assert storage.exists(uri) == (info.type != pafs.FileType.NotFound), uri
        assert storage.is_dir(uri) == (info.type == pafs.FileType.Directory), uri
    assert storage.file_size(str(clip)) == local.get_file_info(str(clip)).size == 1700
    assert storage.read_bytes(f"file://{clip}") == clip.read_bytes()
    with storage.open_input(str(clip)) as f:  # seekable, and nameless for a demuxer
        assert f.read(3) == b"not" and f.seek(4) == 4 and f.read(5) == b"audio"
        assert f.name == "<none>" and "notes.flac" not in repr(f.name)
    with pytest.raises(FileNotFoundError):
        storage.file_size(str(tmp_path / "gone.wav"))
    with pytest.raises(UsageError, match="unsupported URI scheme 'gs'"):
        storage.open_input("gs://bucket/clip.wav")
