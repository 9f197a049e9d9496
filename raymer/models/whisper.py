"""Whisper ASR and audio embedding from one encoder pass (faster-whisper / CTranslate2).

Stock Whisper pads every input to a 30 s window, so a 4 s clip spends most of its encoder
pass on silence. With ``window="fit"`` a clip is encoded in the shortest window that holds
it (CTranslate2 accepts any length up to 30 s; the position embeddings are sliced), and that
same encoder output feeds both the decoder and the frame features.

``window="auto"`` (the default) is ``fit`` where Whisper is sure of itself, and Whisper's own
30 s window where it is not: a clip whose fitted decode fails one of Whisper's own tests
(``faster-whisper``'s defaults, not tuned here) is encoded and decoded again in the full
window, as stock Whisper would, and that result is kept. The tests: the detected language's
probability under 0.5 (``language_detection_threshold``; a short clip in an accent Whisper
seldom heard can come out as Japanese or Welsh from 8 s of context, and is right from 30 s)
and a mean token log-probability under -1 (``log_prob_threshold``). Each clip is judged on
its own, so its answer never depends on its batch-mates.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from ..audio.decode import SAMPLE_RATE
from ..audio.frames import pool_frames, split_windows
from ..config.parts import SpeechConfig
from .whisper_input import MAX_WINDOW_S, log_mel, window_seconds

ENCODER_RATE_HZ = 50  # Whisper's encoder emits one frame per 20 ms
RETRY_LOGPROB = -1.0  # faster-whisper's log_prob_threshold: a decode below it is retried
LANGUAGE_THRESHOLD = 0.5  # faster-whisper's language_detection_threshold
TOKENS_PER_S = 8  # generous upper bound on Whisper tokens per second of speech


@dataclass
class Segment:
    start: float
    end: float
    text: str


@dataclass
class SpeechFeatures:
    """What one clip yields.

    Attributes:
        transcript: the recognised text of the whole clip.
        language: detected (or forced) language code.
        language_prob: probability of that language (1.0 when forced or English-only).
        segments: timed segments of the transcript.
        frames: encoder frames pooled to ``frame_rate_hz``, shape (T, D); with ``prosody``
            the eGeMAPS descriptors of the same frames follow (D + 25 columns).
        embedding: mean of the encoder frames over the clip, shape (D,).
        avg_logprob: mean token log-probability of the decoded text.
        no_speech_prob: Whisper's probability that the first window holds no speech.
        speech_s: seconds of speech the VAD heard (None where it was not asked).
        window_s: the encoder window of its (first) 30 s piece: fitted, or 30.0.
    """

    transcript: str
    language: str
    language_prob: float
    segments: list[Segment] = field(default_factory=list)
    frames: np.ndarray | None = None
    embedding: np.ndarray | None = None
    avg_logprob: float = 0.0
    no_speech_prob: float = 0.0
    speech_s: float | None = None
    window_s: float = MAX_WINDOW_S


class WindowOutput(NamedTuple):
    """What one 30 s piece of a clip yields from one window."""

    segments: list[Segment]
    language: str
    language_prob: float
    frames: np.ndarray  # encoder frames of the piece (50 Hz)
    avg_logprob: float
    no_speech_prob: float
    window_s: float  # the encoder window it was decoded in


class WhisperFeaturizer:
    """Transcribes clips and returns their encoder frames, one encoder pass per window."""

    def __init__(
        self,
        model_dir: str,
        device: str = "cpu",
        compute_type: str = "default",
        cpu_threads: int = 0,
        beam_size: int = 1,
        language: str | None = None,
        window: str = "auto",
        window_step_s: float = 2.0,
        min_window_s: float = 8.0,
        frame_rate_hz: float = 10.0,
        prosody: bool = False,
        speech: SpeechConfig | None = None,
        workers: int = 1,
    ) -> None:
        """``speech``: the no-speech rule (``raymer.config.SpeechConfig``) whose Whisper test
        blanks a silent window (its defaults where none is given); ``workers``: calls from
        that many threads run side by side (CTranslate2 workers sharing one copy of the
        weights)."""
        from faster_whisper import WhisperModel
        from faster_whisper.tokenizer import Tokenizer

        if compute_type == "default":
            compute_type = "float16" if device == "cuda" else "int8"
        self.model = WhisperModel(
            model_dir,
            device=device,
            compute_type=compute_type,
            cpu_threads=cpu_threads,
            num_workers=workers,
        )
        self.device = device
        self.multilingual = self.model.model.is_multilingual
        self.language = language or ("en" if not self.multilingual else None)
        self.tokenizer = Tokenizer(
            self.model.hf_tokenizer,
            self.multilingual,
            task="transcribe",
            language=self.language or "en",
        )
        self.beam_size = beam_size
        self.window, self.window_step_s, self.min_window_s = window, window_step_s, min_window_s
        self.pool = max(1, round(ENCODER_RATE_HZ / frame_rate_hz))
        self.frame_rate_hz, self.prosody = frame_rate_hz, prosody
        self.speech = speech or SpeechConfig()

    def __call__(self, clips: list[np.ndarray]) -> list[SpeechFeatures]:
        """clips: 16 kHz mono float32 arrays -> one SpeechFeatures per clip."""
        pieces = [
            (i, k, w) for i, clip in enumerate(clips) for k, w in enumerate(split_windows(clip))
        ]
        outputs: dict[int, WindowOutput] = {}
        # Each piece is encoded in its own window (fitted to its length): pieces with the same
        # window share a batch, so a clip's window never depends on its batch-mates (its
        # frames may move in their last digits with the batch: CTranslate2's int8 kernels).
        groups: dict[float, list[tuple[int, np.ndarray]]] = {}
        for j, (_, _, w) in enumerate(pieces):
            groups.setdefault(self._window_s(len(w)), []).append((j, w))
        for win_s, group in groups.items():
            outputs.update(self._run_batch(group, win_s))
        if self.window == "auto":  # unsure in the fitted window: Whisper's own window
            unsure = [(j, w) for j, (_, _, w) in enumerate(pieces) if self._unsure(outputs[j])]
            if unsure:
                outputs.update(self._run_batch(unsure, MAX_WINDOW_S))
        out = [
            self._assemble([outputs[j] for j, p in enumerate(pieces) if p[0] == i])
            for i in range(len(clips))
        ]
        self.with_prosody(clips, out)
        return out

    def with_prosody(self, clips: list[np.ndarray], features: list[SpeechFeatures]) -> None:
        """With ``prosody``, each clip's eGeMAPS descriptors appended to its frames
        (``raymer.audio.prosody``), in place."""
        if not self.prosody:
            return
        from raymer.audio.prosody import prosody_frames

        for clip, sp in zip(clips, features, strict=True):
            extra = prosody_frames(clip, self.frame_rate_hz, len(sp.frames))
            sp.frames = np.concatenate([sp.frames, extra], axis=1)

    def _unsure(self, output: WindowOutput) -> bool:
        """A fitted decode that fails Whisper's own tests (module docstring)."""
        if output.window_s >= MAX_WINDOW_S:
            return False
        return output.language_prob < LANGUAGE_THRESHOLD or output.avg_logprob < RETRY_LOGPROB

    def _window_s(self, samples: int) -> float:
        return window_seconds(
            samples / SAMPLE_RATE, self.window, self.window_step_s, self.min_window_s
        )

    def _run_batch(
        self, group: list[tuple[int, np.ndarray]], win_s: float
    ) -> dict[int, WindowOutput]:
        n_frames = int(win_s * 100)
        feats = np.stack([self._features(w, n_frames) for _, w in group])
        encoder_output = self.model.encode(feats)
        frames_all = self._to_numpy(encoder_output)
        languages = self._languages(encoder_output, len(group))
        results = self.decoded(encoder_output, frames_all, languages, win_s, timestamps=True)
        out = {}
        for b, ((j, w), result, (lang, prob)) in enumerate(
            zip(group, results, languages, strict=True)
        ):
            tokens = result.sequences_ids[0]
            dur = len(w) / SAMPLE_RATE
            n_valid = max(1, math.ceil(len(w) / (SAMPLE_RATE / ENCODER_RATE_HZ)))
            segments = self._segments(tokens, lang, dur)
            logprob = result.scores[0] * len(tokens) / (len(tokens) + 1) if tokens else 0.0
            if self.speech.whisper_silent(result.no_speech_prob, logprob):
                segments = []  # Whisper's own rule: a silent window, whatever it decoded
            out[j] = WindowOutput(
                segments, lang, prob, frames_all[b, :n_valid], logprob, result.no_speech_prob, win_s
            )
        return out

    def decoded(self, encoder_output, frames_all, languages, win_s: float, timestamps: bool):
        """Whisper's decoding of encoded windows of ``win_s``: each in its language's prompt
        (with timestamp tokens or, as the batched pipeline decodes, without), then Whisper's
        fallback on a repetitive text. ``frames_all``: the encoder output as numpy."""
        prompts = [
            self.model.get_prompt(
                self._tokenizer_for(lang), previous_tokens=[], without_timestamps=not timestamps
            )
            for lang, _ in languages
        ]
        # Speech rarely exceeds ~5 tokens/s; a bound from the audio length stops the runaway
        # repetition a single pass can fall into (faster-whisper's sequential seek avoids it).
        # (bounded by the window, not the longest clip: the same for every clip in the window)
        max_length = min(self.model.max_length, len(prompts[0]) + int(TOKENS_PER_S * win_s) + 12)
        results = self._generate(encoder_output, prompts, max_length)
        for b, result in enumerate(results):
            text = self.tokenizer.decode(result.sequences_ids[0])
            if _compression_ratio(text) > 2.4:  # repetitive: retry like Whisper's fallback
                results[b] = self._fallback(
                    frames_all[b : b + 1], encoder_output.dtype, prompts[b], max_length, result
                )
        return results

    def _generate(self, encoder_output, prompts, max_length, temperature: float = 0.0):
        """Greedy or beam search at temperature 0; sampling from the full distribution above."""
        sampling = {"sampling_topk": 0, "sampling_temperature": temperature} if temperature else {}
        return list(
            self.model.model.generate(
                encoder_output,
                prompts,
                beam_size=1 if temperature else self.beam_size,
                max_length=max_length,
                suppress_blank=True,
                suppress_tokens=[-1],
                return_scores=True,
                return_no_speech_prob=True,
                **sampling,
            )
        )

    def _fallback(self, frames: np.ndarray, dtype, prompt, max_length, first):
        """Re-decode one window at rising temperatures until the text is not repetitive.

        Each temperature sets CTranslate2's seed, but its sampling generators live in its
        worker threads, so two runs in one process can still sample differently."""
        import ctranslate2

        # Back in the encoder's own dtype (float16 on CUDA): the decoder expects it.
        storage = ctranslate2.StorageView.from_array(np.ascontiguousarray(frames)).to(dtype)
        best = first
        for temperature in (0.2, 0.4, 0.6, 0.8, 1.0):
            ctranslate2.set_random_seed(int(temperature * 10))
            result = self._generate(storage, [prompt], max_length, temperature)[0]
            if _compression_ratio(self.tokenizer.decode(result.sequences_ids[0])) <= 2.4:
                return result
            best = min(
                best,
                result,
                key=lambda r: _compression_ratio(self.tokenizer.decode(r.sequences_ids[0])),
            )
        return best

    def _features(self, samples: np.ndarray, n_frames: int) -> np.ndarray:
        return log_mel(self.model.feature_extractor, samples, n_frames)

    def _to_numpy(self, encoder_output) -> np.ndarray:
        if self.device == "cuda":
            import ctranslate2

            encoder_output = encoder_output.to_device(ctranslate2.Device.cpu)
        return np.asarray(encoder_output, dtype=np.float32)

    def _languages(self, encoder_output, n: int) -> list[tuple[str, float]]:
        if self.language is not None:
            return [(self.language, 1.0)] * n
        detected = self.model.model.detect_language(encoder_output)
        return [(langs[0][0][2:-2], float(langs[0][1])) for langs in detected]

    def _tokenizer_for(self, language: str):
        from faster_whisper.tokenizer import Tokenizer

        if language == self.tokenizer.language_code:
            return self.tokenizer
        return Tokenizer(
            self.model.hf_tokenizer, self.multilingual, task="transcribe", language=language
        )

    def _segments(self, tokens: list[int], language: str, duration: float) -> list[Segment]:
        tok = self._tokenizer_for(language)
        pieces, _, _ = self.model._split_segments_by_timestamps(
            tokenizer=tok,
            tokens=tokens,
            time_offset=0.0,
            segment_size=int(math.ceil(duration) * self.model.frames_per_second),
            segment_duration=duration,
            seek=0,
        )
        segments = []
        for piece in pieces:
            text = tok.decode(piece["tokens"]).strip()
            if text and piece["start"] < duration:  # nothing is said after the clip ends
                segments.append(
                    Segment(round(piece["start"], 2), round(min(piece["end"], duration), 2), text)
                )
        return segments

    def _assemble(self, window_outputs: list[WindowOutput]) -> SpeechFeatures:
        segments, frames = [], []
        for k, window in enumerate(window_outputs):
            segs, window_frames = window.segments, window.frames
            offset = k * MAX_WINDOW_S
            segments += [
                Segment(round(s.start + offset, 2), round(s.end + offset, 2), s.text) for s in segs
            ]
            frames.append(window_frames)
        full = np.concatenate(frames)
        first = window_outputs[0]
        return SpeechFeatures(
            transcript=" ".join(s.text for s in segments).strip(),
            language=first.language,
            language_prob=first.language_prob,
            segments=segments,
            frames=pool_frames(full, self.pool).astype(np.float32),
            embedding=full.mean(axis=0).astype(np.float32),
            avg_logprob=float(np.mean([w.avg_logprob for w in window_outputs])),
            no_speech_prob=float(first.no_speech_prob),
            window_s=float(first.window_s),
        )


def _compression_ratio(text: str) -> float:
    """gzip ratio of the text, as Whisper uses it to spot repetition loops."""
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data)) if data else 0.0
