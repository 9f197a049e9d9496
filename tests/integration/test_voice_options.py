"""Augmentation, prosody and audio normalisation end to end on real Ray: extracted into the
features in one pass, recorded in the checkpoint, and applied alike by evaluate (stored
features) and the library (inputs made live from the checkpoint's settings)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from raymer.audio.prosody import PROSODY_DIM

WHISPER_DIM = 384  # whisper-tiny.en


@pytest.fixture(scope="module")
def corpus(multi_speaker_corpus, tmp_path_factory) -> Path:
    """16 of the multi-speaker clips (4 per speaker), paths made absolute."""
    rows = list(csv.DictReader(multi_speaker_corpus.open()))[:16]
    for row in rows:
        row["path"] = str((multi_speaker_corpus.parent / row["path"]).resolve())
    out = tmp_path_factory.mktemp("voice") / "manifest.csv"
    with out.open("w", newline="") as f:
        writer = csv.DictWriter(f, list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return out


@pytest.fixture(scope="module")
def features(ray_session, corpus) -> Path:
    from raymer.config import ExtractConfig, load_config
    from raymer.pipeline.extract import extract

    out = corpus.parent / "extract"
    cfg = load_config(
        ExtractConfig,
        "configs/extract/tiny.yaml",
        ["augment.copies=1", "augment.seed=3", "prosody=true"],
        input=str(corpus),
        output=str(out),
    )
    summary = extract(cfg)
    assert (summary.clips_ok, summary.copies, summary.clips_failed) == (16, 16, 0)
    assert "(+16 augmented copies)" in summary.line()
    return out


def _table(features: Path) -> pa.Table:
    return pa.concat_tables(
        pq.read_table(p) for p in sorted((features / "features").glob("*.parquet"))
    )


def test_each_clip_has_its_copy_and_its_prosody_in_the_features(features):
    rows = _table(features).to_pylist()
    clips = {r["id"]: r for r in rows if r["augment"] is None}
    copies = [r for r in rows if r["augment"] is not None]
    assert len(clips) == 16 and len(copies) == 16
    for copy in copies:
        clip = clips[copy["id"]]  # the clip's id, speaker and label: the clip's split
        assert (copy["speaker"], copy["label"]) == (clip["speaker"], clip["label"])
        assert copy["augment"] != "unchanged"
        a, b = np.asarray(clip["audio_frames"]), np.asarray(copy["audio_frames"])
        assert a.shape[1] == b.shape[1] == WHISPER_DIM + PROSODY_DIM
        assert a.shape != b.shape or not np.allclose(a, b, atol=1e-3)  # changed as said
    for clip in clips.values():
        frames = np.asarray(clip["audio_frames"])
        assert len(clip["audio_embedding"]) == WHISPER_DIM  # the Whisper columns' mean
        prosody = frames[:, WHISPER_DIM:]
        assert np.abs(prosody).sum(1).min() >= 0 and np.abs(prosody).max() > 1  # not empty


def test_options_are_recorded_in_the_checkpoint_and_applied_alike_everywhere(
    features, corpus, train_config, tmp_path
):
    import raymer
    from raymer.trained.checkpoint import load_spec
    from raymer.training.evaluate import evaluate
    from raymer.training.trainer import train

    options = (
        "model.prosody=true",
        "model.audio_norm=recording",
        "data.use_augmented=true",
        "optim.epochs=2",
    )
    summary = train(train_config(features, tmp_path / "all", *options))
    spec = load_spec(summary.best_checkpoint)
    assert (spec.audio_dim, spec.prosody_dim) == (WHISPER_DIM + PROSODY_DIM, PROSODY_DIM)
    assert len(spec.prosody_mean) == len(spec.prosody_std) == PROSODY_DIM
    assert spec.extract.prosody and spec.audio_norm == "recording"
    m = evaluate(summary.best_checkpoint, str(features), str(tmp_path / "eval"), ["en-gb_m3"])
    assert m.n == 4  # the held-out speaker's clips, not their copies
    stored = {
        r["id"]: r for r in pq.read_table(tmp_path / "eval" / "predictions.parquet").to_pylist()
    }
    paths = {
        r["id"]: r["path"] for r in csv.DictReader(corpus.open()) if r["speaker"] == "en-gb_m3"
    }
    live = raymer.Recognizer.from_checkpoint(summary.best_checkpoint, threads=1)
    for rid, result in zip(paths, live.predict(list(paths.values())), strict=True):
        scores = result["emotions"]
        assert max(abs(scores[k] - stored[rid][f"score_{k}"]) for k in spec.labels) < 0.02, rid
    # (a model without prosody on the same features: the ablation's baseline, below)


VARIANTS = ["baseline", "prosody+speaker_norm+dropout"]


@pytest.fixture(scope="module")
def ablated(features, train_config, tmp_path_factory) -> tuple[Path, dict]:
    """`raymer ablation` of the baseline and prosody + speaker norm + modality dropout, one run
    each (the features again as a "held-out set": every clip scored, for the plumbing): its
    output folder and report, read by the ablation's test and the speaker-norm one."""
    from raymer.training.ablation import ablation

    root = tmp_path_factory.mktemp("ablation")
    cfg = train_config(features, root, "optim.epochs=1", "data.report_by=[clip_type]")
    return root, ablation(cfg, runs=1, variants=VARIANTS, heldout=[str(features)])


def test_speaker_norm_reads_each_speakers_statistics_from_ray_data(features, corpus, ablated):
    """The speaker-norm variant of the ablation: each speaker's statistics as numpy computes
    them, the training speakers' pooled in the spec, each held-out speaker's own when asked,
    and by default the library's answer."""
    import raymer
    from raymer.audio.normalize import EPS
    from raymer.trained.checkpoint import load_spec
    from raymer.training.data import frame_stats

    root, _ = ablated
    run = root / "ablation" / VARIANTS[1] / "run-0"
    summary = json.loads((run / "train_summary.json").read_text())
    spec = load_spec(summary["best_checkpoint"])
    assert spec.audio_norm == "speaker" and spec.prosody_dim == PROSODY_DIM
    width = WHISPER_DIM + PROSODY_DIM  # the columns the model reads: Whisper's and prosody's
    stats = frame_stats(str(features), width)
    rows = [r for r in _table(features).to_pylist() if r["augment"] is None]
    for speaker in {r["speaker"] for r in rows}:
        frames = np.concatenate(
            [np.asarray(r["audio_frames"])[:, :width] for r in rows if r["speaker"] == speaker]
        )
        mean, std = stats.mean_std(speaker)
        np.testing.assert_allclose(mean, frames.mean(0), rtol=1e-3, atol=1e-4)
        # (the spread kept off zero, EPS: prosody columns can be near-constant for a speaker)
        np.testing.assert_allclose(std, np.sqrt(frames.var(0) + EPS), rtol=1e-3, atol=1e-4)
    pooled = stats.pooled(summary["train_speakers"])  # kept for every path without a speaker's
    np.testing.assert_allclose(spec.frame_mean, pooled[0], rtol=1e-5)
    np.testing.assert_allclose(spec.frame_std, pooled[1], rtol=1e-5)
    adaptive = json.loads((run / "eval-speaker-stats" / "metrics.json").read_text())
    assert adaptive["n"] == 4 and adaptive["speaker_stats"]
    # By default evaluate scores as the library does: one answer whichever way.
    m = json.loads((run / "eval" / "metrics.json").read_text())
    assert m["n"] == 4 and not m["speaker_stats"]
    rows = {r["id"]: r for r in pq.read_table(run / "eval" / "predictions.parquet").to_pylist()}
    paths = {r["id"]: r["path"] for r in csv.DictReader(corpus.open()) if r["id"] in rows}
    live = raymer.Recognizer.from_checkpoint(summary["best_checkpoint"], threads=1)
    for rid, answer in zip(paths, live.predict(list(paths.values())), strict=True):
        scores = answer["emotions"]
        assert max(abs(scores[k] - rows[rid][f"score_{k}"]) for k in spec.labels) < 0.02


def test_the_ablation_trains_and_scores_each_variant(features, ablated):
    import yaml

    tmp_path, report = ablated
    variants = VARIANTS
    assert list(report["results"]) == variants
    base, both = report["results"]["baseline"][0], report["results"][variants[1]][0]
    assert base["n"] == both["n"] == 4 and "adaptive" in both and "adaptive" not in base
    assert set(base["by"]["clip_type"]) <= {"congruent", "audio_cue", "text_cue", "neutral"}
    held = base["heldout"][str(features)]
    assert held["n"] > base["n"] and set(held["by"]["clip_type"]) >= set(base["by"]["clip_type"])
    assert set(report["chosen"]) == {"test_speakers", str(features)}
    assert set(report["chosen"].values()) <= set(variants)
    spec = json.loads(next((tmp_path / "ablation" / variants[1]).rglob("model.json")).read_text())
    assert spec["prosody_dim"] == PROSODY_DIM and spec["audio_norm"] == "speaker"
    # the baseline, without prosody on features that carry it, reads the Whisper columns only
    # (serving then extracts none), and is evaluated on the held-out speaker's 4 clips above
    spec = json.loads(next((tmp_path / "ablation" / "baseline").rglob("model.json")).read_text())
    assert spec["audio_dim"] == WHISPER_DIM and spec["prosody_dim"] == 0
    assert spec["extract"]["prosody"] is False
    ran = yaml.safe_load(
        (tmp_path / "ablation" / variants[1] / "run-0" / "config.yaml").read_text()
    )
    assert ran["optim"]["modality_dropout"] == 0.3 and ran["model"]["targets"] == ["label"]
    table = (tmp_path / "ablation.md").read_text()
    assert "| baseline |" in table and f"| {variants[1]}, speaker-adaptive |" in table
    assert f"Held-out set {features}: the same checkpoints." in table and "Chosen by" in table
