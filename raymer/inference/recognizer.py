"""``raymer.Recognizer``: a trained model in this process, for notebooks and scripts.

    >>> import raymer
    >>> rec = raymer.Recognizer.from_checkpoint("runs/sample/compare")
    >>> rec.predict("call.wav")["label"]
    'angry'

The same code as ``raymer serve`` and ``raymer recognize`` (``raymer.inference.core``: the one
decoder, the VAD, Whisper, the text encoder and the trained head, made as extraction made the
training features), without Ray or HTTP.
``predict`` takes a path (local or s3://), encoded bytes, a 16 kHz mono float32 array, a text,
or a list of them, and works inside a running event loop (Jupyter). For a corpus, or hours of
calls, use ``raymer.recognize`` (Ray Data, resumable); this is for a few files at a time.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Literal

import numpy as np

from raymer import storage
from raymer.audio.decode import SAMPLE_RATE, AudioError
from raymer.config import DecodeConfig, SegmentConfig, SpeechConfig
from raymer.config.loading import checked_min_confidence
from raymer.errors import UsageError
from raymer.inference.parties import open_heard

Input = str | os.PathLike | bytes | bytearray | memoryview | np.ndarray
Result = dict[str, Any]


class Recognizer:
    """A checkpoint's models, loaded once; ``predict`` scores audio and texts in batches.

    Build it with ``from_checkpoint``. Each result is a dict, the JSON ``raymer serve``
    answers (the same shape, never reshaped; the library adds ``segments`` to every result
    and ``error`` to a failed one):

    - ``label``: the top emotion (``None`` when the audio holds no speech);
    - ``emotions``: ``{label: score}`` for every label (``None`` without speech); a
      multi-label model adds ``labels``, every label over 0.5;
    - ``transcript``, ``language``, ``no_speech``, ``duration_s``, ``speech_s``;
    - ``segments``: for audio longer than ``segment.segment_over_s``, the segments ``raymer
      recognize`` cuts it into (the same VAD rule, at its pauses), each with its own
      ``start``, ``end``, ``text``, ``speech_s``, ``no_speech``, ``label`` and ``emotions``
      (else empty); the recording's ``label`` is then the one with the most speech time
      (``shares``: each label's share of it) and its ``emotions`` the segments' scores
      weighted by their length;
    - ``dimensions`` (a model trained with emotion dimensions): ``{"arousal": ..., "valence":
      ...}`` in -1..1 (``None`` values without speech), per segment too; a recording's are
      its segments' values weighted by their length, as ``raymer recognize`` writes them.

    A text is scored by the checkpoint's text-only model (a ``raymer compare`` output has
    one, a text checkpoint is one); its result has ``transcript`` = the text.
    """

    def __init__(self, core, limits: DecodeConfig, batch_size: int = 8) -> None:
        if batch_size < 1:
            raise UsageError(f"batch_size must be at least 1, not {batch_size}")
        self.core, self.limits, self.batch_size = core, limits, batch_size

    @classmethod
    def from_checkpoint(
        cls,
        checkpoint: str | os.PathLike,
        device: str = "cpu",
        *,
        text_checkpoint: str | os.PathLike | None = None,
        batch_size: int = 8,
        threads: int = 0,
        decode: DecodeConfig | dict | None = None,
        speech: SpeechConfig | dict | None = None,
        segment: SegmentConfig | dict | None = None,
        min_confidence: float = 0.0,
    ) -> Recognizer:
        """Load a checkpoint: anything ``raymer evaluate`` accepts (a checkpoint folder, a
        train or compare output, an ``raymer export`` folder; local or s3://).

        Args:
            device: "cpu", "cuda" or "cuda:N" for Whisper, the text encoder and the head.
            text_checkpoint: a text-only model for texts, when ``checkpoint`` has none.
            batch_size: inputs decoded and scored together (memory: that many clips).
            threads: CPU threads for torch and Whisper (0: their defaults).
            decode: the decode guard (``raymer.config.DecodeConfig``, or a dict of its
                fields), as ``recognize`` and ``serve`` take it; by default audio up to an
                hour (longer recordings belong to ``raymer.recognize``).
            speech: the no-speech rule (``SpeechConfig``).
            segment: how audio longer than ``segment_over_s`` is cut (``SegmentConfig``).
            min_confidence: an answer whose top score is under it gets the label
                ``"uncertain"`` (its scores still given); 0: always the top label.
        """
        from raymer.inference.core import Inference

        decode = _settings(DecodeConfig, decode, max_duration_s=3600.0)
        speech, segment = _settings(SpeechConfig, speech), _settings(SegmentConfig, segment)
        core = Inference(
            str(checkpoint),
            str(text_checkpoint) if text_checkpoint else None,
            device=device,
            threads=threads,
            cutting=segment,
            rule=speech,
            min_confidence=checked_min_confidence(min_confidence),
        )
        return cls(core, decode, batch_size)

    @property
    def labels(self) -> list[str]:
        return list(self.core.labels)

    def info(self) -> dict:
        """The models behind the answers: encoders, labels, checkpoint, mode."""
        return self.core.info()

    def predict(
        self,
        inputs: Input | Sequence[Input],
        *,
        batch_size: int | None = None,
        errors: Literal["raise", "report"] = "raise",
        progress: bool | None = None,
        turns=None,
    ) -> Result | list[Result]:
        """One input -> one result; a list -> a list of results, in order.

        A ``str`` is a path when it names an audio file (an existing file, an s3:// URI or a
        name ending in an audio extension), else a text. ``errors="report"`` turns an input
        that cannot be read or decoded into a result with ``error`` set, instead of raising.
        A file is decoded and judged a window at a time, so an hour-long recording costs no
        more memory than a minute. ``progress``: how far the audio is (seconds judged of its
        length) on stderr, a bar on a terminal or a line every ``RAYMER_PROGRESS_S`` seconds
        elsewhere; None (default): only where stderr is a terminal (not in a notebook or a
        log, unless asked with True). ``turns``: speaker turns from a diarizer, for one
        input (for a list: a list, None where none): an RTTM file's path, or its text, whose
        turns of the input's recording (a file's name without its extension; ``recording``
        of ``raymer.inference.parties.turns_of``) say who speaks when: segments are cut
        inside them and carry their ``speaker`` (``overlapped`` where another speaker's
        turn overlaps), and the answer each party's summary (``parties``).
        """
        if errors not in ("raise", "report"):
            raise UsageError(f"errors must be 'raise' or 'report', not {errors!r}")
        single = not isinstance(inputs, list | tuple)
        items = [inputs] if single else list(inputs)
        given = [turns] if single else list(turns or [None] * len(items))
        if len(given) != len(items):
            raise UsageError(f"turns: one per input ({len(items)}), not {len(given)}")
        size = batch_size or self.batch_size
        kinds = [_kind(x) for x in items]
        results: list[Result | None] = [None] * len(items)
        texts = [i for i, k in enumerate(kinds) if k == "text"]
        if texts and self.core.text is None:
            raise UsageError(
                "this checkpoint has no text-only model to score texts: load a `raymer "
                "compare` output or a text checkpoint, or pass text_checkpoint="
            )
        for chunk in _batches(texts, size):
            found = self.core.recognize_text([items[i] for i in chunk])
            for i, r in zip(chunk, found, strict=True):
                results[i] = _text_result(r)
        audio = [i for i, k in enumerate(kinds) if k == "audio"]
        shown = _Shown(progress, whole=len(audio) <= size) if audio else None
        try:
            for chunk in _batches(audio, size):
                self._audio_batch(chunk, items, given, errors, shown, results)
        finally:
            if shown is not None:
                shown.close()
        return results[0] if single else results

    def _audio_batch(self, chunk, items, given, errors, shown, results) -> None:
        """One batch of audio inputs opened (a failure answered alone), recognized together."""
        from raymer.audio.turns import TurnsError

        with ExitStack() as held:
            opened = {}
            for i in chunk:
                try:
                    opened[i] = self._open(items[i], held, given[i])
                except (AudioError, OSError, TurnsError) as err:
                    results[i] = self._failure(i, items[i], err, errors)
            for i, r in self._recognize(opened, items, errors, held, shown, turns=given):
                results[i] = r
        if shown is not None:
            shown.batch_done()

    def export(self, audio: str | os.PathLike | np.ndarray, fmt: str) -> str:
        """One audio input's answer as the text of a file people open it with (``fmt``: vtt,
        srt, textgrid or csv; ``raymer.inference.exports``), the same file ``raymer
        recognize`` writes with ``formats`` and the service answers for ``?format=``."""
        from raymer.inference.exports import FORMATS, export

        if fmt not in FORMATS:
            raise UsageError(f"format {fmt!r}: choose one of {', '.join(FORMATS)}")
        if _kind(audio) != "audio":
            raise UsageError("export takes one audio input (a path or an array), not a text")
        with ExitStack() as held:
            opened = {0: self._open(audio, held)}
            ((_, answer),) = self._recognize(opened, [audio], "raise", held, keep=True)
        return export(answer, fmt, self.labels, self.core.judging.dimensions)

    def _recognize(
        self, opened: dict, items: list, errors: str, held, shown=None, keep=False, turns=None
    ) -> Iterator[tuple[int, Result]]:
        """The opened recordings' results (``keep``: their ``Prediction``s); one that fails
        midway (a damaged stream) is answered alone and the others are recognized again
        without it."""
        from raymer.inference.core import RecordingFailed

        while opened:
            order = list(opened)
            try:
                found = self.core.recognize(
                    [opened[i] for i in order], shown.step if shown else None
                )
            except RecordingFailed as failed:
                i = order[failed.index]
                del opened[i]
                yield i, self._failure(i, items[i], failed.error, errors)
                again = turns or [None] * len(items)
                opened = {j: self._open(items[j], held, again[j]) for j in opened}
                continue
            for i, r in zip(order, found, strict=True):
                yield i, r if keep else _audio_result(r)
            return

    def _failure(self, i: int, item: Input, err: Exception, errors: str) -> Result:
        message = f"input {i} ({_name(item)}): {err}"
        if errors == "raise" and isinstance(err, AudioError):
            raise type(err)(message) from None
        if errors == "raise":
            raise err
        return _failed(message)

    def live(self, interim: bool = True):
        """A recording judged as it arrives (``raymer.inference.live.Live``): ``feed`` it
        16 kHz mono float32 samples (a microphone's, a stream's; ``audio.streaming.Pcm``
        turns raw PCM of any rate into them), ``close`` it at the end; each returns the events its audio
        made: each segment's answer once its pause is heard (``final`` False), again when
        its Whisper window is complete (``final``: the file's answer), and at the end the
        recording's, the same as ``predict``'s for the same audio as a file."""
        from raymer.inference.live import Live

        return Live(*self.core.stages(), self.core.judging, interim)

    async def apredict(self, inputs, **kwargs) -> Result | list[Result]:
        """``predict`` for async code: runs in a worker thread, the loop stays free."""
        return await asyncio.to_thread(self.predict, inputs, **kwargs)

    def _open(self, item: Input, held: ExitStack, turns=None):
        """An input as ``compose`` reads it: an array as it is, a file or bytes as a stream
        decoded a chunk (``segment.chunk_s``) at a time within the decode guard, checked
        before anything is decoded (its kind, size and header); with ``turns``, a party per
        speaker (``parties.turn_parties``)."""
        if isinstance(item, np.ndarray):
            if turns is not None:
                raise UsageError("turns go with a file or encoded bytes, not an array")
            return _array(item)
        cutting = self.core.judging.cutting
        if isinstance(item, bytes | bytearray | memoryview):
            source = bytes(item)
        else:
            source = os.fspath(item)
            if not storage.is_remote(source):
                source = str(Path(source).expanduser())
        return open_heard(source, self.limits, cutting, held, turns, _name(item))


class _Shown:
    """``predict``'s progress (``raymer.console.Progress``, in seconds of audio): the
    recordings judged through, of their length where every header says it (one batch)."""

    def __init__(self, wanted: bool | None, whole: bool) -> None:
        import sys

        from raymer.console import Progress

        on = sys.stderr.isatty() if wanted is None else wanted
        self.bar = Progress("predict", None, "audio s") if on else None
        self.whole, self.base, self.last = whole, 0.0, 0.0

    def step(self, progress) -> None:
        if self.bar is None:
            return
        if self.whole and progress.duration_s:
            self.bar.set_total(round(progress.duration_s))
        self.last = progress.done_s
        seconds = self.base + progress.done_s
        self.bar.update(round(seconds), seconds)

    def batch_done(self) -> None:
        self.base, self.last = self.base + self.last, 0.0

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _kind(item: Any) -> str:
    if isinstance(item, np.ndarray | bytes | bytearray | memoryview | os.PathLike):
        return "audio"
    if isinstance(item, str):
        if "\n" not in item and (
            storage.is_remote(item)
            or item.lower().endswith(storage.AUDIO_EXTENSIONS)
            or os.path.isfile(os.path.expanduser(item))
        ):
            return "audio"
        if not item.strip():
            raise UsageError("an empty text has no emotion to find")
        return "text"
    raise UsageError(
        f"cannot predict on a {type(item).__name__}: give a path, encoded audio bytes, a "
        "16 kHz mono float32 array, a text, or a list of them"
    )


def _array(item: np.ndarray) -> np.ndarray:
    if item.ndim != 1:
        raise AudioError(
            f"an array must be mono samples at {SAMPLE_RATE} Hz (one dimension); got shape "
            f"{item.shape}: average the channels (x.mean(axis=...)) and resample first"
        )
    if not np.issubdtype(item.dtype, np.floating):
        raise AudioError(f"an array must hold float samples in [-1, 1], not {item.dtype}")
    clip = np.ascontiguousarray(item, dtype=np.float32)
    if not np.isfinite(clip).all():
        raise AudioError("the array holds NaN or infinite samples")
    return clip


def _audio_result(prediction) -> Result:
    """The service's answer (``Prediction.to_api``), with ``segments`` always there."""
    return {"segments": []} | prediction.to_api()


def _text_result(r: dict) -> Result:
    """The service's text answer, with the fields an audio result has."""
    return r | {
        "transcript": r["text"],
        "language": None,
        "no_speech": False,
        "duration_s": None,
        "speech_s": None,
        "segments": [],
    }


def _failed(message: str) -> Result:
    return {"label": None, "emotions": None, "error": message, "segments": []}


def _name(item: Any) -> str:
    if isinstance(item, str | os.PathLike):
        return os.fspath(item)
    if isinstance(item, np.ndarray):
        return f"array {item.shape}"
    return f"{len(item)} bytes"


def _batches(indices: list[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(indices), size):
        yield indices[start : start + size]


def _settings(cls, given, **defaults):
    """A part of the settings as given (an instance, a dict of its fields, or None: the
    defaults), checked as a config file's would be."""
    from raymer.config import validated

    if isinstance(given, cls):
        return given
    return validated(cls, defaults | dict(given or {}))
