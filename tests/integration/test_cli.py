"""The `raymer` command as a user runs it, connected to the session's Ray through RAY_ADDRESS."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import soundfile

RAYMER = str(Path(sys.executable).parent / "raymer")


def _run(*args: str, env: dict | None = None, cwd: Path | None = None):
    return subprocess.run(
        [RAYMER, *args],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, **(env or {})},
        cwd=cwd,
    )


def test_cli_extract_directory_prints_summary(ray_session, piper_corpus, tmp_path):
    """A folder where two files share an id (joe_00000.wav and .flac): one is written, the
    other reported as a duplicate."""
    address = ray_session.get_runtime_context().gcs_address
    folder = tmp_path / "joe"
    shutil.copytree(piper_corpus.parent / "joe", folder)
    audio, rate = soundfile.read(folder / "joe_00000.wav")
    soundfile.write(folder / "joe_00000.flac", audio, rate)
    out = tmp_path / "out"
    result = _run(
        "extract",
        "--config",
        "configs/extract/tiny.yaml",
        "--input",
        str(folder),
        "--output",
        str(out),
        env={"RAY_ADDRESS": address, "RAYMER_PROGRESS_S": "1"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    # Quiet: raymer's own lines (summary, an error example, a progress line a second), none
    # of Ray's start-up, Ray Data progress blocks or worker output.
    lines = (result.stdout + result.stderr).splitlines()
    assert len(lines) <= 40, "\n".join(lines)
    for noise in ("logging_progress", "streaming_executor", "Loading weights", "(MapWorker"):
        assert noise not in result.stderr, result.stderr[-3000:]
    # the progress line: 12 to do once the duplicate is reported; the last one at the end
    progress = [line for line in result.stderr.splitlines() if line.startswith("extract: ")]
    assert progress and progress[-1].startswith("extract: 12/12 clips (100%)"), result.stderr
    assert "extract: 12 clips ok, 1 failed" in result.stdout
    assert "joe_00000: duplicate id: joe_00000 is already" in result.stdout
    assert "audio s/s" in result.stdout
    assert pq.read_table(out / "features").num_rows == 12
    assert (out / "config.yaml").read_text().startswith("input:")
    _only_raymer_lines(result.stderr)
    again = _run(  # a re-run with nothing left: no actor starts, and no Ray warning shows
        "extract", "--config", "configs/extract/tiny.yaml", "--input", str(folder),
        "--output", str(out), env={"RAY_ADDRESS": address},
    )  # fmt: skip
    assert again.returncode == 0, again.stderr[-3000:]
    assert "extract: 0 clips ok, 1 failed, 12 already done" in again.stdout, again.stdout
    _only_raymer_lines(again.stderr)


def _only_raymer_lines(stderr: str) -> None:
    """What reaches the terminal is raymer's: its progress lines and its own messages; Ray's
    C++ log lines ("core_worker.cc"), its warnings and "(raylet)" messages stay in Ray's
    log folder."""
    theirs = [
        line
        for line in stderr.splitlines()
        if line.strip() and not line.startswith(("raymer: ", "extract: ", "recognize: "))
    ]
    assert theirs == [], "\n".join(theirs)


def test_cli_rejects_bad_config_value_with_a_clear_message(tmp_path):
    result = _run("extract", "--input", "x", "--output", str(tmp_path), "batch_size=-1")
    assert result.returncode == 2
    assert "batch_size" in result.stderr and "greater than or equal to 1" in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_rejects_missing_input(tmp_path):
    result = _run("extract", "--input", str(tmp_path / "nope.csv"), "--output", str(tmp_path / "o"))
    assert result.returncode == 2 and "does not exist" in result.stderr


def test_help_lists_every_setting():
    result = _run("extract", "--help")
    assert result.returncode == 0
    names = ("asr_model", "window", "text_source", "decode.max_duration_s", "resources.use_gpu")
    for name in names:
        assert name in result.stdout
    assert "resources.asr.num_cpus (default 0.5)" in result.stdout  # the stage's own default
    assert "decode.max_duration_s (default 600.0)" in result.stdout  # extract's own default


def test_train_help_lists_nested_settings_with_their_defaults():
    result = _run("train", "--help")
    assert result.returncode == 0
    assert "finetune.unfreeze_top_at (default 1)" in result.stdout
    assert "test_speakers (default [])" in result.stdout
    assert "Undefined" not in result.stdout


def test_prepared_manifest_runs_fold_by_fold(
    ray_session, multi_speaker_corpus, multi_speaker_features, tmp_path
):
    """`corpus prepare` (folds of speakers) -> `extract` (the session's features were
    extracted from this very manifest) -> `crossval split_by=fold` on two of its folds (the
    fusion model; each modality runs the same loop), with dimensions: each fold a test set
    once, no speaker in two folds, every fold's metrics as saved, the mean, spread and pooled
    scores from them."""
    import csv
    import json

    import pyarrow.parquet as pq

    address = ray_session.get_runtime_context().gcs_address
    corpus = multi_speaker_corpus.parent / "corpus" / "manifest.csv"
    prepared = tmp_path / "prepared.csv"
    result = _run(
        "corpus", "prepare", "manifest", str(corpus), "--output", str(prepared), "--folds", "3"
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert (
        "manifest: 32 utterances" in result.stdout
        and "per fold: fold1 16, fold2 8, fold3 8" in result.stdout
    )
    assert prepared.read_text() == multi_speaker_corpus.read_text()
    folds: dict[str, set] = {}
    for row in csv.DictReader(prepared.open()):
        folds.setdefault(row["fold"], set()).add(row["speaker"])
    assert sum(len(s) for s in folds.values()) == len(set().union(*folds.values())) == 4
    extracted = pq.read_table(multi_speaker_features / "features", columns=["speaker", "fold"])
    assert {(r["speaker"], r["fold"]) for r in extracted.to_pylist()} == {
        (speaker, fold) for fold, speakers in folds.items() for speaker in speakers
    }

    env = {"RAY_ADDRESS": address}
    result = _run(
        "crossval",
        "--features",
        str(multi_speaker_features),
        "--output",
        "cv",  # relative to the working folder; Ray's workers run elsewhere
        "--folds",
        "fold2,fold3",
        "--modalities",
        "fusion",
        "data.split_by=fold",
        "resources.model.actors=1",  # the folds and the report under test; DDP is test_train's
        "optim.epochs=1",
        "model.hidden_dim=16",
        "optim.batch_size=8",
        "data.val_fraction=0.4",
        "model.targets=[label,arousal,valence]",
        env=env,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Leave-one-fold-out, 2 folds" in result.stdout
    assert "| model | UA | WA | macro-F1 | ccc_arousal | ccc_valence | pooled UA |" in result.stdout
    cv = tmp_path / "cv"
    report = json.loads((cv / "crossval.json").read_text())
    assert report["split_by"] == "fold"
    assert set(report["results"]) == {"fusion"}
    for modality in ("fusion",):
        r = report["results"][modality]
        assert set(r["folds"]) == {"fold2", "fold3"} and r["pooled"]["n"] == 16
        for name, fold in r["folds"].items():
            assert fold["n"] == 8 and name not in fold["val"] and len(fold["val"]) == 1
            saved = json.loads(
                (cv / modality / f"fold-{name}" / "eval" / "metrics.json").read_text()
            )
            assert saved["ua"] == fold["ua"]
            assert fold["ccc_valence"] == saved["dimensions"]["valence"]["ccc"]
            # Every clip is in one split: trained on, validated on, or tested.
            history = json.loads(
                (cv / modality / f"fold-{name}" / modality / "history.json").read_text()
            )
            assert history[0]["train_clips"] > 0 and history[0]["val_clips"] > 0
            assert history[0]["train_clips"] + history[0]["val_clips"] + fold["n"] == 32
        uas = [f["ua"] for f in r["folds"].values()]
        assert abs(r["mean"]["ua"] - sum(uas) / 2) < 1e-9
        assert abs(r["std"]["ua"] - abs(uas[0] - uas[1]) / 2**0.5) < 1e-9
        cccs = [f["ccc_arousal"] for f in r["folds"].values()]
        assert abs(r["mean"]["ccc_arousal"] - sum(cccs) / 2) < 1e-9
        assert r["pooled"]["dimensions"]["arousal"]["n"] == 16
    assert (cv / "crossval.md").read_text() in result.stdout

    # features without a fold column (the same ones, the column dropped): refused by name
    (tmp_path / "nofold" / "features").mkdir(parents=True)
    table = pq.read_table(multi_speaker_features / "features")
    pq.write_table(table.drop_columns(["fold"]), tmp_path / "nofold" / "features" / "a.parquet")
    missing = _run(
        "train",
        "--features",
        str(tmp_path / "nofold"),
        "--output",
        str(tmp_path / "t"),
        "data.split_by=fold",
        env=env,
    )
    assert missing.returncode == 2 and "have no `fold` column" in missing.stderr
