"""raymer train on real Ray Train over extracted features (2 workers and gloo where the test
is about distributed training: DDP, resuming, a worker killed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from raymer.audio.prosody import PROSODY_DIM
from raymer.config import TrainConfig, load_config
from raymer.models.builders import build_fusion_model
from raymer.trained.checkpoint import ModelSpec
from raymer.training.trainer import train


def test_train_checkpoints_and_resumes(train_config, multi_speaker_features, tmp_path):
    ddp = "resources.model.actors=2"
    summary = train(train_config(multi_speaker_features, tmp_path, "optim.epochs=2", ddp))
    assert summary.epochs == 2 and len(summary.history) == 2
    assert summary.labels == ["angry", "happy", "neutral", "sad"]
    assert summary.test_speakers == ["en-gb_m3"] and summary.val_speakers == ["en-us_f2"]
    assert set(summary.train_speakers) == {"joe", "en-us_m1"}
    best = Path(summary.best_checkpoint)
    spec = json.loads((best / "model.json").read_text())
    model = build_fusion_model(ModelSpec(**spec))
    model.load_state_dict(torch.load(best / "model.pt"))  # a complete, loadable model
    assert spec["labels"] == summary.labels and spec["text_dim"] == 384
    # the features carry prosody (extract's default), so the model reads it (model.prosody auto)
    assert spec["audio_dim"] == 384 + PROSODY_DIM and spec["prosody_dim"] == PROSODY_DIM
    assert (
        spec["extract"]["prosody"]
        and yaml.safe_load((tmp_path / "config.yaml").read_text())["model"]["prosody"] is True
    )
    # how the features were made, for serving to make its inputs the same way
    assert spec["extract"]["asr_model"] == "whisper-tiny.en" and spec["extract"]["window"] == "fit"
    assert 0.0 <= summary.best_val_ua <= 1.0
    # calibrated on the validation speaker's clips at the end: the temperature in the spec
    cal = summary.calibration
    assert spec["temperature"] == cal["temperature"] > 0 and cal["n"] == 8
    assert 0 <= cal["ece_after"] <= 1 and 0 <= cal["brier_after"] <= 2
    assert json.loads((tmp_path / "train_summary.json").read_text())["best_checkpoint"] == str(best)

    # The same run name again, with more epochs: it continues from epoch 2, not from scratch.
    resumed = train(train_config(multi_speaker_features, tmp_path, "optim.epochs=3", ddp))
    assert resumed.epochs == 3
    assert [h["epoch"] for h in resumed.history] == [1, 2, 3]
    assert _checkpoint_states(tmp_path)[-1]["resumed_at"] == [2]


def test_train_refuses_unknown_test_speaker(train_config, multi_speaker_features, tmp_path):
    import pytest

    with pytest.raises(ValueError, match="not in the features"):
        train(train_config(multi_speaker_features, tmp_path, "data.test_speakers=[nobody]"))


def test_evaluate_writes_metrics_predictions_report_and_plots(
    trained, multi_speaker_features, tmp_path
):
    import pyarrow.parquet as pq

    from raymer.training.evaluate import evaluate

    run, summary = trained.run("fusion"), trained.summary("fusion")
    out = tmp_path / "eval"
    # The train output folder itself is accepted: its best checkpoint is used.
    metrics = evaluate(str(run), str(multi_speaker_features), str(out), ["en-gb_m3"])
    assert metrics.checkpoint == summary["best_checkpoint"]
    saved = json.loads((out / "metrics.json").read_text())
    assert saved == json.loads(json.dumps(metrics.to_json()))  # the record is the file
    for key in ("ua", "wa", "macro_f1", "per_class", "confusion"):
        assert key in saved
    assert saved["speakers"] == ["en-gb_m3"] and saved["n"] == 8
    predictions = pq.read_table(out / "predictions.parquet").to_pylist()
    assert len(predictions) == 8 and {p["speaker"] for p in predictions} == {"en-gb_m3"}
    for p in predictions:
        scores = [p[f"score_{label}"] for label in summary["labels"]]
        assert p["predicted"] == summary["labels"][scores.index(max(scores))]
        # calibrated at the end of training: a softmax of the logits over the temperature
        assert all(0 <= s <= 1 for s in scores) and sum(scores) == pytest.approx(1, abs=1e-6)
        assert "clip_type" in p and "audio_frames" not in p
    wa = sum(p["predicted"] == p["label"] for p in predictions) / 8
    assert abs(saved["wa"] - wa) < 1e-9
    report = (out / "report.md").read_text()
    assert "| UA | WA | macro-F1 |" in report and "before calibration" in report
    cal = saved["calibration"]  # the answered scores against the model's own, and the bins
    assert cal["temperature"] > 0 and cal["n"] == 8 and cal["accuracy"] == pytest.approx(wa)
    assert sum(b["n"] for b in cal["bins"]) == 8 and "ece" in cal["uncalibrated"]
    assert [r["min_confidence"] for r in cal["min_confidence"]] == [0.3, 0.4, 0.5, 0.6, 0.7]
    assert (out / "reliability.png").read_bytes()[:4] == b"\x89PNG"
    cue = evaluate(
        str(run),
        str(multi_speaker_features),
        str(tmp_path / "cue"),
        None,
        {"clip_type": ["audio_cue", "text_cue"]},
    )
    cue_rows = pq.read_table(tmp_path / "cue" / "predictions.parquet").to_pylist()
    assert cue.n == len(cue_rows) > 0
    assert {r["clip_type"] for r in cue_rows} <= {"audio_cue", "text_cue"}
    assert (out / "confusion.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (run / "training_curves.png").read_bytes()[:4] == b"\x89PNG"


def test_infer_predicts_every_clip_labelled_or_not(trained, multi_speaker_features, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq
    import pytest

    from raymer.training.evaluate import evaluate
    from raymer.training.infer import infer

    run = str(trained.run("fusion"))
    # The same clips with no labels, and one with a label the checkpoint never saw.
    table = pq.read_table(multi_speaker_features / "features")
    labels = [None] * (table.num_rows - 1) + ["surprised"]
    table = table.set_column(table.schema.get_field_index("label"), "label", pa.array(labels))
    (tmp_path / "unlabelled" / "features").mkdir(parents=True)
    pq.write_table(table, tmp_path / "unlabelled" / "features" / "part-0.parquet")
    with pytest.raises(ValueError, match=r"labels \['surprised'\] that the checkpoint"):
        evaluate(run, str(tmp_path / "unlabelled"), str(tmp_path / "ev"))
    ids = table.column("id").to_pylist()
    with pytest.raises(
        ValueError, match="no labelled clips .*31 clips have no label.*raymer infer"
    ):
        where = {"id": ids[:-1]}  # every clip but the foreign one
        evaluate(run, str(tmp_path / "unlabelled"), str(tmp_path / "ev"), None, where)

    summary = infer(run, str(tmp_path / "unlabelled"), str(tmp_path / "inf"))
    assert summary.n == table.num_rows == 32 and summary.unlabelled == 31
    assert sum(summary.predicted.values()) == 32
    rows = pq.read_table(tmp_path / "inf" / "predictions").to_pylist()
    assert sorted(r["id"] for r in rows) == sorted(ids)
    # the same clips, labelled: infer scores them as evaluate does
    evaluate(run, str(multi_speaker_features), str(tmp_path / "ev"))
    scored = {
        r["id"]: r for r in pq.read_table(tmp_path / "ev" / "predictions.parquet").to_pylist()
    }
    for r in rows:
        assert r["predicted"] == scored[r["id"]]["predicted"]
        assert r["score_angry"] == pytest.approx(scored[r["id"]]["score_angry"], abs=1e-6)
    assert json.loads((tmp_path / "inf" / "infer.json").read_text()) == summary.to_json()
    only = infer(run, str(tmp_path / "unlabelled"), str(tmp_path / "one"), ["en-gb_m3"])
    assert only.n == 8


def test_single_modality_trains_under_ddp(train_config, multi_speaker_features, tmp_path):
    """An audio model with the temporal embedding, of emotion dimensions alone (no label):
    chosen by its mean CCC, evaluated on the dimensions."""
    import pyarrow.parquet as pq

    from raymer.training.evaluate import evaluate

    summary = train(
        train_config(
            multi_speaker_features,
            tmp_path,
            "resources.model.actors=2",
            "optim.epochs=1",
            "model.modality=audio",
            "data.holdout={clip_type: [text_cue]}",
            "model.audio_input=temporal",
            "model.temporal_steps=20",
            "model.temporal_dim=16",
            "model.targets=[arousal, valence]",
        )
    )
    spec = json.loads((Path(summary.best_checkpoint) / "model.json").read_text())
    assert summary.epochs == 1 and spec["modality"] == "audio"
    assert spec["audio_input"] == "temporal" and spec["temporal_dim"] == 16
    assert spec["targets"] == ["arousal", "valence"] and spec["labels"] == []
    model = build_fusion_model(ModelSpec(**spec))
    model.load_state_dict(torch.load(Path(summary.best_checkpoint) / "model.pt"))
    assert model.audio_adapter is not None
    (epoch,) = summary.history
    assert summary.best_val_ua is None and summary.selected_by == "val_ccc"
    assert summary.best_val_score == epoch["val_ccc"]
    assert epoch["val_ccc"] == (epoch["val_ccc_arousal"] + epoch["val_ccc_valence"]) / 2
    m = evaluate(summary.best_checkpoint, str(multi_speaker_features), str(tmp_path / "eval"))
    assert m.ua is None and m.n == 32 and set(m.dimensions) == {"arousal", "valence"}
    assert "ua" not in m.to_json()
    assert all(-1 <= d["ccc"] <= 1 and d["n"] == 32 for d in m.dimensions.values())
    rows = pq.read_table(tmp_path / "eval" / "predictions.parquet")
    assert "predicted" not in rows.column_names
    assert all(-1 <= v <= 1 for v in rows.column("predicted_arousal").to_pylist())
    assert "| arousal |" in (tmp_path / "eval" / "report.md").read_text()


def test_compare_trains_three_modalities_and_writes_the_table(trained, multi_speaker_features):
    import pyarrow.parquet as pq

    templates = pq.read_table(multi_speaker_features / "features", columns=["template"])
    held = templates.column("template").to_pylist().count("neutral-10")
    assert held >= 2  # the corpus plan puts this sentence pattern in several clips
    result = trained.result
    assert set(result.results) == {"fusion", "audio", "text"}
    for row in result.results.values():
        assert row.speakers["n"] == 8 and 0 <= row.speakers["ua"] <= 1
        assert row.holdout["n"] == held
    saved = json.loads((trained.output / "comparison.json").read_text())
    assert saved == json.loads(json.dumps(result.to_json()))  # the record is the file
    table = (trained.output / "comparison.md").read_text()
    assert table == result.markdown and table.count("\n") == 5 + 8  # + the dimensions
    assert "held-out speakers (en-gb_m3)" in table and "held-out templates" in table
    fusion = result.results["fusion"].speakers["dimensions"]["arousal"]
    assert fusion["n"] == 8 and -1 <= fusion["ccc"] <= 1
    assert "| fusion | {ccc:.3f} / {pearson:.3f} / {rmse:.3f} |".format(**fusion) in table
    # Each best checkpoint's model card has its validation and test scores
    for modality, row in result.to_json().items():
        card = (Path(row["checkpoint"]) / "README.md").read_text()
        speakers = row["speakers"]
        assert f"# raymer emotion model: {modality} (features)" in card
        assert "| validation |" in card and "training clips:" in card
        dims = speakers["dimensions"]
        assert (
            f"| test (held-out speakers en-gb_m3) | {speakers['ua']:.3f} | "
            f"{speakers['wa']:.3f} | {speakers['macro_f1']:.3f} | "
            f"{dims['arousal']['ccc']:.3f} | {dims['valence']['ccc']:.3f} | 8 |"
        ) in card
        assert "| test (held-out templates) |" in card and "No test score yet" not in card
        assert (Path(row["checkpoint"]) / "model.safetensors").is_file()


def _checkpoint_states(run: Path) -> list[dict]:
    """state.json of every checkpoint kept under a run folder, by epoch."""
    states = [json.loads(p.read_text()) for p in run.glob("*/checkpoint_*/state.json")]
    return sorted(states, key=lambda s: s["epoch"])


@pytest.mark.drill
def test_a_worker_killed_midway_restarts_from_its_checkpoint(
    train_config, multi_speaker_features, tmp_path, monkeypatch
):
    marker = tmp_path / "killed.txt"
    # Worker rank 1 exits (os._exit) in the middle of epoch 2; FailureConfig restarts the
    # worker group, which must pick up from the epoch-1 checkpoint and finish the run.
    monkeypatch.setenv("RAYMER_DRILL", f"train-kill:1:{marker}")
    summary = train(
        train_config(
            multi_speaker_features,
            tmp_path / "run",
            "resources.model.actors=2",
            "optim.epochs=3",
            "optim.patience=10",
            "run.num_to_keep=5",
        )
    )
    assert marker.read_text().startswith("worker 1 killed in epoch 2")
    assert summary.epochs == 3
    states = _checkpoint_states(tmp_path / "run")
    assert [s["epoch"] for s in states] == [1, 2, 3]
    assert "resumed_at" not in states[0] and states[-1]["resumed_at"] == [1]


def test_nan_loss_stops_the_run_with_a_clear_message(
    train_config, multi_speaker_features, tmp_path
):
    import pytest

    from raymer.training.errors import TrainingError

    # Frames of NaN for every clip of two training speakers: the first batch's loss is NaN.
    broken = _rewrite(
        multi_speaker_features,
        tmp_path / "broken",
        "audio_frames",
        lambda row: (
            [[float("nan")] * len(f) for f in row["audio_frames"]]
            if row["speaker"] in ("joe", "en-us_m1")
            else row["audio_frames"]
        ),
    )
    with pytest.raises(
        TrainingError, match=r"became NaN or infinite \(nan\) in epoch 1 .*check the features"
    ):
        train(train_config(broken, tmp_path / "run", "optim.epochs=2"))
    assert _checkpoint_states(tmp_path / "run") == []


def _rewrite(features: Path, out: Path, column: str, fn) -> Path:
    """A copy of the features with ``column`` of every row replaced by ``fn(row)``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    (out / "features").mkdir(parents=True)
    for path in sorted((features / "features").glob("*.parquet")):
        table = pq.read_table(path)
        values = [fn(row) for row in table.to_pylist()]
        i = table.schema.get_field_index(column)
        table = table.set_column(i, column, pa.array(values, table.schema.field(i).type))
        pq.write_table(table, out / "features" / path.name)
    return out


def _relabel(features: Path, out: Path, relabel: dict[str, str | None]) -> Path:
    """A copy of the features with some clips' labels changed (None: no label)."""
    return _rewrite(features, out, "label", lambda row: relabel.get(row["id"], row["label"]))


def test_unlabelled_clips_are_counted_on_s3_and_foreign_labels_refused(
    train_config, multi_speaker_features, tmp_path, s3_endpoint
):
    """A run over features with unlabelled clips, its checkpoints written to S3: the clips
    counted and left out by train and evaluate, the run folder on S3 taken as --checkpoint
    like a local one, and a label the checkpoint never saw refused."""
    import boto3
    import pyarrow.parquet as pq
    import pytest

    from raymer import storage
    from raymer.training.evaluate import evaluate

    ids = pq.read_table(multi_speaker_features / "features", columns=["id", "speaker"]).to_pylist()
    test_ids = [r["id"] for r in ids if r["speaker"] == "en-gb_m3"]
    train_ids = [r["id"] for r in ids if r["speaker"] == "joe"]
    unlabelled = _relabel(
        multi_speaker_features,
        tmp_path / "unlabelled",
        {i: None for i in test_ids[:3] + train_ids[:2]},
    )
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket="runs")
    summary = train(train_config(unlabelled, "s3://runs/fusion", "optim.epochs=1"))
    assert summary.unlabelled == 5
    assert summary.best_checkpoint.startswith("s3://runs/fusion/fusion/checkpoint_")
    for name in ("model.pt", "model.json", "config.yaml", "state.json"):
        assert storage.exists(storage.join(summary.best_checkpoint, name))
    assert storage.exists("s3://runs/fusion/train_summary.json")
    metrics = evaluate("s3://runs/fusion", str(unlabelled), str(tmp_path / "eval"), ["en-gb_m3"])
    assert metrics.checkpoint == summary.best_checkpoint
    assert metrics.unlabelled == 3 and metrics.n == len(test_ids) - 3
    assert "3 clips without a label left out" in (tmp_path / "eval" / "report.md").read_text()

    foreign = _relabel(multi_speaker_features, tmp_path / "foreign", {test_ids[0]: "frustrated"})
    with pytest.raises(ValueError, match=r"labels \['frustrated'\] that the checkpoint was not"):
        evaluate("s3://runs/fusion", str(foreign), str(tmp_path / "eval2"), ["en-gb_m3"])


def test_finetune_unfreezes_progressively_and_evaluates(
    train_config, multi_speaker_features, tmp_path
):
    from raymer.models.registry import resolve_model
    from raymer.models.whisper_encoder import load_whisper_encoder
    from raymer.training.evaluate import evaluate

    summary = train(
        train_config(
            multi_speaker_features,
            tmp_path / "run",
            "mode=finetune",
            "optim.epochs=3",
            "optim.patience=10",
            "run.num_to_keep=3",
            "finetune.unfreeze_top_at=1",
            "finetune.unfreeze_all_at=2",
            "finetune.top_layers=1",
        )
    )
    # head only, then + the last layer of each encoder, then everything
    head, top, everything = (h["trainable_params"] for h in summary.history)
    assert head < 100_000 < top < everything and everything > 25_000_000

    pretrained = load_whisper_encoder(resolve_model("whisper-tiny.en")).state_dict()
    by_epoch = {}
    for ckpt in (tmp_path / "run" / "fusion").glob("checkpoint_*/"):
        epoch = json.loads((ckpt / "state.json").read_text())["epoch"]
        by_epoch[epoch] = torch.load(ckpt / "model.pt")
    assert sorted(by_epoch) == [1, 2, 3]

    def changed(epoch: int, name: str) -> bool:
        return not torch.equal(by_epoch[epoch][f"audio_encoder.{name}"], pretrained[name])

    assert not changed(1, "layers.3.fc1.weight")  # epoch 1: encoders frozen
    assert changed(2, "layers.3.fc1.weight") and not changed(2, "layers.0.fc1.weight")
    assert changed(3, "layers.0.fc1.weight") and changed(3, "conv1.weight")

    spec = json.loads((Path(summary.best_checkpoint) / "model.json").read_text())
    assert spec["mode"] == "finetune" and spec["asr_model"] == "whisper-tiny.en"
    metrics = evaluate(str(tmp_path / "run"), str(multi_speaker_features), str(tmp_path / "eval"))
    assert metrics.mode == "finetune" and metrics.n == 32
    assert "(finetune mode)" in (tmp_path / "eval" / "report.md").read_text()


def _toy_features(root: Path, clips_per_speaker: int = 24) -> Path:
    """A separable toy set: the label is a shift along one axis of the audio frames (fusion
    and audio see it), the text tokens are noise. 4 speakers, 4 labels, 8-dim features."""
    import numpy as np
    import pyarrow.parquet as pq

    from raymer.contract.schema import features_table

    rng = np.random.default_rng(3)
    labels = ["angry", "happy", "neutral", "sad"]
    rows = []
    for s in range(4):
        for i in range(clips_per_speaker):
            k = i % 4
            frames = rng.normal(0, 1, (int(rng.integers(5, 15)), 8))
            frames[:, k] += 3.0
            tokens = rng.normal(0, 1, (int(rng.integers(3, 9)), 8))
            rows.append(
                {
                    "id": f"s{s}-{i}",
                    "label": labels[k],
                    "speaker": f"spk{s}",
                    "audio_frames": frames.tolist(),
                    "audio_embedding": frames.mean(0).tolist(),
                    "text_tokens": tokens.tolist(),
                    "text_embedding": tokens.mean(0).tolist(),
                }
            )
    (root / "features").mkdir(parents=True)
    pq.write_table(features_table(rows, []), root / "features" / "toy.parquet")
    return root


def test_two_workers_learn_a_separable_toy_set(ray_session, tmp_path):
    from raymer.training.evaluate import evaluate

    features = _toy_features(tmp_path / "toy")
    cfg = load_config(
        TrainConfig,
        None,
        [
            "resources.model.actors=2",
            "optim.batch_size=8",
            "model.hidden_dim=16",
            "optim.epochs=15",
            "optim.patience=15",
            "optim.lr=0.01",
            "model.dropout=0",
            "data.test_speakers=[spk3]",
            "data.val_speakers=[spk2]",
        ],
        features=str(features),
        output=str(tmp_path / "run"),
    )
    summary = train(cfg)
    losses = [h["train_loss"] for h in summary.history]
    assert losses[-1] < 0.5 * losses[0]
    assert summary.best_val_ua >= 0.95
    metrics = evaluate(str(tmp_path / "run"), str(features), str(tmp_path / "eval"), ["spk3"])
    assert metrics.n == 24 and metrics.ua >= 0.95


def test_calibrate_fits_a_checkpoint_again_on_other_labelled_clips(
    trained, multi_speaker_features, tmp_path, capsys
):
    """`raymer calibrate` on the held-out speaker's clips: a temperature in the spec of a copy
    that had none (the model's own scores before), the same top labels, a fit no worse on
    those clips, and a refusal where no clip matches."""
    import shutil

    from raymer.cli import main
    from raymer.trained.checkpoint import load_spec
    from raymer.training.evaluate import evaluate

    best = tmp_path / "best"
    shutil.copytree(trained.summary("fusion")["best_checkpoint"], best)  # the shared one kept
    spec = json.loads((best / "model.json").read_text())
    (best / "model.json").write_text(json.dumps(spec | {"temperature": None}))
    fitted = load_spec(str(best)).temperature
    assert fitted is None
    before = evaluate(str(best), str(multi_speaker_features), str(tmp_path / "e1"), ["en-gb_m3"])
    args = ["calibrate", "--checkpoint", str(best), "--features", str(multi_speaker_features)]
    assert main([*args, "--speakers", "en-gb_m3"]) == 0
    line = capsys.readouterr().out
    assert line.startswith("calibrated: temperature ") and "on 8 labelled clips" in line
    again = load_spec(str(best)).temperature
    assert again is not None and f"{again:.2f}" in line
    after = evaluate(str(best), str(multi_speaker_features), str(tmp_path / "e2"), ["en-gb_m3"])
    assert after.scores["confusion"] == before.scores["confusion"]  # the labels unchanged
    # fitted on these clips: no worse a fit on them than the training's temperature
    assert after.calibration["brier"] <= before.calibration["brier"] + 1e-6 or (
        after.calibration["ece"] <= before.calibration["ece"] + 1e-6
    )
    assert main([*args, "--where", "speaker=nobody"]) == 2
    assert "no labelled clips" in capsys.readouterr().err
