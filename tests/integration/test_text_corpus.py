"""A text corpus (GoEmotions' format) end to end: prepare -> text-only extraction -> a
multi-label text model -> evaluate -> a fusion model that starts from its text branch."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch

from raymer.config import ExtractConfig, TrainConfig, load_config
from raymer.corpora.goemotions import GOEMOTIONS_LABELS
from raymer.corpora.synth_text import sentence
from raymer.pipeline.extract import extract
from raymer.pipeline.outputs import SettingsMismatch
from raymer.trained.checkpoint import read_state
from raymer.training.evaluate import evaluate
from raymer.training.trainer import train

# Wording of the sample corpus -> GoEmotions label ids (anger, joy, sadness, neutral).
IDS = {
    w: GOEMOTIONS_LABELS.index(g)
    for w, g in (("angry", "anger"), ("happy", "joy"), ("sad", "sadness"), ("neutral", "neutral"))
}


def _goemotions_tree(root: Path) -> Path:
    """train/dev/test.tsv as GoEmotions ships them (text, label ids, id; no header), with
    multi-label lines (anger + sadness), an empty text and a line with two fields."""
    rng = random.Random(4)
    root.mkdir()
    n = 0
    for split, count in (("train", 160), ("dev", 40), ("test", 40)):
        lines = []
        for _ in range(count):
            wording = rng.choice(list(IDS))
            text, _ = sentence(wording, rng)
            ids = [IDS[wording]] + ([IDS["sad"]] if wording == "angry" and n % 3 == 0 else [])
            lines.append(f"{text}\t{','.join(map(str, ids))}\tge{n:04d}")
            n += 1
        if split == "train":
            lines += ["\t27\tempty-text", "only two\tfields"]
        (root / f"{split}.tsv").write_text("\n".join(lines) + "\n")
    return root


@pytest.fixture(scope="module")
def text_features(ray_session, tmp_path_factory) -> Path:
    from raymer.cli import main

    root = tmp_path_factory.mktemp("goemotions")
    manifest = root / "manifest.jsonl"
    assert (
        main(
            [
                "corpus",
                "prepare",
                "goemotions",
                str(_goemotions_tree(root / "src")),
                "--output",
                str(manifest),
            ]
        )
        == 0
    )
    cfg = load_config(
        ExtractConfig,
        "configs/extract/tiny.yaml",
        [],
        input=str(manifest),
        output=str(root / "extract"),
    )
    summary = extract(cfg)
    # No Whisper ran: the texts were embedded, the empty one reported (the two-field line
    # never reached the manifest: prepare counted it as malformed).
    assert summary.text_only and summary.clips_ok == 240 and summary.clips_failed == 1
    assert "empty-text: the manifest row has no text to embed" in summary.error_examples[0]
    assert "240 texts ok, 1 failed" in summary.line()
    assert (root / "extract" / "_SUCCESS.json").exists()
    return root / "extract"


def test_a_rerun_resumes_and_other_settings_are_refused_or_redone(text_features, tmp_path):
    """On a copy of the module's finished output: a re-run has nothing left to do; other
    extraction settings are never mixed with the rows already there: refused, or with redo
    the old rows are replaced."""
    import shutil

    out = tmp_path / "extract"
    shutil.copytree(text_features, out)
    cfg = load_config(
        ExtractConfig,
        "configs/extract/tiny.yaml",
        [],
        input=str(text_features.parent / "manifest.jsonl"),
        output=str(out),
    )
    again = extract(cfg)
    assert again.skipped == 240 and again.clips_ok == 0
    other = cfg.model_copy(update={"max_text_tokens": 96})
    with pytest.raises(SettingsMismatch, match="max_text_tokens: 128 then, 96 now"):
        extract(other)
    redone = extract(other.model_copy(update={"redo": True}))
    assert redone.clips_ok == 240 and redone.skipped == 0
    assert pq.read_table(out / "features").num_rows == 240
    assert (out / "_SUCCESS.json").exists()


def _cfg(features: Path, output: Path, *overrides: str) -> TrainConfig:
    return load_config(
        TrainConfig,
        None,
        ["resources.model.actors=1", "optim.batch_size=16", "model.hidden_dim=32", *overrides],
        features=str(features),
        output=str(output),
    )


def test_text_features_hold_no_audio(text_features):
    table = pq.read_table(text_features / "features")
    row = table.slice(0, 1).to_pylist()[0]
    assert row["audio_frames"] is None and row["duration_s"] is None and row["asr_model"] is None
    assert row["text_source"] == "reference" and len(row["text_tokens"][0]) == 384
    assert row["fold"] in ("train", "dev", "test") and row["labels"]
    multi = [r for r in table.select(["labels"]).to_pylist() if len(r["labels"]) > 1]
    assert multi and all(set(r["labels"]) == {"anger", "sadness"} for r in multi)


def test_multi_label_text_model_then_fusion_from_its_text_branch(
    text_features, multi_speaker_features, tmp_path
):
    split = ["data.split_by=fold", "data.test_speakers=[test]", "data.val_speakers=[dev]"]
    text = train(
        _cfg(
            text_features,
            tmp_path / "text",
            "model.modality=text",
            "model.multi_label=true",
            "run.name=text",
            "optim.epochs=8",
            "optim.lr=0.003",
            *split,
        )
    )
    assert text.selected_by == "val_macro_f1" and text.labels == [
        "anger",
        "joy",
        "neutral",
        "sadness",
    ]
    assert text.history[0]["train_clips"] == 160 and text.history[0]["val_clips"] == 40
    m = evaluate(
        str(tmp_path / "text"), str(text_features), str(tmp_path / "eval"), where={"fold": ["test"]}
    )
    assert m.scores["multi_label"] and m.n == 40
    # The wording says the emotion: far above chance (about 0.4 macro-F1 here).
    assert m.macro_f1 > 0.7, m
    predictions = pq.read_table(tmp_path / "eval" / "predictions.parquet").to_pylist()
    assert all(set(p["predicted_labels"]) <= set(text.labels) for p in predictions)
    assert "micro-F1" in (tmp_path / "eval" / "report.md").read_text()

    # Served, a text model answers texts itself and names every label over 0.5.
    from raymer.inference.core import Inference

    recognizer = Inference(str(tmp_path / "text"))
    info = recognizer.info()
    assert info["multi_label"] and info["text_multi_label"] and not info["needs_audio"]
    (answer,) = recognizer.recognize_text(["I am furious that the party was cancelled again!"])
    assert answer["label"] == "anger" and "anger" in answer["labels"]
    assert all(answer["emotions"][lab] > 0.5 for lab in answer["labels"])
    # The library's answer: the same model, the service's shape, every label over 0.5 listed
    import raymer

    lib = raymer.Recognizer.from_checkpoint(tmp_path / "text")
    mine = lib.predict("I am furious that the party was cancelled again!")
    assert mine["label"] == "anger" and mine["labels"] == answer["labels"]
    assert mine["transcript"] == "I am furious that the party was cancelled again!"
    assert mine["emotions"] == answer["emotions"] and mine["text"] == answer["text"]

    # A fusion model on speech (other labels) starts from that text branch. With a learning
    # rate of almost zero, its text branch after one epoch is still the text model's.
    fusion = train(
        _cfg(
            multi_speaker_features,
            tmp_path / "fusion",
            f"model.init_text={tmp_path / 'text'}",
            "optim.epochs=1",
            "optim.lr=1e-12",
            "data.test_speakers=[en-gb_m3]",
            "data.val_speakers=[en-us_f2]",
        )
    )
    spec = json.loads((Path(fusion.best_checkpoint) / "model.json").read_text())
    assert spec["init_text"] == text.best_checkpoint
    source, started = read_state(text.best_checkpoint), read_state(fusion.best_checkpoint)
    for key in ("text_proj.weight", "out_text.bias"):
        torch.testing.assert_close(started[key], source[key], rtol=0, atol=1e-6)
    assert started["head.1.weight"].shape[0] == 4  # its own label head


def test_fusion_on_text_only_features_is_refused(text_features, tmp_path):
    with pytest.raises(ValueError, match="hold text only.*modality=text"):
        train(_cfg(text_features, tmp_path, "data.split_by=fold", "data.test_speakers=[test]"))


def test_fine_tune_a_text_model_on_a_text_corpus(text_features, tmp_path):
    """Fine-tune mode with modality=text: MiniLM itself trains (no audio is read at all)."""
    summary = train(
        _cfg(
            text_features,
            tmp_path,
            "mode=finetune",
            "model.modality=text",
            "model.multi_label=true",
            "optim.epochs=1",
            "optim.batch_size=8",
            "finetune.unfreeze_top_at=0",
            "data.split_by=fold",
            "data.test_speakers=[test]",
            "data.val_speakers=[dev]",
        )
    )
    spec = json.loads((Path(summary.best_checkpoint) / "model.json").read_text())
    assert spec["mode"] == "finetune" and spec["audio_dim"] == 0
    state = read_state(summary.best_checkpoint)
    assert not any(k.startswith("audio_encoder.") for k in state)
    assert summary.history[0]["trainable_params"] > 1_000_000  # MiniLM's top layers train
    m = evaluate(
        summary.best_checkpoint,
        str(text_features),
        str(tmp_path / "eval"),
        where={"fold": ["test"]},
    )
    assert m.mode == "finetune" and m.n == 40
