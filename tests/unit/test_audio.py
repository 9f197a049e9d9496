import io
import struct
import subprocess
import sys
import time

import av
import numpy as np
import pytest
import soundfile

from raymer.audio.decode import (
    AudioError,
    AudioTooLarge,
    check_file,
    decode_audio,
    open_audio,
)
from raymer.audio.frames import pool_frames, split_windows
from raymer.config import DecodeConfig

RATE = 16_000


def _sine(rate: int, seconds: float, channels: int = 1) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    x = (0.3 * np.sin(2 * np.pi * 300 * t)).astype(np.float32)
    return np.stack([x] * channels, axis=1) if channels > 1 else x


def _encode_sf(samples, rate, fmt, subtype=None) -> bytes:
    buf = io.BytesIO()
    soundfile.write(buf, samples, rate, format=fmt, subtype=subtype)
    return buf.getvalue()


def _encode_av(samples: np.ndarray, rate: int, container: str, codec: str) -> bytes:
    buf = io.BytesIO()
    with av.open(buf, mode="w", format=container) as out:
        stream = out.add_stream(codec, rate=rate, layout="mono")
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="flt", layout="mono")
        frame.sample_rate = rate
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buf.getvalue()


@pytest.mark.parametrize(
    "fmt,subtype", [("WAV", "PCM_16"), ("FLAC", None), ("OGG", "VORBIS"), ("MP3", "MPEG_LAYER_III")]
)
def test_soundfile_formats_decode_to_16k_mono(fmt, subtype):
    data = _encode_sf(_sine(44_100, 1.0, channels=2), 44_100, fmt, subtype)
    audio = decode_audio(data)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert abs(len(audio) - 16_000) < 1_200  # codecs add a little priming
    assert 0.1 < np.abs(audio).max() <= 1.0


def test_webm_opus_goes_through_ffmpeg():
    audio = decode_audio(_encode_av(_sine(48_000, 1.0), 48_000, "webm", "libopus"))
    assert abs(len(audio) - 16_000) < 1_600
    assert np.abs(audio).max() > 0.1


def test_resampled_tone_keeps_its_frequency():
    audio = decode_audio(_encode_sf(_sine(22_050, 1.0), 22_050, "WAV"))
    spectrum = np.abs(np.fft.rfft(audio))
    peak_hz = np.argmax(spectrum) * 16_000 / len(audio)
    assert abs(peak_hz - 300) < 3


def test_empty_file_is_refused():
    with pytest.raises(AudioError, match="empty"):
        decode_audio(b"")


def test_garbage_is_refused_with_the_decoders_reason():
    with pytest.raises(AudioError, match=r"not a readable audio file \(ffmpeg: .+\)"):
        decode_audio(b"this is not audio at all" * 20)


def test_truncated_wav_is_refused():
    data = _encode_sf(_sine(16_000, 1.0), 16_000, "WAV")
    with pytest.raises(AudioError, match="truncated|no audio"):
        decode_audio(data[: len(data) // 2])


def test_header_only_wav_is_refused():
    data = _encode_sf(np.zeros(0, np.float32), 16_000, "WAV")
    with pytest.raises(AudioError):
        decode_audio(data)


def test_split_windows_and_pool_frames():
    windows = split_windows(np.zeros(16_000 * 65, np.float32))
    assert [len(w) for w in windows] == [480_000, 480_000, 80_000]
    frames = np.arange(14, dtype=np.float32).reshape(7, 2)
    pooled = pool_frames(frames, 5)
    assert pooled.shape == (2, 2)
    np.testing.assert_allclose(pooled[0], frames[:5].mean(0))
    np.testing.assert_allclose(pooled[1], frames[5:].mean(0))


# The decode guard: every refusal comes from the file's kind, size or header, before a decode.


@pytest.mark.parametrize(
    "name,match",
    [
        ("hostile-bomb", r"lasts 7,200.0 s \(its header says\), over decode.max_duration_s=600"),
        ("hostile-sparse", "sample rate of 200 Hz, below decode.min_sample_rate=4000"),
    ],
)
def test_bombs_are_refused_from_their_header_within_a_second(hostile_files, name, match):
    data = hostile_files[name].read_bytes()
    started = time.perf_counter()
    with pytest.raises(AudioError, match=match):
        decode_audio(data, limits=DecodeConfig(max_duration_s=600))
    assert time.perf_counter() - started < 1.0


@pytest.mark.parametrize(
    "name,match", [("hostile-fifo", "a named pipe"), ("hostile-dir", "a directory")]
)
def test_files_that_are_not_regular_are_refused_before_they_are_opened(hostile_files, name, match):
    with pytest.raises(AudioError, match=f"not a regular file: it is {match}"):
        check_file(str(hostile_files[name]), DecodeConfig())


def test_a_file_over_the_size_limit_is_refused_before_a_read(tmp_path):
    path = tmp_path / "big.wav"
    soundfile.write(path, _sine(16_000, 40), 16_000)  # 1.28 MB
    with pytest.raises(AudioTooLarge, match=r"the file is 1.2 MB, over decode.max_file_mb=1"):
        check_file(str(path), DecodeConfig(max_file_mb=1))
    assert check_file(str(path), DecodeConfig(max_file_mb=2)) == path.stat().st_size
    with pytest.raises(FileNotFoundError):
        check_file(str(tmp_path / "missing.wav"), DecodeConfig())


def test_channels_and_duration_limits_hold_for_every_container():
    many = _encode_sf(_sine(16_000, 1, channels=6), 16_000, "WAV")
    with pytest.raises(AudioError, match="6 channels, over decode.max_channels=4"):
        decode_audio(many, limits=DecodeConfig(max_channels=4))
    webm = _encode_av(_sine(48_000, 12), 48_000, "webm", "libopus")
    with pytest.raises(AudioTooLarge, match="max_duration_s=5"):
        decode_audio(webm, limits=DecodeConfig(max_duration_s=5))
    assert len(decode_audio(webm, limits=DecodeConfig(max_duration_s=13))) > 11 * 16_000


def test_a_decode_over_its_time_budget_stops():
    data = _encode_sf(_sine(16_000, 30), 16_000, "FLAC")
    with pytest.raises(AudioError, match="decoding took longer than decode.decode_timeout_s"):
        decode_audio(data, limits=DecodeConfig(decode_timeout_s=1e-9))


def _wav_header(seconds: float, rate: int = RATE) -> bytes:
    size = int(seconds * rate) * 2
    return (
        b"RIFF" + struct.pack("<I", 36 + size) + b"WAVEfmt "
        + struct.pack("<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16)
        + b"data" + struct.pack("<I", size)
    )  # fmt: skip


def test_a_recording_over_the_limit_is_refused_from_its_header(tmp_path):
    """A sparse 2-hour WAV: refused before any decoding, in well under a second."""
    path = tmp_path / "two_hours.wav"
    with open(path, "wb") as f:
        f.write(_wav_header(7200))
        f.truncate(len(_wav_header(7200)) + 7200 * RATE * 2)
    started = time.perf_counter()
    limits = DecodeConfig(max_duration_s=3600)
    with (
        open(path, "rb") as f,
        pytest.raises(AudioError, match="7,200.0 s .* decode.max_duration_s=3600"),
    ):
        open_audio(f, limits, 60)
    assert time.perf_counter() - started < 1.0


def test_not_audio_is_refused_with_the_reason():
    with pytest.raises(AudioError, match="not a readable audio file"):
        open_audio(io.BytesIO(b"definitely not audio " * 40))


def test_a_path_its_bytes_and_a_stream_of_it_decode_to_the_same_samples(tmp_path):
    """One decoder: whichever way a clip comes in, the same samples; the stream's blocks
    joined are the whole clip."""
    path = tmp_path / "clip.flac"
    path.write_bytes(_encode_sf(_sine(44_100, 3.0, channels=2), 44_100, "FLAC"))
    whole = decode_audio(str(path))
    assert np.array_equal(whole, decode_audio(path.read_bytes()))
    with open(path, "rb") as f:
        assert np.array_equal(whole, decode_audio(f))
    with open_audio(path, chunk_s=1.0) as stream:
        assert stream.duration_s == pytest.approx(3.0) and stream.sample_rate == 44_100
        blocks = list(stream)
    assert len(blocks) == 3 and np.array_equal(np.concatenate(blocks), whole)


def test_a_truncated_wav_file_is_refused_before_it_is_decoded(tmp_path):
    data = _encode_sf(_sine(16_000, 1.0), 16_000, "WAV")
    path = tmp_path / "cut.wav"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(AudioError, match="truncated WAV file: the header announces 32000 bytes"):
        decode_audio(str(path))


ODD_RATE = """
import resource, struct, sys, time
import numpy as np
from raymer.audio.decode import decode_audio

rate = int(sys.argv[1])
samples = (0.3 * np.sin(np.arange(rate) / rate * 2 * np.pi * 300) * 32767).astype("<i2")
data = samples.tobytes()
wav = (b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVEfmt "
       + struct.pack("<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16)
       + b"data" + struct.pack("<I", len(data)) + data)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
started = time.perf_counter()
audio = decode_audio(wav)
seconds = time.perf_counter() - started
grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
print(len(wav), len(audio), round(seconds, 3), grown // 1024)
"""


@pytest.mark.parametrize("rate", [44_101, 96_001, 383_999])
def test_an_odd_sample_rate_costs_no_more_than_a_common_one(rate):
    """A one-second WAV at a rate sharing no factor with 16 kHz (an 88 KB upload at 44,101
    Hz once took 12 GB: a resampler's filter sized by the two rates over their greatest
    common divisor): decoded in a fresh process in well under a second and a few MB. The
    decoder is the one every entry point uses (test_architecture: test_one_decoder)."""
    out = subprocess.run(
        [sys.executable, "-c", ODD_RATE, str(rate)], capture_output=True, text=True, check=True
    )
    size, samples, seconds, grown_mb = out.stdout.split()
    assert int(size) < 2 * rate + 100 and abs(int(samples) - RATE) <= 16
    assert float(seconds) < 1.0 and int(grown_mb) < 64, out.stdout


def test_a_rate_over_any_recordings_or_a_decode_over_its_budget_is_refused_from_the_header():
    wav = bytearray(_encode_sf(_sine(16_000, 1.0), 16_000, "WAV"))
    wav[24:28] = struct.pack("<I", 655_350)  # the fmt chunk's sample rate
    started = time.perf_counter()
    with pytest.raises(AudioError, match="655,350 Hz, over the 384,000 Hz"):
        decode_audio(bytes(wav))
    many = _encode_sf(_sine(48_000, 2.0, channels=8), 48_000, "WAV")  # 2.9 MB to decode
    with pytest.raises(AudioTooLarge, match=r"declares 3 MB of audio to decode \(48,000 Hz x 8"):
        decode_audio(many, DecodeConfig(max_decoded_mb=2))
    assert time.perf_counter() - started < 1.0
    assert len(decode_audio(many, DecodeConfig(max_decoded_mb=4))) == 2 * RATE


def test_only_audio_containers_are_opened(tmp_path):
    """FFmpeg opens a source with audio demuxers only (``DEMUXERS``): the same sound in a
    video container (MPEG-TS), a playlist or a concat list is refused, in WAV decoded."""
    import io

    import av

    from raymer.audio.decode import AudioError, decode_audio
    from raymer.config import DecodeConfig

    tone = (0.2 * np.sin(np.arange(16_000) / 4)).astype(np.float32)
    buf = io.BytesIO()
    with av.open(buf, mode="w", format="mpegts") as out:
        stream = out.add_stream("mp2", rate=16_000)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray((tone * 32767).astype(np.int16)[None], "s16", "mono")
        frame.sample_rate = 16_000
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            out.mux(packet)
    assert av.open(io.BytesIO(buf.getvalue())).format.name == "mpegts"  # FFmpeg would open it
    wav = tmp_path / "tone.wav"
    soundfile.write(wav, tone, 16_000)
    playlist = b"#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1.0,\n" + str(wav).encode() + b"\n"
    concat = b"ffconcat version 1.0\nfile " + str(wav).encode() + b"\n"
    for data in (buf.getvalue(), playlist, concat):
        with pytest.raises(AudioError, match="audio containers only"):
            decode_audio(data, DecodeConfig())
    assert len(decode_audio(wav.read_bytes(), DecodeConfig())) == 16_000


def test_one_channel_of_a_stereo_file_decodes_alone():
    """``channel``: a party's side of a two-channel call, resampled to 16 kHz like the mix;
    a channel the file does not have is refused from its header."""
    import io

    import numpy as np
    import pytest
    import soundfile

    from raymer.audio.decode import AudioError, decode_audio, open_audio

    rate = 44_100
    t = np.arange(2 * rate) / rate
    sides = [0.5 * np.sin(2 * np.pi * 440 * t), 0.3 * np.sin(2 * np.pi * 1000 * t)]
    buf = io.BytesIO()
    soundfile.write(buf, np.stack(sides, 1).astype(np.float32), rate, format="WAV")
    data = buf.getvalue()
    peaks = []
    for channel, level in ((0, 0.5), (1, 0.3)):
        with open_audio(data, channel=channel) as stream:
            audio = stream.read()
        assert len(audio) == len(decode_audio(data)) == 32_000
        assert abs(np.abs(audio).max() - level) < 0.01
        peaks.append(np.argmax(np.abs(np.fft.rfft(audio))) * 16_000 / len(audio))
    assert peaks == [440.0, 1000.0]
    with pytest.raises(AudioError, match="channel 2: the audio has 2 channel"):
        open_audio(data, channel=2)


def test_extract_decodes_a_call_s_channels_as_its_parties(tmp_path):
    """extract's decode with ``segment.channels: split``, by the rule recognize and the
    library hear calls: a row per channel (its index, its name as speaker), one row for a
    file whose channels carry one signal (identical), a mono file as it is, and a file of
    more channels than names refused from its header, the other rows kept."""
    import numpy as np
    import soundfile

    from raymer.config import DecodeConfig
    from raymer.config.parts import SegmentConfig
    from raymer.pipeline.stages import decode_batch

    rate = 16_000
    t = np.arange(rate) / rate
    left, right = 0.5 * np.sin(2 * np.pi * 440 * t), 0.3 * np.sin(2 * np.pi * 1000 * t)
    files = {
        "call": np.stack([left, right], 1),
        "same": np.stack([left, left], 1),
        "three": np.stack([left, right, left], 1),
        "mono": left,
    }
    for name, audio in files.items():
        soundfile.write(tmp_path / f"{name}.wav", audio.astype(np.float32), rate)
    batch = {
        "id": np.array(list(files)),
        "path": np.array([str(tmp_path / f"{n}.wav") for n in files]),
        "speaker": np.array([None] * 4, dtype=object),
    }
    cutting = SegmentConfig(channels="split", channel_names=["agent", "customer"])
    out = decode_batch(batch, DecodeConfig(), cutting=cutting)
    rows = [dict(zip(out, values, strict=True)) for values in zip(*out.values(), strict=True)]
    heard = [(r["id"], r["channel"], r["speaker"], r["channels"]) for r in rows]
    assert heard == [
        ("call", 0, "agent", "split"),
        ("call", 1, "customer", "split"),
        ("same", None, None, "identical"),
        ("three", None, None, None),
        ("mono", None, None, None),
    ]
    sides = [np.frombuffer(rows[k]["audio"], np.float32) for k in (0, 1)]
    assert [round(float(np.abs(x).max()), 2) for x in sides] == [0.5, 0.3]  # each its own
    assert rows[3]["stage"] == "decode"
    assert "3 channels, and channels: split names 2 parties" in rows[3]["error"]
    assert all(r["error"] is None for k, r in enumerate(rows) if k != 3)
    mixed = decode_batch(batch, DecodeConfig())  # mix: a row per file, as before
    assert mixed["id"].tolist() == list(files) and "channel" not in mixed


def test_a_span_of_a_recording_decodes_to_the_samples_of_that_span():
    """``span`` (a Lhotse supervision's): the decoder seeks to it and gives exactly its
    samples, in every container; one past the audio's end is refused from the header."""
    import io

    import numpy as np
    import pytest
    import soundfile

    from raymer.audio.decode import AudioError, decode_audio
    from raymer.audio.headers import probe
    from raymer.config import DecodeConfig

    rate = 16_000
    ramp = (np.arange(rate * 10) / (rate * 10)).astype(np.float32)
    for fmt in ("WAV", "FLAC", "OGG"):
        buf = io.BytesIO()
        soundfile.write(buf, ramp, rate, format=fmt)
        whole = decode_audio(buf.getvalue())
        part = decode_audio(buf.getvalue(), span=(3.25, 2.0))
        assert np.array_equal(part, whole[52_000:84_000]), fmt
        with pytest.raises(AudioError, match=r"the span 9.50-11.50 s runs past the audio's end"):
            decode_audio(buf.getvalue(), span=(9.5, 2.0))
    long = DecodeConfig(max_duration_s=5.0)  # the limits hold on the span, not the recording
    assert len(decode_audio(buf.getvalue(), long, span=(1.0, 2.0))) == 32_000
    assert probe(buf.getvalue(), long, span=(1.0, 2.0)).duration_s == 2.0
