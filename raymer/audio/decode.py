"""The one decoder (``open_audio``, ``decode_audio``) and its guard (the settings record
``raymer.config.DecodeConfig``).

Every format (WAV, FLAC, OGG/Vorbis and Opus, MP3, WebM, M4A, ...) is decoded by FFmpeg
through PyAV, which faster-whisper already depends on, and resampled to 16 kHz mono by one
streaming resampler (FFmpeg's swresample): ``raymer extract``, ``recognize``, ``serve``,
fine-tuning and the library all make their model inputs here, so one recording gives the
same samples whichever way it comes in. Memory per file is one block, whatever its length
or sample rate.
"""

from __future__ import annotations

import io
import itertools
import math
import os
import re
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import BinaryIO

import numpy as np

from raymer.config.parts import DecodeConfig
from raymer.errors import AudioError, AudioTooLarge  # noqa: F401 (raised here, imported from here)

SAMPLE_RATE = 16_000
BLOCK_S = 10.0  # seconds decoded between two checks of the limits

UNLIMITED = DecodeConfig(
    max_duration_s=math.inf,
    max_file_mb=math.inf,
    max_channels=1 << 16,
    decode_timeout_s=math.inf,
    max_decoded_mb=math.inf,
)

_KINDS = {
    stat.S_IFDIR: "a directory",
    stat.S_IFIFO: "a named pipe (FIFO)",
    stat.S_IFSOCK: "a socket",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
}


def check_file(uri: str, limits: DecodeConfig) -> int:
    """Before a read: ``uri`` must be a regular file within ``max_file_mb``; returns its size.
    (Opening a FIFO or a device blocks or never ends, so they are refused from ``stat``.)"""
    from raymer import storage

    if storage.is_remote(uri):
        import pyarrow.fs as pafs

        fs, path = storage.filesystem(uri)
        info = fs.get_file_info(path)
        if info.type == pafs.FileType.NotFound:
            raise FileNotFoundError(uri)
        if info.type != pafs.FileType.File:
            raise AudioError("not a file (a directory or prefix)")
        size = int(info.size or 0)
    else:
        st = os.stat(storage.local_path(uri))  # follows links, as open() would
        if not stat.S_ISREG(st.st_mode):
            kind = _KINDS.get(stat.S_IFMT(st.st_mode), "not a regular file")
            raise AudioError(f"not a regular file: it is {kind}")
        size = st.st_size
    limits.check_size(size)
    return size


Source = str | os.PathLike | bytes | bytearray | memoryview | BinaryIO


def open_audio(
    source: Source,
    limits: DecodeConfig | None = None,
    chunk_s: float = BLOCK_S,
    channel: int | None = None,
    span: tuple[float, float] | None = None,
):
    """The one decoder: ``source`` (a path or URI, encoded bytes, or a readable binary
    stream) -> an ``AudioStream`` of 16 kHz mono float32 blocks of about ``chunk_s``
    seconds, through one resampler (FFmpeg's, by PyAV), within ``limits``: the channels
    mixed, or only ``channel`` (0-based; one a file does not have is an ``AudioError``
    from its header); the whole of it, or only ``span`` (start, duration in seconds: a
    segment of a long recording, reached by seeking, the limits applied to the span; one
    that runs past the header's end is an ``AudioError``).

    Every limit is checked before the work it protects: a path's kind and size before it is
    opened (``check_file``), bytes' size before anything, a WAV's data size against the
    file's, then the header's sample rate, channels and duration before any decoding, and
    while decoding the decoded length and the time. Use it as a context manager."""
    limits = limits or DecodeConfig()
    if isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
        limits.check_size(len(data))
        _check_wav_length(data[:_HEAD], len(data))
        return AudioStream(io.BytesIO(data), limits, chunk_s, channel=channel, span=span)
    if isinstance(source, str | os.PathLike):
        file = _open_file(os.fspath(source), limits)
        return AudioStream(file, limits, chunk_s, owned=True, channel=channel, span=span)
    return AudioStream(source, limits, chunk_s, channel=channel, span=span)


def decode_audio(
    source: Source,
    limits: DecodeConfig | None = None,
    channel: int | None = None,
    span: tuple[float, float] | None = None,
) -> np.ndarray:
    """A whole clip: ``open_audio``'s blocks joined (16 kHz mono float32 in [-1, 1]; its
    channels mixed, or only ``channel``; all of it, or its ``span``)."""
    with open_audio(source, limits, channel=channel, span=span) as stream:
        return stream.read()


_HEAD = 65_536  # bytes of a file read to check a WAV's chunk sizes
SPAN_GRACE_S = 0.1  # how far a span may run past the audio's end (a manifest's rounding)


def _span_length(span: tuple[float, float], duration: float | None) -> float:
    """A span's length, checked against the header's (``duration``: None where it has none):
    one that starts or ends past the audio's end is refused (``SPAN_GRACE_S``'s grace: the
    rounding of a manifest's times)."""
    start, length = span
    if start < 0 or length <= 0:
        raise AudioError(f"the span ({start:g} s, {length:g} s) is not a span of the audio")
    if duration is not None and start + length > duration + SPAN_GRACE_S:
        raise AudioError(
            f"the span {start:.2f}-{start + length:.2f} s runs past the audio's end "
            f"({duration:.2f} s)"
        )
    return length


_FETCH_WHOLE = 64 * 1024 * 1024  # a remote file up to this size is fetched in one request


def _open_file(uri: str, limits: DecodeConfig) -> BinaryIO:
    from raymer import storage

    size = check_file(uri, limits)  # a FIFO, a device or a huge file: never opened
    if storage.is_remote(uri) and size <= _FETCH_WHOLE:
        # one GET, where FFmpeg's small reads would each be a ranged request
        data = storage.read_bytes(uri)
        _check_wav_length(data[:_HEAD], len(data))
        return io.BytesIO(data)
    handle = storage.open_input(uri)
    try:
        _check_wav_length(handle.read(_HEAD), size)
        handle.seek(0)
    except BaseException:
        handle.close()
        raise
    return handle


# The FFmpeg demuxers a source may be opened with: audio containers only. Never a playlist
# or a concatenation (hls, concat, ...) whose entries name other files or URLs to open.
DEMUXERS = ",".join(
    ["wav", "w64", "flac", "mp3", "ogg", "matroska", "webm", "mov", "mp4", "m4a", "aac"]
    + ["aiff", "caf", "au", "amr", "wv", "ape", "asf", "opus"]
)


class AudioStream:
    """An opened audio source: ``duration_s`` (the header's, None where it has none), then
    16 kHz mono float32 blocks when iterated (``read`` joins them). The header was checked
    against the limits when it opened; decoding stops once the decoded audio passes
    ``max_duration_s`` (a header may lie) or the time spent decoding (not the time the
    consumer holds a block) passes ``timeout_s``."""

    def __init__(
        self,
        file: BinaryIO,
        limits: DecodeConfig,
        chunk_s: float,
        owned: bool = False,
        channel: int | None = None,
        span: tuple[float, float] | None = None,
    ) -> None:
        import av

        self.limits, self.chunk_s, self.channel, self.span = limits, chunk_s, channel, span
        self._first_t: float | None = None  # the time of the first frame decoded
        self._file = file if owned else None
        try:
            self.container = av.open(
                file, mode="r", metadata_errors="ignore", options={"format_whitelist": DEMUXERS}
            )
        except Exception as err:
            self._close_file()
            raise AudioError(
                f"not a readable audio file (ffmpeg: {_first_line(err)}; audio containers "
                "only: WAV, FLAC, MP3, OGG/Opus, WebM/Matroska, MP4/M4A, AAC, AIFF, CAF, WMA...)"
            ) from None
        try:
            if not self.container.streams.audio:
                raise AudioError("the file has no audio stream")
            self.sample_rate, self.channels, self.duration_s = av_header(self.container)
            if span is not None:
                self.duration_s = _span_length(span, self.duration_s)
            limits.check_header(self.sample_rate, self.channels, self.duration_s)
            if channel is not None and not 0 <= channel < self.channels:
                raise AudioError(f"channel {channel}: the audio has {self.channels} channel(s)")
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> AudioStream:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.container.close()
        self._close_file()

    def _close_file(self) -> None:
        if self._file is not None:
            self._file.close()

    def __iter__(self) -> Iterator[np.ndarray]:
        if self.span is None:
            yield from self._blocks()
            return
        start, length = self.span
        if start > 0:  # back to the frame at or before it (a container's time base: us)
            self.container.seek(int(start * 1_000_000), backward=True, any_frame=False)
        skip, left = None, round(length * SAMPLE_RATE)
        for block in self._blocks():
            if skip is None:  # where the decoding began, from the first frame's time
                skip = max(0, round((start - (self._first_t or 0.0)) * SAMPLE_RATE))
            cut = min(skip, block.size)
            block, skip = block[cut : cut + left], skip - cut
            left -= block.size
            if block.size:
                yield block
            if left <= 0:
                return

    def _blocks(self) -> Iterator[np.ndarray]:
        import av

        chunk_s = min(self.chunk_s, self.span[1]) if self.span else self.chunk_s
        want = max(1, int(chunk_s * SAMPLE_RATE))
        pending, held, total, spent = [], 0, 0, 0.0
        if self.channel is None:  # the channels mixed to one
            resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
        else:  # every channel resampled, planar: one of them kept
            layout = self.container.streams.audio[0].layout.name
            resampler = av.AudioResampler(format="fltp", layout=layout, rate=SAMPLE_RATE)
        resumed = time.monotonic()
        for frame in itertools.chain(self._frames(), [None]):
            for out in resampler.resample(frame):
                planes = out.to_ndarray()
                block = planes.reshape(-1) if self.channel is None else planes[self.channel]
                block = np.ascontiguousarray(block, dtype=np.float32)
                if not np.isfinite(block).all():
                    raise AudioError("the audio holds NaN or infinite samples")
                pending.append(block)
                held += block.size
            now = time.monotonic()
            spent, resumed = spent + now - resumed, now
            self.limits.check_progress((total + held) / SAMPLE_RATE - self._preroll_s(), spent)
            if held >= want or (frame is None and held):
                yield np.concatenate(pending)
                pending, total, held = [], total + held, 0
                resumed = time.monotonic()

    def _preroll_s(self) -> float:
        """What a span's decoding began with before the span (from the frame its seek
        reached): not counted against the limits."""
        if self.span is None or self._first_t is None:
            return 0.0
        return max(0.0, self.span[0] - self._first_t)

    def _frames(self) -> Iterator:
        try:
            for frame in self.container.decode(audio=0):
                if self._first_t is None:
                    self._first_t = frame.time if frame.time is not None else 0.0
                yield frame
        except AudioError:
            raise
        except Exception as err:
            raise AudioError(f"the audio stream is damaged: {_first_line(err)}") from None

    def read(self) -> np.ndarray:
        """The whole stream, joined; a stream that decodes to nothing is an error."""
        blocks = list(self)
        if not blocks:
            raise AudioError("the audio stream decodes to no samples")
        return np.concatenate(blocks)


@dataclass(frozen=True)
class Checked:
    """Encoded audio that decoded whole within its guard once (``check``), and its length:
    decoded again a chunk at a time where it is judged (iterate it), never held whole. What
    the service passes from its ingress to a model replica: the upload's bytes, not its
    decoded samples (an hour of speech is 230 MB decoded)."""

    data: bytes
    limits: DecodeConfig
    duration_s: float
    chunk_s: float  # decoded this many seconds at a time (``SegmentConfig.chunk_s``)
    channel_count: int = 1  # the header's
    channel: int | None = None  # iterated: only this channel (None: mixed)
    turns: tuple = ()  # a diarizer's speaker turns (``raymer.audio.turns.Turn``), if given

    @classmethod
    def check(cls, data: bytes, limits: DecodeConfig, chunk_s: float, channels=None) -> Checked:
        """Decode ``data`` through (each chunk let go), raising as ``decode_audio`` would;
        ``channels``: called with the header's channel count before any decoding (e.g.
        ``SegmentConfig.check_channels``)."""
        samples = 0
        with open_audio(data, limits, chunk_s) as stream:
            if channels is not None:
                channels(stream.channels)
            for block in stream:
                samples += block.size
        if not samples:
            raise AudioError("the audio stream decodes to no samples")
        return cls(data, limits, samples / SAMPLE_RATE, chunk_s, stream.channels)

    def side(self, channel: int) -> Checked:
        """The same audio, iterated one channel at a time."""
        return replace(self, channel=channel)

    def __iter__(self) -> Iterator[np.ndarray]:
        with open_audio(self.data, self.limits, self.chunk_s, self.channel) as stream:
            yield from stream


def _first_line(error: Exception) -> str:
    text = str(error).strip().splitlines()
    line = text[0] if text else type(error).__name__
    line = re.sub(r"^\[Errno -?\d+\] ", "", line)
    line = re.sub(r"^Error opening <[^>]*>: ", "", line)
    return re.sub(r": '<none>'$", "", line).rstrip(".")


def _check_wav_length(head: bytes, size: int) -> None:
    """A WAV cut short: its data chunk announces more bytes than the file has (FFmpeg, like
    libsndfile, would quietly decode what is there). ``head``: the file's first bytes."""
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return
    pos = 12
    while pos + 8 <= len(head):
        chunk, length = head[pos : pos + 4], int.from_bytes(head[pos + 4 : pos + 8], "little")
        if chunk == b"data":
            if length not in (0, 0xFFFFFFFF) and pos + 8 + length > size:
                have = size - pos - 8
                raise AudioError(
                    f"truncated WAV file: the header announces {length} bytes of audio, "
                    f"{have} present"
                )
            return
        pos += 8 + length + (length & 1)


def av_header(container) -> tuple[int, int, float | None]:
    """(sample rate, channels, duration or None) of a PyAV container's first audio stream."""
    stream = container.streams.audio[0]
    rate, channels = stream.rate or 0, stream.channels or 0
    if stream.duration is not None and stream.time_base is not None:
        return rate, channels, float(stream.duration * stream.time_base)
    if container.duration is not None:
        return rate, channels, container.duration / 1_000_000  # av.time_base: microseconds
    return rate, channels, None
