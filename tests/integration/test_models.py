"""Real models (whisper tiny.en, MiniLM) on synthesised speech, without Ray."""

import csv

import numpy as np
import pytest
import soundfile

from raymer.models.registry import resolve_model
from raymer.models.whisper import _compression_ratio
from raymer.wer import wer, word_errors


@pytest.fixture(scope="module")
def featurizer():
    from raymer.models.whisper import WhisperFeaturizer

    return WhisperFeaturizer(resolve_model("whisper-tiny.en"), cpu_threads=2, frame_rate_hz=10)


@pytest.fixture(scope="module")
def clips(piper_corpus):
    rows = list(csv.DictReader(piper_corpus.open()))[:4]
    audio = [soundfile.read(piper_corpus.parent / r["path"], dtype="float32")[0] for r in rows]
    return rows, audio


def test_transcripts_hold_the_spoken_words(featurizer, clips):
    rows, audio = clips
    results = featurizer(audio)
    for row, res in zip(rows, results, strict=True):
        assert wer(row["text"], res.transcript) < 0.35, (row["text"], res.transcript)
        assert res.language == "en" and res.segments
        assert 0 <= res.segments[0].start < res.segments[-1].end <= len(audio[0]) / 16_000 + 30


def test_frames_and_embedding_shapes(featurizer, clips):
    _, audio = clips
    res = featurizer(audio[:1])[0]
    seconds = len(audio[0]) / 16_000
    assert res.frames.shape[1] == res.embedding.shape[0] == 384
    assert abs(res.frames.shape[0] - seconds * 10) <= 1  # pooled to 10 Hz over the clip only
    assert np.isfinite(res.frames).all() and np.isfinite(res.embedding).all()


def test_fit_window_matches_full_window(featurizer, clips):
    rows, audio = clips
    fit = featurizer(audio)
    featurizer.window = "full"
    try:
        full = featurizer(audio)
    finally:
        featurizer.window = "fit"

    def corpus_wer(results):
        edits = [word_errors(r["text"], x.transcript) for r, x in zip(rows, results, strict=True)]
        return sum(e for e, _ in edits) / sum(n for _, n in edits)

    assert corpus_wer(fit) <= corpus_wer(full) + 0.1
    for a, b in zip(fit, full, strict=True):
        cos = a.embedding @ b.embedding / np.linalg.norm(a.embedding) / np.linalg.norm(b.embedding)
        assert cos > 0.9


def test_long_audio_is_windowed_with_offsets(featurizer, clips):
    _, audio = clips
    gap = np.zeros(16_000 * 4, np.float32)
    long = np.concatenate([audio[0], gap] * 7 + [audio[1]])  # > 30 s
    assert len(long) > 16_000 * 30
    res = featurizer([long])[0]
    assert abs(res.frames.shape[0] - len(long) / 16_000 * 10) <= 2
    assert res.segments[-1].end > 30.0
    assert all(a.start <= b.start for a, b in zip(res.segments, res.segments[1:], strict=False))


def test_text_encoder_tokens_and_pooled_vector():
    from raymer.models.text_encoder import TextEncoder

    enc = TextEncoder(resolve_model("minilm-l6"), threads=1)
    happy, sad, empty = enc(["I am so happy today!", "I feel terribly sad and alone.", ""])
    assert happy.tokens.shape[1] == happy.embedding.shape[0] == 384
    assert happy.tokens.shape[0] == len(enc.tokenizer("I am so happy today!")["input_ids"])
    assert np.isclose(np.linalg.norm(happy.embedding), 1.0, atol=1e-5)
    mean = happy.tokens.mean(0)
    np.testing.assert_allclose(happy.embedding, mean / np.linalg.norm(mean), atol=1e-5)
    glad = enc(["I am really glad today!"])[0]
    assert happy.embedding @ glad.embedding > happy.embedding @ sad.embedding
    assert empty.tokens.shape[0] == 2  # [CLS] [SEP]


def test_silence_tone_and_noise_give_no_words(featurizer):
    t = np.arange(48_000) / 16_000
    clips = [
        np.zeros(48_000, np.float32),
        (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32),
        np.random.default_rng(0).normal(0, 0.01, 48_000).astype(np.float32),
    ]
    for res in featurizer(clips):
        assert res.transcript == "" and res.segments == []
        assert res.no_speech_prob > 0.6
        assert res.frames.shape[0] == 30  # the audio features are kept all the same


def test_temperature_fallback_decodes_from_stored_encoder_frames(featurizer, clips):
    """The fallback re-decodes from the numpy copy of the encoder output (a float32 copy
    put back in the encoder's dtype) and returns a non-repetitive transcript of the clip."""
    rows, audio = clips
    feats = featurizer._features(audio[0], 800)[None]
    encoder_output = featurizer.model.encode(feats)
    frames = featurizer._to_numpy(encoder_output)
    prompt = featurizer.model.get_prompt(featurizer.tokenizer, previous_tokens=[])
    first = featurizer._generate(encoder_output, [prompt], 100)[0]
    results = [
        featurizer._fallback(frames, encoder_output.dtype, prompt, 100, first) for _ in range(2)
    ]
    texts = [featurizer.tokenizer.decode(r.sequences_ids[0]) for r in results]
    for text in texts:  # sampled: the wording may differ run to run, not the content
        assert _compression_ratio(text) <= 2.4
        assert wer(rows[0]["text"], text) < 0.5, text


def test_auto_window_judges_each_clip_alone(clips):
    """``window: auto``: a clip Whisper is unsure of in its fitted window (noise: a mean
    log-probability under -1) is decoded again in the full 30 s window; a clip it is sure of
    keeps its fitted window; and a clip's transcript and frames are the same alone as beside
    batch-mates of other lengths and windows, the unsure one included."""
    from raymer.models.whisper import WhisperFeaturizer

    fz = WhisperFeaturizer(resolve_model("whisper-tiny.en"), cpu_threads=1, window="auto")
    _, audio = clips
    noise = np.random.default_rng(0).normal(0, 0.3, 16_000 * 3).astype(np.float32)
    alone = fz(audio[:1])[0]
    mixed = fz([noise, audio[0], audio[1][: 16_000 * 2], audio[2]])
    fz.window = "fit"
    assert fz([noise])[0].avg_logprob < -1.0  # unsure in its fitted window
    fz.window = "auto"
    assert mixed[0].window_s == 30.0 and alone.avg_logprob > -1.0
    assert alone.window_s < 30.0 and mixed[1].window_s == alone.window_s
    assert mixed[1].transcript == alone.transcript
    np.testing.assert_allclose(mixed[1].frames, alone.frames, rtol=0, atol=1e-5)
    fz.window = "full"  # the unsure clip's answer is the full window's own
    full = fz([noise])[0]
    assert full.transcript == mixed[0].transcript
    np.testing.assert_allclose(full.frames, mixed[0].frames, rtol=0, atol=1e-5)
