from raymer.cli import main
from raymer.serving.client import table


def _answer(label, emotions, **extra):
    return {"label": label, "emotions": emotions} | extra


def test_table_rows_for_audio_text_multi_label_and_errors():
    rows = [
        (
            "joe_00000.wav",
            _answer("angry", {"angry": 0.9, "sad": 0.1}, duration_s=3.24, transcript="Go away."),
        ),
        ("(text)", _answer("sad", {"angry": 0.2, "sad": 0.7}, text="I miss her.")),
        (
            "(text)",
            _answer(
                "admiration",
                {"admiration": 0.8, "gratitude": 0.6, "anger": 0.1},
                labels=["admiration", "gratitude"],
                text="Thank you, that was brilliant!",
            ),
        ),
        ("(text)", _answer("anger", {"anger": 0.3}, labels=[], text="Hm.")),
        ("bad.wav", {"error": "HTTP 422: not audio"}),
        ("noise.wav", _answer(None, None, no_speech=True, duration_s=3.0, transcript="")),
    ]
    lines = table(rows).splitlines()
    assert lines[0].split() == ["input", "label", "score", "dur", "s", "transcript"]
    assert lines[1].split() == ["joe_00000.wav", "angry", "0.900", "3.2", "Go", "away."]
    # a text has no duration; the label column widens for joined multi-label answers
    assert lines[2].split() == ["(text)", "sad", "0.700", "I", "miss", "her."]
    assert lines[3].split()[:3] == ["(text)", "admiration+gratitude", "0.800"]
    assert lines[4].split()[:3] == ["(text)", "-", "0.300"]  # no label over the threshold
    assert lines[5] == f"{'bad.wav':<28} error: HTTP 422: not audio"
    assert lines[6].split() == ["noise.wav", "(no", "speech)", "-", "3.0"]  # no emotion
    # the columns line up: every score ends at the same place
    scores = ["0.900", "0.700", "0.800", "0.300"]
    ends = {line.index(score) + 5 for line, score in zip(lines[1:5], scores, strict=True)}
    assert len(ends) == 1


def test_predict_without_inputs_says_what_to_give(capsys):
    assert main(["predict", "--url", "http://127.0.0.1:9"]) == 2
    assert "give audio files or folders, or --text" in capsys.readouterr().err


def test_predict_on_an_unreachable_service_fails_at_once(capsys):
    assert main(["predict", "--text", "hello", "--url", "http://127.0.0.1:9"]) == 1  # failed
    assert "cannot reach http://127.0.0.1:9" in capsys.readouterr().err


def test_table_shows_a_models_dimensions():
    rows = [
        ("a.wav", _answer("angry", {"angry": 0.9}, duration_s=2.0, transcript="No!",
                          dimensions={"arousal": 0.62, "valence": -0.4})),
        ("quiet.wav", _answer(None, None, no_speech=True, duration_s=1.0, transcript="",
                              dimensions={"arousal": None, "valence": None})),
    ]  # fmt: skip
    lines = table(rows).splitlines()
    assert lines[0].split()[:5] == ["input", "label", "score", "arousal", "valence"]
    assert lines[1].split() == ["a.wav", "angry", "0.900", "+0.62", "-0.40", "2.0", "No!"]
    assert lines[2].split()[3:7] == ["-", "-", "-", "1.0"]  # no score, no dimensions
