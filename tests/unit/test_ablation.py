"""The per-group scores of evaluate (``by``) and the ablation's table over runs."""

import pyarrow as pa
import pytest

from raymer.errors import UsageError
from raymer.training.ablation import ablation, ablation_markdown, summarise
from raymer.training.evaluate import breakdown

LABELS = ["angry", "neutral", "sad"]


def test_scores_per_value_of_a_column():
    table = pa.table(
        {
            "label": ["angry", "sad", "angry", "sad", "neutral"],
            "predicted": ["angry", "sad", "neutral", "neutral", "neutral"],
            "clip_type": ["congruent", "congruent", "audio_cue", "audio_cue", "neutral"],
        }
    )
    by = breakdown(table, LABELS, ["clip_type"], "f")["clip_type"]
    assert by["congruent"]["ua"] == 1.0 and by["congruent"]["n"] == 2
    assert by["audio_cue"]["ua"] == 0.0 and by["neutral"]["wa"] == 1.0
    with pytest.raises(UsageError, match="no such column"):
        breakdown(table, LABELS, ["template"], "f")


def test_the_ablation_reports_mean_and_spread_over_runs():
    def run(ua, voice):
        return {"ua": ua, "by": {"clip_type": {"audio_cue": {"ua": voice}, "text_cue": {"ua": 1}}}}

    base = summarise([run(0.6, 0.4), run(0.7, 0.5), run(0.8, 0.6)])
    assert base["ua"]["mean"] == pytest.approx(0.7) and base["ua"]["std"] == pytest.approx(0.1)
    assert base["by"]["clip_type"]["audio_cue"]["values"] == [0.4, 0.5, 0.6]
    report = {
        "test_speakers": ["s1"],
        "modality": "fusion",
        "runs": 3,
        "summary": {
            "baseline": base,
            "all": summarise([run(0.9, 0.8) | {"adaptive": run(0.5, 0.2)}] * 3),
        },
    }
    table = ablation_markdown(report)
    assert "| all, speaker-adaptive | 0.500 ± 0.000 | 0.200 ± 0.000 |" in table
    assert "| baseline | 0.700 ± 0.100 | 0.500 ± 0.100 | 1.000 ± 0.000 |" in table
    assert "| all | 0.900 ± 0.000 | 0.800 ± 0.000 |" in table


def test_variants_are_options_and_their_combinations():
    from raymer.training.ablation import settings_of

    off = {"optim.modality_dropout": 0.0, "model.targets": ["label"]}
    assert (
        settings_of("baseline")
        == {
            "data.use_augmented": False,
            "model.audio_norm": "none",
            "model.prosody": False,
        }
        | off
    )
    assert (
        settings_of("prosody+speaker_norm")
        == {
            "data.use_augmented": False,
            "model.audio_norm": "speaker",
            "model.prosody": True,
        }
        | off
    )
    assert (
        settings_of("all")
        == {
            "data.use_augmented": True,
            "model.audio_norm": "speaker",
            "model.prosody": True,
        }
        | off
    )
    both = settings_of("dropout+dimensions")
    assert both["optim.modality_dropout"] == 0.3
    assert both["model.targets"] == ["label", "arousal", "valence"]


def test_the_rule_chooses_the_best_ua_that_costs_neither_cue_more_than_the_margin():
    """On each scored set apart: a variant that gains UA by losing voice-only clips (more
    than 0.02 under the baseline) is passed over for the best one that does not."""
    from raymer.training.ablation import choose

    def runs(ua, voice, words):
        return [
            {"ua": ua, "by": {"clip_type": {"audio_cue": {"ua": voice}, "text_cue": {"ua": words}}}}
            | {"heldout": {"h1": {"ua": 1 - ua, "by": {}}}}
        ] * 3

    summary = {
        "baseline": summarise(runs(0.60, 0.40, 0.70)),
        "greedy": summarise(runs(0.70, 0.30, 0.90)),  # voice-only 0.10 worse: out
        "fair": summarise(runs(0.65, 0.39, 0.69)),  # 0.01 worse each: within the margin
        "worse": summarise(runs(0.62, 0.50, 0.70)),
    }
    assert choose(summary) == "fair"
    assert choose(summary, "h1") == "baseline"  # no clip types there: the best UA alone
    report = {"test_speakers": ["s1"], "modality": "fusion", "runs": 3, "summary": summary}
    report |= {"heldout": ["h1"], "chosen": {"test_speakers": "fair", "h1": "baseline"}}
    table = ablation_markdown(report)
    assert "Held-out set h1: the same checkpoints." in table
    assert "| baseline | 0.400 ± 0.000 |" in table and "**fair**" in table


def test_the_ablation_refuses_what_it_cannot_run(tmp_path):
    import pyarrow.parquet as pq

    from raymer.config import TrainConfig

    (tmp_path / "features").mkdir()
    pq.write_table(
        pa.table(
            {"id": ["a"], "asr_model": ["m"], "text_model": ["t"], "audio_frame_rate_hz": [10.0]}
        ),
        tmp_path / "features" / "p.parquet",
    )
    cfg = TrainConfig(
        features=str(tmp_path), output=str(tmp_path / "out"), data={"test_speakers": ["s"]}
    )
    with pytest.raises(UsageError, match="augment.copies"):
        ablation(cfg, 3, ["baseline", "augment"])
    with pytest.raises(UsageError, match="prosody: true"):
        ablation(cfg, 3, ["prosody"])
    with pytest.raises(UsageError, match="unknown \\['louder'\\]"):
        ablation(cfg, 3, ["louder"])
    with pytest.raises(UsageError, match="one norm at a time"):
        ablation(cfg, 3, ["speaker_norm+recording_norm"])
    with pytest.raises(UsageError, match="test_speakers"):
        ablation(cfg.updated(**{"data.test_speakers": []}), 3, ["baseline"])


def test_the_encoder_comparison_refuses_what_it_cannot_score_before_any_run(tmp_path):
    from raymer.config import TrainConfig
    from raymer.training.encoders import compare_encoders, encoders_markdown

    cfg = TrainConfig(features=str(tmp_path / "f"), output=str(tmp_path / "out"))
    with pytest.raises(UsageError, match="set test_speakers"):
        compare_encoders(cfg, [], runs=1)
    with pytest.raises(UsageError, match="--runs must be at least 1"):
        compare_encoders(cfg.updated(**{"data.test_speakers": ["s"]}), [], runs=0)
    assert not (tmp_path / "out").exists()
    row = {"name": "a + b", "ua": [0.5, 0.7], "by": {}, "wer": None, "rows_per_s": None}
    table = encoders_markdown(
        {"test_speakers": ["s"], "modality": "fusion", "runs": 2, "sets": [row | {"memory_mb": 3}]}
    )
    assert "| a + b | 0.600 ± 0.141 | - | - | 3 MB |" in table
