from raymer.corpora.synth_plan import plan_corpus
from raymer.corpora.synth_text import LABELS, sentence


def test_plan_is_deterministic_and_balanced():
    a, b = plan_corpus(400, seed=5, speakers=8), plan_corpus(400, seed=5, speakers=8)
    assert a == b
    assert a != plan_corpus(400, seed=6, speakers=8)
    for speaker in {s.speaker for s in a}:
        assert {s.label for s in a if s.speaker == speaker} == set(LABELS)
    types = {s.clip_type for s in a}
    assert types == {"congruent", "audio_cue", "text_cue", "neutral"}
    for s in a:
        if s.clip_type == "audio_cue":
            assert s.template.startswith("neutral") and s.prosody.rate != 1.0
        if s.clip_type == "text_cue":
            assert s.template.startswith(s.label)
        if s.label == "neutral":
            assert s.clip_type == "neutral"


def test_many_distinct_sentences():
    import random

    rng = random.Random(0)
    texts = {sentence(w, rng)[0] for w in ("angry", "happy", "sad", "neutral") for _ in range(1000)}
    assert len(texts) > 2000


def test_pitched_rates_keep_the_resampler_small():
    """A pitch shift resamples between the voice's rate and rate * pitch: on a 50 Hz grid
    their ratio reduces to a few hundred (a small filter), not 11,797/11,025 (gigabytes at
    800 clips), and the pitch is off by at most 0.2 %."""
    import math
    import random

    from raymer.corpora.synth import _pitched_rate

    rng = random.Random(0)
    for _ in range(200):
        pitch = rng.uniform(0.8, 1.25)
        shifted = _pitched_rate(22_050, pitch)
        assert 22_050 // math.gcd(shifted, 22_050) <= 441
        assert abs(shifted / 22_050 - pitch) / pitch < 0.002


def test_the_heldout_set_shares_no_voice_and_no_sentence_with_the_sample_corpus():
    from raymer.corpora.synth_plan import HELDOUT_VOICES, VOICES
    from raymer.corpora.synth_text import EMOTION_TEMPLATES, NEUTRAL_TEMPLATES

    assert not set(HELDOUT_VOICES) & set(VOICES)
    held = plan_corpus(120, seed=3, speakers=6, voices="heldout")
    sample = plan_corpus(120, seed=3, speakers=8)
    assert {s.speaker for s in held} == {v.split(":")[1].replace("+", "_") for v in HELDOUT_VOICES}
    assert not {s.text for s in held} & {s.text for s in sample}
    assert all(s.template.startswith("heldout-") for s in held)
    templates = [t for ts in EMOTION_TEMPLATES.values() for t in ts] + NEUTRAL_TEMPLATES
    fixed = [t.split("{")[0] for t in templates if t.split("{")[0].strip()]
    for spec in held:  # not a filled template of the sample corpus
        assert not any(spec.text.startswith(f) and len(f) > 12 for f in fixed), spec.text
    assert {s.clip_type for s in held} == {s.clip_type for s in sample}  # the same four types
    assert plan_corpus(120, seed=3, speakers=6, voices="heldout") == held  # seeded


def test_recording_conditions_are_a_setup_per_speaker_and_noise_per_clip():
    studio = plan_corpus(64, seed=3, speakers=8)
    varied = plan_corpus(64, seed=3, speakers=8, conditions="varied")
    assert all(s.condition is None for s in studio)
    assert [s.text for s in studio] == [s.text for s in varied]  # only the recording differs
    assert varied == plan_corpus(64, seed=3, speakers=8, conditions="varied")
    setups = {}
    for s in varied:
        c = s.condition
        setup = (c.rt60_s, c.telephone, c.codec)
        assert setups.setdefault(s.speaker, setup) == setup, s.speaker  # one room per speaker
        assert c.speed is None and -10.0 <= c.gain_db <= 6.0
    assert len(set(setups.values())) > 1  # speakers do not share one studio
    assert len({s.condition.snr_db for s in varied}) > 10  # noise is the clip's own
    heldout = plan_corpus(12, seed=3, speakers=6, voices="heldout", conditions="varied")
    assert all(s.condition is not None for s in heldout)


def test_dimensions_follow_the_emotion_and_the_intensity_rendered_in_the_voice():
    """Arousal and valence are the emotion's circumplex point times the clip's intensity,
    and the same intensity sets how far the voice departs from neutral: a model can learn
    them from the voice (and the words), not from a draw it cannot hear."""
    import numpy as np

    from raymer.corpora.synth_plan import CIRCUMPLEX, INTENSITY, dimensions_of

    specs = plan_corpus(600, seed=2, speakers=8)
    assert specs == plan_corpus(600, seed=2, speakers=8)
    for s in specs:
        assert INTENSITY[0] <= s.intensity <= INTENSITY[1]
        assert -1 <= s.arousal <= 1 and -1 <= s.valence <= 1
        a, v = CIRCUMPLEX[s.label]
        assert abs(s.arousal - a * s.intensity) < 0.25 and abs(s.valence - v * s.intensity) < 0.25
        if s.label == "neutral":
            assert abs(s.arousal) < 0.25 and abs(s.valence) < 0.25
    for label, sign in (("angry", 1), ("sad", -1)):
        voiced = [s for s in specs if s.label == label and s.clip_type != "text_cue"]
        k = np.array([s.intensity for s in voiced])
        gain = np.array([s.prosody.gain_db for s in voiced])
        arousal = np.array([s.arousal for s in voiced])
        assert sign * np.corrcoef(k, gain)[0, 1] > 0.7  # anger louder, sadness softer
        assert np.corrcoef(gain, arousal)[0, 1] > 0.6  # the louder, the more aroused
    # the intensity draw is the clip's own: the rest of the plan (words, voices) is unchanged
    assert dimensions_of("angry", 2, specs[1].id) == dimensions_of("angry", 2, specs[1].id)
    assert [s.text for s in specs[:50]] == [s.text for s in plan_corpus(50, seed=2, speakers=8)]


def test_speakers_beyond_the_listed_voices_are_drawn_from_each_set_s_own_space():
    """The listed voices first, as rendered (an 8-speaker corpus is the one of earlier
    releases); every speaker after them a voice of its own from the set's space; no sample
    speaker, however many, in an accent of the held-out set; any 100 clips in a row of the
    default in 100 voices."""
    from raymer.config.extract import SYNTH_SPEAKERS
    from raymer.corpora.synth_plan import (
        ACCENTS,
        FORMANT,
        HELDOUT_VOICES,
        PITCH,
        RATE,
        VOICES,
        Voice,
        voice_of,
    )

    eight = plan_corpus(64, seed=3, speakers=8)
    assert [s.voice for s in eight[:8]] == [voice_of("sample", i, 3) for i in range(8)]
    assert {(s.voice.pitch, s.voice.range, s.voice.rate, s.voice.formant) for s in eight} == {
        (1.0, 1.0, 1.0, 1.0)
    }
    assert eight[0].voice == Voice("joe", "piper", "joe") and eight[3].speaker == "en-gb_m3"

    cast = [voice_of("sample", i, 3) for i in range(2000)]
    held = [voice_of("heldout", i, 3) for i in range(500)]
    assert [f"{v.engine}:{v.voice}" for v in cast[:16]] == VOICES
    assert [f"{v.engine}:{v.voice}" for v in held[:6]] == HELDOUT_VOICES
    for space, voices in (("sample", cast), ("heldout", held)):
        assert len({v.name for v in voices}) == len(voices)  # a name each
        drawn = voices[len(VOICES if space == "sample" else HELDOUT_VOICES) :]
        assert len({(v.voice, v.pitch, v.rate) for v in drawn}) == len(drawn)  # a voice each
        for v in drawn:
            assert PITCH[0] <= v.pitch <= PITCH[1] and RATE[0] <= v.rate <= RATE[1]
            assert FORMANT[0] <= v.formant <= FORMANT[1] or v.engine == "piper"
            if v.engine == "espeak":
                assert v.voice.split("+")[0] in ACCENTS[space]
    assert not {v.voice.split("+")[0] for v in cast} & set(ACCENTS["heldout"])
    assert not {v.voice for v in cast} & {v.voice for v in held}
    assert 0.03 < sum(v.engine == "piper" for v in cast) / len(cast) < 0.15
    assert voice_of("sample", 40, 3) != voice_of("sample", 40, 4)  # drawn from the seed
    assert voice_of("sample", 40, 3) == cast[40]

    specs = plan_corpus(800, seed=3, speakers=SYNTH_SPEAKERS)
    for start in range(0, 700, 50):
        assert len({s.speaker for s in specs[start : start + 100]}) == 100
    per = {}
    for s in specs:
        per.setdefault(s.speaker, []).append(s.label)
    assert all(sorted(labels) == sorted(LABELS * 2) for labels in per.values())


def test_a_drawn_voice_s_formants_move_and_its_pitch_and_tempo_stay():
    """espeak-ng rendered at pitch and rate over the formant factor, then played that much
    faster: as long as the voice unshifted (within 8 %), with a higher spectral centroid for
    a shorter vocal tract (1.09) than for a longer one (0.92)."""
    import numpy as np

    from raymer.corpora.synth import SAMPLE_RATE, _espeak, _finish
    from raymer.corpora.synth_plan import Prosody

    def rendered(formant: float) -> np.ndarray:
        audio, rate = _espeak("en-us+m3", "The bus to the station leaves at six thirty.",
                              Prosody(), formant)  # fmt: skip
        return _finish(audio, rate, Prosody(), seed=0)

    def centroid(x: np.ndarray) -> float:
        power = np.abs(np.fft.rfft(x)) ** 2
        freqs = np.fft.rfftfreq(len(x), 1 / SAMPLE_RATE)
        return float((power * freqs).sum() / power.sum())

    plain, short, long = rendered(1.0), rendered(1.09), rendered(0.92)
    for shifted in (short, long):
        assert abs(len(shifted) / len(plain) - 1) < 0.08, (len(shifted), len(plain))
    assert centroid(short) > 1.04 * centroid(long)
