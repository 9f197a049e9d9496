"""A file's header, read as the one decoder reads it before decoding (``probe``): what
``raymer corpus inspect`` surveys, with every check ``open_audio`` makes before it decodes
and the same errors. A PCM WAV's and a FLAC's header are parsed from the first bytes here;
anything else by FFmpeg's demuxer, through ``open_audio`` itself."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

from raymer.audio.decode import (
    _HEAD,
    Source,
    _check_wav_length,
    _span_length,
    check_file,
    open_audio,
)
from raymer.config.parts import DecodeConfig


@dataclass(frozen=True)
class Header:
    """What an audio file's header says (``probe``): its container and codec (FFmpeg's
    names), sample rate, channels and duration (None where the header does not say)."""

    container: str
    codec: str
    sample_rate: int
    channels: int
    duration_s: float | None


def probe(source: Source, limits: DecodeConfig, span: tuple[float, float] | None = None) -> Header:
    """A file's (or encoded bytes') header, through every check ``open_audio`` makes before
    it decodes (kind and size, a WAV's length, the header's rate, channels and duration),
    raising what it raises, without decoding. A PCM WAV's and a FLAC's header are read from
    the first bytes here (FFmpeg's demuxer reads the same fields, a hundred times slower to
    open); anything else, and any header this reader is unsure of, by the demuxer itself.
    With ``span``, the span's length and checks, as ``open_audio``'s."""
    if isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
        limits.check_size(len(data))
        head, size = data[:_HEAD], len(data)
    else:
        from raymer import storage

        uri = os.fspath(source)
        size = check_file(uri, limits)
        with storage.open_input(uri) as f:
            head = f.read(_HEAD)  # one ranged read: the header, whatever the file's size
    _check_wav_length(head, size)
    found = _wav_header(head, size) or _flac_header(head)
    if found is None:
        with open_audio(source, limits, span=span) as stream:  # the demuxer's own reading
            audio = stream.container.streams.audio[0]
            return Header(
                stream.container.format.name.split(",")[0],
                audio.codec_context.name,
                stream.sample_rate,
                stream.channels,
                stream.duration_s,
            )
    if span is not None:
        found = replace(found, duration_s=_span_length(span, found.duration_s))
    limits.check_header(found.sample_rate, found.channels, found.duration_s)
    return found


_WAV_CODECS = {(1, 8): "pcm_u8", (1, 16): "pcm_s16le", (1, 24): "pcm_s24le", (1, 32): "pcm_s32le"}
_WAV_CODECS |= {(3, 32): "pcm_f32le", (3, 64): "pcm_f64le", (6, 8): "pcm_alaw", (7, 8): "pcm_mulaw"}


def _wav_header(head: bytes, size: int) -> Header | None:
    """A plain RIFF WAV's fmt and data chunks (None: not one, or not sure)."""
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    pos, fmt = 12, None
    while pos + 8 <= len(head):
        chunk, length = head[pos : pos + 4], int.from_bytes(head[pos + 4 : pos + 8], "little")
        body = head[pos + 8 : pos + 8 + length]
        if chunk == b"fmt " and len(body) >= 16:
            tag, channels, rate = (int.from_bytes(body[a:b], "little") for a, b in _FMT)
            align, bits = (int.from_bytes(body[a:b], "little") for a, b in ((12, 14), (14, 16)))
            if tag == 0xFFFE and len(body) >= 26:  # WAVE_FORMAT_EXTENSIBLE: its sub-format
                tag = int.from_bytes(body[24:26], "little")
            fmt = (_WAV_CODECS.get((tag, bits)), channels, rate, align)
        elif chunk == b"data":
            if fmt is None or fmt[0] is None or not (fmt[1] and fmt[2] and fmt[3]):
                return None
            codec, channels, rate, align = fmt
            have = size - pos - 8
            length = have if length in (0, 0xFFFFFFFF) else min(length, have)
            return Header("wav", codec, rate, channels, length // align / rate)
        pos += 8 + length + (length & 1)
    return None


_FMT = ((0, 2), (2, 4), (4, 8))  # a fmt chunk's format tag, channels, sample rate


def _flac_header(head: bytes) -> Header | None:
    """A native FLAC's STREAMINFO (None: not one; an ID3 tag first is left to FFmpeg)."""
    if len(head) < 42 or head[:4] != b"fLaC" or head[4] & 0x7F != 0:
        return None
    bits = int.from_bytes(head[18:26], "big")
    rate, channels = bits >> 44, ((bits >> 41) & 0x7) + 1
    total = bits & ((1 << 36) - 1)
    if not rate:
        return None
    return Header("flac", "flac", rate, channels, total / rate if total else None)
