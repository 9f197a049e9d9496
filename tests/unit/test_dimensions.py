"""Emotion dimensions beside the label (``targets``): CCC as metric and loss, the regression
head, the targets in a batch, and one answer whichever way a prediction is read (a piece,
a recording, ``raymer recognize``'s rows, evaluate's table)."""

from __future__ import annotations

import io

import numpy as np
import pyarrow as pa
import pytest
import torch
from pydantic import ValidationError

from raymer.config import TrainConfig
from raymer.inference.prediction import outputs, piece, recording, speech_means
from raymer.models.builders import build_model
from raymer.models.whisper import SpeechFeatures
from raymer.trained.batches import Collate, scores_of
from raymer.trained.checkpoint import ModelSpec
from raymer.training.losses import ccc_loss
from raymer.training.metrics import ccc, regression_metrics

LABELS = ["angry", "happy", "neutral", "sad"]


def _spec(**kw) -> ModelSpec:
    values = dict(
        audio_dim=6, text_dim=5, labels=LABELS, hidden_dim=16, num_layers=0, num_heads=2,
        dropout=0.0, modality="fusion", targets=["label", "arousal", "valence"],
    )  # fmt: skip
    return ModelSpec(**(values | kw))


def test_ccc_by_hand_and_where_it_parts_from_pearson():
    t = np.array([-0.5, 0.0, 0.5, 1.0])
    assert ccc(t, t) == pytest.approx(1.0)
    # shifted or scaled predictions keep Pearson's r at 1 but lose concordance
    shifted = regression_metrics(t, t + 0.5)
    assert shifted["pearson"] == pytest.approx(1.0) and shifted["ccc"] < 0.75
    assert shifted["rmse"] == pytest.approx(0.5)
    p = np.array([0.1, -0.2, 0.4, 0.3])
    cov = np.mean((t - t.mean()) * (p - p.mean()))
    assert ccc(t, p) == pytest.approx(2 * cov / (t.var() + p.var() + (t.mean() - p.mean()) ** 2))
    m = regression_metrics([0.2, None, float("nan"), -0.4], [0.1, 5.0, 5.0, -0.3])
    assert m["n"] == 2 and m["rmse"] == pytest.approx(0.1)  # unrated clips left out


def test_ccc_loss_is_one_minus_ccc_leaves_unrated_clips_out_and_has_gradients():
    torch.manual_seed(0)
    pred = torch.randn(8, 2, requires_grad=True)
    target = torch.randn(8, 2)
    target[3, 1] = float("nan")
    loss = ccc_loss(pred, target)
    p, t = pred.detach().numpy(), target.numpy()
    rated = ~np.isnan(t[:, 1])
    expected = 1 - (ccc(t[:, 0], p[:, 0]) + ccc(t[rated, 1], p[rated, 1])) / 2
    assert float(loss) == pytest.approx(expected, abs=1e-5)
    loss.backward()
    assert torch.isfinite(pred.grad).all() and pred.grad.abs().sum() > 0
    assert float(ccc_loss(target[:, :1], target[:, :1])) == pytest.approx(0.0, abs=1e-6)
    only_one = torch.full((8, 1), float("nan"))
    only_one[0] = 0.3
    assert float(ccc_loss(pred[:, :1], only_one)) == 0.0  # too few rated clips: no signal


def test_targets_are_checked_and_older_specs_answer_labels_only():
    spec = _spec()
    assert spec.dimensions == ["arousal", "valence"] and spec.has_labels
    old = ModelSpec(**{k: v for k, v in _spec().model_dump().items() if k != "targets"})
    assert old.targets == ["label"] and old.dimensions == []
    for bad in ([], ["label", "label"], ["label", "joy"]):
        with pytest.raises(ValidationError):
            _spec(targets=bad)
        with pytest.raises(ValidationError):
            TrainConfig(model={"targets": bad})
    # a model of dimensions alone has no labels; a model with the label target has some
    alone = _spec(targets=["arousal"], labels=[])
    assert not alone.has_labels and alone.dimensions == ["arousal"]
    for targets, labels in ((["arousal"], LABELS), (["label", "arousal"], [])):
        with pytest.raises(ValidationError, match="exactly when"):
            _spec(targets=targets, labels=labels)
    assert TrainConfig(model={"targets": ["label", "valence"]}).model.targets == [
        "label",
        "valence",
    ]
    assert TrainConfig(model={"targets": ["valence", "arousal"]}).model.dimensions == [
        "valence",
        "arousal",
    ]
    with pytest.raises(ValidationError, match="multi_label"):
        TrainConfig(model={"targets": ["arousal"], "multi_label": True})


def test_the_head_answers_dimensions_in_range_and_learns_them_with_ccc():
    """A regression head on the fusion body, trained with 1 - CCC, learns a dimension the
    audio carries (its mean frame level) while the label head learns the label."""
    torch.manual_seed(0)
    spec = _spec(targets=["label", "arousal"])
    model = build_model(spec)
    n = 256
    audio = torch.randn(n, 4, 6) * 0.3
    level = torch.rand(n) * 2 - 1
    audio[..., 0] += level[:, None] * 2
    text = torch.randn(n, 3, 5)
    label = (level > 0).long()  # angry vs happy by the same cue
    masks = torch.ones(n, 4, dtype=torch.bool), torch.ones(n, 3, dtype=torch.bool)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(150):
        i = torch.randint(0, n, (32,))
        out = model(audio[i], masks[0][i], text[i], masks[1][i])
        loss = torch.nn.functional.cross_entropy(out.logits, label[i])
        loss = loss + ccc_loss(out.dims, level[i, None])
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        out = model(audio, *masks[:1], text, masks[1])
    assert out.dims.shape == (n, 1) and out.dims.abs().max() < 1
    assert ccc(level.numpy(), out.dims[:, 0].numpy()) > 0.8


def test_collate_reads_the_ratings_from_rows_and_from_arrow_alike():
    spec = _spec()
    frames = [np.ones((2, 6), np.float32).tolist(), np.zeros((3, 6), np.float32).tolist()]
    tokens = [np.ones((2, 5), np.float32).tolist()] * 2
    rows = {
        "id": ["a", "b"], "label": ["sad", "happy"], "audio_frames": frames,
        "text_tokens": tokens, "arousal": [-0.4, None], "valence": [-0.6, 0.7],
    }  # fmt: skip
    table = pa.table(rows)
    objects = {}
    for k, v in rows.items():
        objects[k] = np.empty(2, dtype=object)
        objects[k][:] = v
    collate = Collate(spec)
    a, b = collate(objects)["dims"], collate.from_table(table)["dims"]
    assert a.shape == (2, 2) and torch.equal(torch.isnan(a), torch.isnan(b))
    assert np.allclose(a.nan_to_num(9).numpy(), b.nan_to_num(9).numpy())
    assert a[0].tolist() == pytest.approx([-0.4, -0.6]) and np.isnan(a[1, 0].item())
    assert (
        collate.live(frames=[np.ones((2, 6), np.float32)], tokens=[np.ones((2, 5))])["dims"] is None
    )
    assert Collate(_spec(targets=["label"])).from_table(table)["dims"] is None


def test_answers_are_scores_then_dimensions_and_every_reader_splits_them_alike():
    spec = _spec()
    model = build_model(spec).eval()
    collate = Collate(spec)
    batch = collate.live(
        frames=[np.random.rand(3, 6).astype(np.float32)], tokens=[np.ones((2, 5), np.float32)]
    )
    answers = scores_of(model, collate, batch).numpy()
    assert answers.shape == (1, len(LABELS) + 2)
    scores, dims = outputs(answers[0], LABELS, spec.dimensions)
    assert len(scores) == len(LABELS) and set(dims) == {"arousal", "valence"}
    assert outputs(None, LABELS, spec.dimensions) == (None, {"arousal": None, "valence": None})
    same, none = outputs(answers[0][:4], LABELS)
    assert same is answers[0][:4] or np.array_equal(same, answers[0][:4])
    assert none is None


def _piece(i: int, start: float, end: float, values, dims=("arousal", "valence")):
    sp = SpeechFeatures(transcript=f"piece {i}", language="en", language_prob=1.0)
    sp.speech_s = end - start
    return piece(i, start, end, sp, values, LABELS, False, dims)


def test_a_recording_answers_its_pieces_dimensions_weighted_by_speech_time():
    # the dimension outvalues every score: the label must still come from the scores
    loud = np.array([0.1, 0.2, 0.3, 0.4, 0.9, -0.5])
    calm = np.array([0.7, 0.1, 0.1, 0.1, -0.3, 0.5])
    parts = [_piece(0, 0.0, 3.0, loud), _piece(1, 3.0, 4.0, None), _piece(2, 4.0, 5.0, calm)]
    assert parts[0].label == "sad" and parts[0].dimensions == {"arousal": 0.9, "valence": -0.5}
    assert parts[1].dimensions == {"arousal": None, "valence": None}
    long = recording(parts, 5.0, LABELS, False, ("arousal", "valence"))
    assert long.dimensions["arousal"] == pytest.approx((0.9 * 3 - 0.3 * 1) / 4)
    assert long.dimensions["valence"] == pytest.approx((-0.5 * 3 + 0.5 * 1) / 4)
    api = long.to_api()
    assert api["dimensions"]["arousal"] == pytest.approx(0.6)
    assert api["segments"][0]["dimensions"] == {"arousal": 0.9, "valence": -0.5}
    assert api["segments"][1]["dimensions"] == {"arousal": None, "valence": None}
    assert "dimensions" not in _piece(0, 0.0, 1.0, loud[:4], ()).to_api(False)
    # recognize's rows: a column per dimension, and its recording row by the same rule
    from raymer.pipeline.recognize_stages import recording_row

    rows = [
        p.columns(LABELS, False) | {"id": "r", "path": "r.wav", "duration_s": 5.0, "run_id": "x"}
        for p in parts
    ]
    assert rows[0]["arousal"] == 0.9 and rows[1]["valence"] is None
    row = recording_row(rows, LABELS, None, ["arousal", "valence"])
    assert row["arousal"] == pytest.approx(long.dimensions["arousal"])
    assert row["valence"] == pytest.approx(long.dimensions["valence"])
    assert speech_means(("arousal",), []) == {"arousal": None}
    assert speech_means((), [(None, 1.0)]) is None


def test_evaluate_picks_the_label_among_the_scores_only_and_scores_each_dimension():
    from raymer.training.evaluate import dimension_scores
    from raymer.training.scoring import predictions_of

    spec = _spec()
    table = pa.table({"id": ["a", "b", "c"], "arousal": [0.5, -0.5, None]})
    answers = np.array(
        [[0.1, 0.8, 0.0, 0.0, 0.9, 0.9], [0.6, 0.1, 0.0, 0.0, -0.9, 0.0], [0, 0, 1, 0, 0, 0]],
        dtype=np.float32,
    )
    out = predictions_of(table, answers, spec)
    assert out.column("predicted").to_pylist() == ["happy", "angry", "neutral"]
    assert out.column("predicted_arousal").to_pylist() == pytest.approx([0.9, -0.9, 0.0])
    m = dimension_scores(out, spec.dimensions)
    assert m["arousal"]["n"] == 2 and m["arousal"]["pearson"] == pytest.approx(1.0)
    assert m["valence"]["n"] == 0  # the features carry no valence ratings


def test_the_timeline_png_draws_the_dimensions():
    from PIL import Image

    from raymer.pipeline.plots import timeline_png

    rows = []
    for i, (label, a) in enumerate([("angry", 0.8), (None, None), ("sad", -0.5)]):
        rows.append(
            {
                "id": "call",
                "segment": i,
                "start_s": 4.0 * i,
                "end_s": 4.0 * i + 3.5,
                "label": label,
                "transcript": "some words" if label else "",
                "arousal": a,
                "valence": None if a is None else -a,
            }  # fmt: skip
        )
    with_dims = Image.open(io.BytesIO(timeline_png(rows, LABELS, ["arousal", "valence"])))
    without = Image.open(io.BytesIO(timeline_png(rows, LABELS)))
    assert with_dims.size == without.size and with_dims.size[0] > 1000
    assert np.asarray(with_dims).tobytes() != np.asarray(without).tobytes()


def test_a_long_call_s_timeline_reads_in_round_minutes():
    from raymer.pipeline.plots import clock, minute_step, timeline_png

    assert [minute_step(s) for s in (120, 600, 601, 2700, 9000, 40000)] == [
        60, 60, 120, 300, 900, 3600,
    ]  # fmt: skip
    assert [clock(t) for t in (0, 59.9, 300, 4500)] == ["0:00", "0:59", "5:00", "75:00"]
    rows = [  # 45 minutes of 4 s segments: drawn, lines without a marker per point
        {"id": "call", "start_s": 5.0 * i, "end_s": 5.0 * i + 4, "label": LABELS[i // 100 % 4],
         "transcript": "words", "arousal": 0.5, "valence": -0.5}
        for i in range(540)
    ]  # fmt: skip
    assert timeline_png(rows, LABELS, ["arousal", "valence"]).startswith(b"\x89PNG")


def test_the_model_card_reports_each_dimension_s_ccc():
    import yaml

    from raymer.contract.card import CardFacts, render

    facts = CardFacts(
        metrics={"test": {"ua": 0.7, "wa": 0.7, "macro_f1": 0.7, "n": 40,
                          "dimensions": {"arousal": {"ccc": 0.61}, "valence": {"ccc": 0.52}}}}
    )  # fmt: skip
    card = render(_spec(), facts)
    front = yaml.safe_load(card.split("---")[1])
    assert front["targets"] == ["label", "arousal", "valence"]
    assert front["metrics"]["test"]["ccc_valence"] == 0.52
    assert "| test | 0.700 | 0.700 | 0.700 | 0.610 | 0.520 | 40 |" in card
    assert "CCC" not in render(_spec(targets=["label"]), facts)


def test_the_documented_answer_schema_holds_for_every_kind_of_answer():
    """/v1/recognize's 200 schema in the OpenAPI document (what the API fuzzer checks the
    service against) fits short, long and silent answers, with and without dimensions."""
    import jsonschema

    from raymer.inference.prediction import single
    from raymer.serving.ingress import RECOGNITION_SCHEMA

    validator = jsonschema.Draft202012Validator(RECOGNITION_SCHEMA["application/json"]["schema"])
    loud = np.array([0.1, 0.2, 0.3, 0.4, 0.9, -0.5])
    parts = [_piece(0, 0.0, 3.0, loud), _piece(1, 3.0, 4.0, None)]
    answers = [
        recording(parts, 4.0, LABELS, False, ("arousal", "valence")).to_api(),
        single(parts[0], 3.0, False).to_api(),
        single(parts[1], 1.0, False).to_api(),  # no speech: nulls
        single(_piece(0, 0.0, 1.0, loud[:4], ()), 1.0, False).to_api(),  # no dimensions
    ]
    for answer in answers:
        validator.validate(answer | {"models": {"asr": "a", "text": "b"}, "checkpoint": None})
    with pytest.raises(jsonschema.ValidationError):
        validator.validate(answers[0] | {"dimensions": {"arousal": "high"}})


def test_a_model_of_dimensions_alone_answers_them_and_no_label():
    from raymer.contract.card import CardFacts, render
    from raymer.training.scoring import predictions_of

    spec = _spec(targets=["arousal", "valence"], labels=[])
    model = build_model(spec).eval()
    collate = Collate(spec)
    batch = collate.live(frames=[np.ones((3, 6), np.float32)], tokens=[np.ones((2, 5))])
    answers = scores_of(model, collate, batch).numpy()
    assert answers.shape == (1, 2)
    sp = SpeechFeatures(transcript="hello", language="en", language_prob=1.0)
    part = piece(0, 0.0, 2.0, sp, answers[0], [], False, spec.dimensions)
    assert (
        part.label is None and part.scores == {} and set(part.dimensions) == {"arousal", "valence"}
    )
    long = recording([part, part], 4.0, [], False, spec.dimensions)
    assert long.label is None and long.dimensions == pytest.approx(part.dimensions)
    out = predictions_of(pa.table({"id": ["a"]}), answers, spec)
    assert out.column_names == ["id", "predicted_arousal", "predicted_valence"]
    assert "Rates arousal, valence" in render(spec, CardFacts())
