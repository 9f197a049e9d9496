"""``raymer compare --encoders`` on real Ray: half of the session's corpus extracted again with the
larger text encoder (mpnet-base, from its registry packages), and the model trained and
scored on each set, with each extraction's WER, speed and encoder memory."""

from __future__ import annotations

import json

from raymer.config import ExtractConfig, load_config
from raymer.pipeline.extract import extract
from raymer.training.encoders import compare_encoders


def test_the_encoder_comparison_trains_and_scores_each_feature_set(
    multi_speaker_corpus, multi_speaker_features, train_config, tmp_path
):
    import csv

    mpnet = tmp_path / "mpnet"
    with multi_speaker_corpus.open() as f:  # half of each speaker's clips: what a run needs
        rows = list(csv.DictReader(f))
    half, seen = [], {}
    for r in rows:
        seen[r["speaker"]] = seen.get(r["speaker"], 0) + 1
        if seen[r["speaker"]] <= 4:
            half.append(r)
    subset = tmp_path / "half.csv"
    with subset.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(r | {"path": str(multi_speaker_corpus.parent / r["path"])} for r in half)
    cfg = load_config(
        ExtractConfig,
        "configs/extract/tiny.yaml",
        ["text_model=mpnet-base", "prosody=false"],
        input=str(subset),
        output=str(mpnet),
    )
    assert extract(cfg).clips_ok == 16
    run = train_config(multi_speaker_features, tmp_path / "cmp", "optim.epochs=1")
    report = compare_encoders(run, [str(mpnet)], runs=1)

    minilm, larger = report["sets"]
    assert (minilm["name"], larger["name"]) == (
        "whisper-tiny.en + minilm-l6",
        "whisper-tiny.en + mpnet-base",
    )
    for s in (minilm, larger):
        assert len(s["ua"]) == 1 and 0 <= s["ua"][0] <= 1
        assert 0 <= s["wer"] < 0.5 and s["rows_per_s"] > 0
    assert larger["memory_mb"] > minilm["memory_mb"] + 100  # 768-d, 12 layers against 6
    spec = json.loads(next((tmp_path / "cmp" / "encoders" / "1").rglob("model.json")).read_text())
    assert spec["text_dim"] == 768 and spec["extract"]["text_model"] == "mpnet-base"
    assert spec["prosody_dim"] == 0  # those features carry none: model.prosody auto reads none
    table = (tmp_path / "cmp" / "encoders.md").read_text()
    assert "| whisper-tiny.en + mpnet-base |" in table and " MB |" in table
    assert json.loads((tmp_path / "cmp" / "encoders.json").read_text())["runs"] == 1
