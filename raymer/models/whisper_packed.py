"""Consecutive pieces of one long recording in one Whisper window, as faster-whisper's
``BatchedInferencePipeline`` packs the speech of a long file: each window holds the pieces one
after the other (their silences left out, each piece with its own padding), up to Whisper's
30 s. One encoder pass per window feeds the decoder and every piece's frames; the text is
decoded as the batched pipeline decodes it (no timestamp tokens) and each word goes to the
piece its middle falls in, by Whisper's cross-attention alignment (faster-whisper's
``find_alignment``, as its word timestamps are made). A piece's answer depends on its window,
and a window is made of its recording only (``raymer.audio.segment.pack``), the same in every
entry point.

The frames the emotion model reads are each piece's own, from an encoder pass in the window
fitted to it (``piece_frames``): the features extraction made the training data of. (Frames
cut out of the packed window hear the piece's neighbours, and the model, trained on clips
alone, labels them worse: 0.43 against 0.61 of the sentences of a 10-minute recording of
held-out voices, docs/benchmarks.md.) A short recording is one piece in a fitted window
(``WhisperFeaturizer.__call__``), transcript and frames from one pass.
"""

from __future__ import annotations

import math

import numpy as np

from ..audio.decode import SAMPLE_RATE
from ..audio.frames import pool_frames
from .whisper import ENCODER_RATE_HZ, Segment, SpeechFeatures, WhisperFeaturizer
from .whisper_input import MAX_WINDOW_S

SAMPLES_PER_FRAME = SAMPLE_RATE // ENCODER_RATE_HZ  # 320: one encoder frame
ENCODE_BATCH = 8  # pieces encoded together for their frames (bounds the encoder's memory)
PACKED_BATCH = 4  # windows encoded and decoded together (beam x 30 s of cross-attention each)


def transcribe_packed(
    fz: WhisperFeaturizer, windows: list[list[np.ndarray]]
) -> list[list[SpeechFeatures]]:
    """Windows (each: consecutive pieces of one recording, 30 s at most in all) -> one
    ``SpeechFeatures`` per piece, window by window, in order."""
    for pieces in windows:
        if sum(len(p) for p in pieces) > MAX_WINDOW_S * SAMPLE_RATE:
            raise ValueError(f"a packed window holds at most {MAX_WINDOW_S:g} s of audio")
    audio = [np.concatenate(p) if p else np.zeros(0, np.float32) for p in windows]
    heard: list[tuple] = []
    for at in range(0, len(audio), PACKED_BATCH):  # the decoder's memory, not the answer
        heard += _transcribe(fz, audio[at : at + PACKED_BATCH])
    alone = iter(piece_frames(fz, [p for pieces in windows for p in pieces]))
    out = []
    for pieces, ((lang, prob), result, n, words) in zip(windows, heard, strict=True):
        logprob = result.scores[0] * n / (n + 1) if n else 0.0
        silent = fz.speech.whisper_silent(result.no_speech_prob, logprob)
        out.append(
            _pieces(fz, pieces, [] if silent else words, [next(alone) for _ in pieces],
                    lang, prob, logprob, result.no_speech_prob)
        )  # fmt: skip
    return out


def _transcribe(fz: WhisperFeaturizer, audio: list[np.ndarray]) -> list[tuple]:
    """Packed windows' audio -> each one's (language, probability), Whisper's result, its
    number of text tokens and its words with their times: one encoder pass, the batched
    pipeline's decoding (no timestamp tokens, Whisper's fallback on a repetitive text), and
    the alignment."""
    feats = np.stack([fz._features(a, int(MAX_WINDOW_S * 100)) for a in audio])
    encoder_output = fz.model.encode(feats)
    frames_all = fz._to_numpy(encoder_output)
    languages = fz._languages(encoder_output, len(audio))
    results = fz.decoded(encoder_output, frames_all, languages, MAX_WINDOW_S, timestamps=False)
    tokens = [[t for t in r.sequences_ids[0] if t < fz.tokenizer.eot] for r in results]
    words = _words(fz, languages, tokens, frames_all, encoder_output.dtype, audio)
    return [
        (lang, r, len(t), w)
        for lang, r, t, w in zip(languages, results, tokens, words, strict=True)
    ]


def piece_frames(fz: WhisperFeaturizer, pieces: list[np.ndarray]) -> list[np.ndarray]:
    """Each piece's encoder frames (50 Hz) from a pass of its own, in the window fitted to
    it: the frames the model's training features were made of (a piece in a packed window
    is heard with its neighbours, and the model has not learnt that). Encoder only; pieces
    with the same window share a batch."""
    groups: dict[float, list[int]] = {}
    for j, piece in enumerate(pieces):
        groups.setdefault(fz._window_s(len(piece)), []).append(j)
    out: list[np.ndarray] = [np.zeros(0)] * len(pieces)
    for win_s, same in groups.items():
        for at in range(0, len(same), ENCODE_BATCH):  # the encoder's memory, not the answer
            js = same[at : at + ENCODE_BATCH]
            feats = np.stack([fz._features(pieces[j], int(win_s * 100)) for j in js])
            encoded = fz._to_numpy(fz.model.encode(feats))
            for j, frames in zip(js, encoded, strict=True):
                out[j] = frames[: max(1, math.ceil(len(pieces[j]) / SAMPLES_PER_FRAME))].copy()
    return out


def _words(fz, languages, tokens, frames_all, dtype, audio) -> list[list[dict]]:
    """The decoded words of each window with their times (s), by Whisper's cross-attention
    alignment (one pass over the windows that have words, as their language's tokenizer
    reads them)."""
    import ctranslate2

    out: list[list[dict]] = [[] for _ in tokens]
    by_language: dict[str, list[int]] = {}
    for b, toks in enumerate(tokens):
        if toks:
            by_language.setdefault(languages[b][0], []).append(b)
    for language, rows in by_language.items():
        # the encoder frames of these windows, back in the encoder's dtype (as _fallback)
        view = ctranslate2.StorageView.from_array(np.ascontiguousarray(frames_all[rows]))
        content = max(math.ceil(len(audio[b]) / (SAMPLE_RATE / 100)) for b in rows)
        found = fz.model.find_alignment(
            fz._tokenizer_for(language), [tokens[b] for b in rows], view.to(dtype), content
        )
        for b, words in zip(rows, found, strict=True):
            out[b] = words
    return out


def _pieces(fz, pieces, words, frames, lang, prob, logprob, no_speech) -> list[SpeechFeatures]:
    """One window's words shared out among its pieces, with each piece's own ``frames``."""
    bounds = np.cumsum([0] + [len(p) for p in pieces]) / SAMPLE_RATE
    texts: list[list[dict]] = [[] for _ in pieces]
    for word in words:
        middle = (word["start"] + word["end"]) / 2
        k = int(np.clip(np.searchsorted(bounds, middle, side="right") - 1, 0, len(pieces) - 1))
        texts[k].append(word)
    out = []
    for k, piece in enumerate(pieces):
        own = frames[k]
        text = "".join(w["word"] for w in texts[k]).strip()
        segments = []
        if text:
            start = max(0.0, texts[k][0]["start"] - bounds[k])
            end = min(len(piece) / SAMPLE_RATE, texts[k][-1]["end"] - bounds[k])
            segments = [Segment(round(start, 2), round(max(start, end), 2), text)]
        out.append(
            SpeechFeatures(
                transcript=text,
                language=lang,
                language_prob=prob,
                segments=segments,
                frames=pool_frames(own, fz.pool).astype(np.float32),
                embedding=own.mean(axis=0).astype(np.float32),
                avg_logprob=_piece_logprob(texts[k], logprob),
                no_speech_prob=float(no_speech),
                window_s=MAX_WINDOW_S,
            )
        )
    fz.with_prosody(pieces, out)
    return out


def _piece_logprob(words: list[dict], window_logprob: float) -> float:
    """A piece's mean log-probability: its words' (alignment's token probabilities), else
    its window's."""
    probs = [w["probability"] for w in words if w.get("probability")]
    return float(np.mean(np.log(probs))) if probs else float(window_logprob)
