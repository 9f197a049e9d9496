"""Audio as it arrives, for a live recording (``raymer.inference.live``): raw PCM of any
rate (``Pcm``: FFmpeg's resampler, the one the decoder uses, by PyAV) and encoded chunks, as
a browser's MediaRecorder sends them (``Encoded``: decoded by the one decoder,
``decode.open_audio``, reading a pipe the chunks are written to). Both give 16 kHz mono
float32 blocks, whatever the sizes of the pieces they were given in."""

from __future__ import annotations

import numpy as np

from raymer.audio.decode import SAMPLE_RATE, AudioError


class Pcm:
    """Raw PCM as it arrives (``s16``: 16-bit little-endian integers, or ``f32``: 32-bit
    floats; ``channels`` interleaved, at ``rate``) -> 16 kHz mono float32, the channels mixed,
    through FFmpeg's resampler (the one the decoder uses, by PyAV) where the rate is not
    16 kHz. A sample split between two messages waits for its other bytes."""

    def __init__(self, rate: int = SAMPLE_RATE, channels: int = 1, kind: str = "s16") -> None:
        if kind not in ("s16", "f32"):
            raise ValueError(f"PCM kind {kind!r}: s16 or f32")
        self.rate, self.channels, self.kind = rate, channels, kind
        self.width = (2 if kind == "s16" else 4) * channels
        self.rest = b""
        self.resampler = None
        if rate != SAMPLE_RATE:
            import av

            self.resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)

    def push(self, data: bytes) -> np.ndarray:
        data = self.rest + bytes(data)
        whole = len(data) // self.width * self.width
        self.rest = data[whole:]
        if not whole:
            return np.zeros(0, np.float32)
        kind = np.int16 if self.kind == "s16" else np.float32
        frames = np.frombuffer(data[:whole], dtype=np.dtype(kind).newbyteorder("<"))
        samples = frames.reshape(-1, self.channels).astype(np.float32)
        if self.kind == "s16":
            samples /= 32768.0
        mono = samples.mean(axis=1) if self.channels > 1 else samples[:, 0]
        if not np.isfinite(mono).all():
            raise AudioError("the audio holds NaN or infinite samples")
        return self._resampled(mono)

    def finish(self) -> np.ndarray:
        return self._resampled(None)

    def _resampled(self, mono: np.ndarray | None) -> np.ndarray:
        if self.resampler is None:
            return np.zeros(0, np.float32) if mono is None else np.ascontiguousarray(mono)
        import av

        frame = None
        if mono is not None:
            frame = av.AudioFrame.from_ndarray(mono[None, :], format="flt", layout="mono")
            frame.sample_rate = self.rate
        out = [f.to_ndarray().reshape(-1) for f in self.resampler.resample(frame)]
        return np.concatenate(out).astype(np.float32) if out else np.zeros(0, np.float32)


class Encoded:
    """Encoded chunks as they arrive (a browser's MediaRecorder WebM/Opus, Ogg, MP3, a WAV
    sent in pieces) -> 16 kHz mono float32: the one decoder (``open_audio``, within
    ``limits``) reads them from a pipe in a thread of its own. ``push`` returns what has
    been decoded so far (it never waits for the decoder); ``finish`` ends the pipe and
    returns the rest. Bytes that are not audio are an ``AudioError`` (from ``push`` once the
    decoder has said so, or from ``finish``)."""

    def __init__(self, limits, block_s: float = 0.25, wait_s: float = 30.0) -> None:
        import queue
        import threading

        self.pipe, self.blocks, self.wait_s = _Pipe(), queue.Queue(), wait_s
        self.error: Exception | None = None
        self.done = False
        self.thread = threading.Thread(target=self._run, args=(limits, block_s), daemon=True)
        self.thread.start()

    def _run(self, limits, block_s: float) -> None:
        from raymer.audio.decode import open_audio

        try:
            with open_audio(self.pipe, limits, chunk_s=block_s) as stream:
                for block in stream:
                    self.blocks.put(block)
        except Exception as err:  # what the decoder said: the stream's error
            self.error = err if isinstance(err, AudioError) else AudioError(str(err))
        finally:
            self.blocks.put(None)

    def push(self, data: bytes) -> np.ndarray:
        self.pipe.write(bytes(data))
        return self._drain(wait=False)

    def finish(self) -> np.ndarray:
        self.pipe.close()
        self.thread.join(self.wait_s)
        return self._drain(wait=True)

    def abort(self) -> None:
        """Stop the decoder (the client left): its thread ends at its next read."""
        self.pipe.close(abort=True)

    def _drain(self, wait: bool) -> np.ndarray:
        import queue

        out = []
        while not self.done:
            try:
                block = self.blocks.get(timeout=self.wait_s) if wait else self.blocks.get_nowait()
            except queue.Empty:
                break
            if block is None:
                self.done = True
            else:
                out.append(block)
        if self.error is not None:
            raise self.error
        return np.concatenate(out) if out else np.zeros(0, np.float32)


class _Pipe:
    """A read-only, unseekable file the decoder reads while ``write`` feeds it: ``read``
    waits for bytes, and gives b"" once ``close`` is called and all is read."""

    def __init__(self) -> None:
        import threading

        self.data, self.closed, self.aborted = bytearray(), False, False
        self.ready = threading.Condition()

    def write(self, data: bytes) -> None:
        with self.ready:
            self.data += data
            self.ready.notify_all()

    def close(self, abort: bool = False) -> None:
        with self.ready:
            self.closed, self.aborted = True, self.aborted or abort
            self.ready.notify_all()

    def read(self, n: int = -1) -> bytes:
        with self.ready:
            while not self.data and not self.closed:
                self.ready.wait()
            if self.aborted:
                return b""
            n = len(self.data) if n is None or n < 0 else min(n, len(self.data))
            out = bytes(self.data[:n])
            del self.data[:n]
            return out

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False
