from raymer.corpora.synth import plan_corpus
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
