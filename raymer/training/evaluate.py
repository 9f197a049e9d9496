"""``raymer evaluate``: score a trained checkpoint on extracted features with labels.

Writes ``metrics.json`` (ua, wa, macro_f1, per_class, confusion; for a model with emotion
dimensions, ``dimensions``: CCC, Pearson's r, RMSE and n of each; for a single-label model,
``calibration``: ECE, Brier, the reliability bins and what each min_confidence leaves
unlabelled), ``predictions.parquet`` (one row per clip: id, label, predicted, a score per
label, ``predicted_<dimension>``, the manifest's other columns), ``report.md``,
``confusion.png`` and ``reliability.png``. (``raymer train`` writes ``training_curves.png``.)
"""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from raymer import storage
from raymer.errors import UsageError
from raymer.extras import can_plot
from raymer.trained import checkpoint
from raymer.trained.checkpoint import ON_SCORE
from raymer.training.calibrate import calibration_lines, calibration_of
from raymer.training.metrics import (
    classification_metrics,
    multilabel_metrics,
    regression_metrics,
)
from raymer.training.results import Evaluation
from raymer.training.scoring import predict_table


def evaluate(
    checkpoint_uri: str,
    features: str,
    output: str,
    speakers: list[str] | None = None,
    where: dict[str, list[str]] | None = None,
    by: list[str] | None = None,
    speaker_stats: bool = False,
) -> Evaluation:
    """Scores of a checkpoint on the labelled clips (of ``speakers``, matching ``where``);
    with ``by`` (columns of the features, e.g. the sample corpus's ``clip_type``), the same
    scores for each value of each column too (``metrics["by"]``). ``speaker_stats``: an
    ``audio_norm: speaker`` model scored speaker-adaptively, each clip standardised with its
    own speaker's statistics over the features, where every other path (and this one by
    default) uses the training speakers' pooled ones; the same scores for any other model."""
    model, spec = checkpoint.load_model(checkpoint_uri)
    predictions = predict_table(model, spec, features, speakers, where, speaker_stats=speaker_stats)
    labels = spec.labels
    index = {lab: i for i, lab in enumerate(labels)}
    if not labels:  # a model of dimensions alone
        scores = {"n": predictions.num_rows}
    elif spec.multi_label:
        y_true, y_pred = (
            _multi_hot(predictions.column(c).to_pylist(), labels)
            for c in ("labels", "predicted_labels")
        )
        scores = multilabel_metrics(y_true, y_pred, labels)
    else:
        y_true = [index[x] for x in predictions.column("label").to_pylist()]
        y_pred = [index[x] for x in predictions.column("predicted").to_pylist()]
        scores = classification_metrics(y_true, y_pred, labels)
    result = Evaluation(
        checkpoint=spec.checkpoint,
        modality=spec.modality,
        mode=spec.mode,
        features=features,
        speakers=sorted(set(predictions.column("speaker").to_pylist()) - {None}),
        unlabelled=int(predictions.schema.metadata[b"unlabelled"]),
        speaker_stats=speaker_stats and spec.audio_norm == "speaker",
        n=int(scores.pop("n", predictions.num_rows)),
        scores=scores,
        dimensions=dimension_scores(predictions, spec.dimensions) if spec.dimensions else None,
        by=breakdown(predictions, labels, by, features)
        if by and labels and not spec.multi_label
        else None,
        calibration=calibration_of(predictions, model, spec, features, speakers, where)
        if labels and not spec.multi_label
        else None,
    )
    metrics = result.to_json()
    _save(output, predictions, "metrics.json", metrics)
    storage.write_bytes(storage.join(output, "report.md"), report_markdown(metrics).encode())
    if "confusion" in metrics and can_plot():  # single-label only: no one cell for a list
        from raymer.training.plots import confusion_png, reliability_png

        storage.write_bytes(storage.join(output, "confusion.png"), confusion_png(metrics))
        storage.write_bytes(
            storage.join(output, "reliability.png"), reliability_png(metrics["calibration"])
        )
    return result


def dimension_scores(predictions: pa.Table, dimensions: list[str]) -> dict:
    """CCC, Pearson's r, RMSE and n of each dimension, on the clips rated for it (a clip's
    rating is its ``<dimension>`` column; none: that dimension's n is 0)."""
    out = {}
    for dim in dimensions:
        pred = predictions.column(f"predicted_{dim}").to_numpy(zero_copy_only=False)
        if dim in predictions.column_names:
            true = predictions.column(dim).cast(pa.float64()).to_pylist()
        else:
            true = [None] * len(pred)
        out[dim] = regression_metrics(true, pred)
    return out


def breakdown(predictions: pa.Table, labels: list[str], by: list[str], features: str) -> dict:
    """UA, WA, macro-F1 and n of the clips of each value of each ``by`` column."""
    missing = [c for c in by if c not in predictions.column_names]
    if missing:
        raise UsageError(
            f"evaluate by {missing}: the features under {features} have no such column"
        )
    index = {lab: i for i, lab in enumerate(labels)}
    true = np.array([index[x] for x in predictions.column("label").to_pylist()])
    pred = np.array([index[x] for x in predictions.column("predicted").to_pylist()])
    out: dict[str, dict] = {}
    for column in by:
        values = np.array([str(v) for v in predictions.column(column).to_pylist()])
        out[column] = {}
        for value in sorted(set(values)):
            m = classification_metrics(true[values == value], pred[values == value], labels)
            out[column][value] = {k: m[k] for k in ("ua", "wa", "macro_f1", "n")}
    return out


def _multi_hot(lists: list[list[str] | None], labels: list[str]) -> np.ndarray:
    """Label lists -> a (N, L) boolean matrix."""
    index = {lab: i for i, lab in enumerate(labels)}
    hot = np.zeros((len(lists), len(labels)), dtype=bool)
    for i, names in enumerate(lists):
        hot[i, [index[str(x)] for x in names or []]] = True
    return hot


def _save(output: str, predictions: pa.Table, name: str, summary: dict) -> None:
    """OUTPUT/predictions.parquet and the summary beside it (OUTPUT/NAME, JSON)."""
    storage.makedirs(output)
    storage.write_bytes(storage.join(output, name), json.dumps(summary, indent=2).encode())
    fs, path = storage.filesystem(storage.join(output, "predictions.parquet"))
    pq.write_table(predictions, path, filesystem=fs)


def dimension_lines(dimensions: dict | None) -> list[str]:
    """A report's table of the emotion dimensions' scores (none: no lines)."""
    if not dimensions:
        return []
    lines = ["", "| dimension | CCC | Pearson r | RMSE | n |", "| --- | --- | --- | --- | --- |"]
    return lines + [
        f"| {d} | {v['ccc']:.3f} | {v['pearson']:.3f} | {v['rmse']:.3f} | {v['n']} |"
        for d, v in dimensions.items()
    ]


def report_markdown(m: dict) -> str:
    lines = [
        f"# Evaluation: {m['modality']} model ({m.get('mode', 'features')} mode)",
        "",
        f"- checkpoint: `{m['checkpoint']}`",
        f"- features: `{m['features']}`",
        f"- clips: {m['n']}; speakers: {', '.join(m['speakers']) or 'unknown'}"
        + (f"; {m['unlabelled']} clips without a label left out" if m.get("unlabelled") else ""),
    ]
    if "ua" not in m:  # a model of dimensions alone
        return "\n".join(lines + dimension_lines(m.get("dimensions"))) + "\n"
    lines += [
        "",
        "| UA | WA | macro-F1 |",
        "| --- | --- | --- |",
        f"| {m['ua']:.3f} | {m['wa']:.3f} | {m['macro_f1']:.3f} |",
        "",
        "| label | recall | precision | F1 | support |",
        "| --- | --- | --- | --- | --- |",
    ]
    lines += [
        f"| {lab} | {v['recall']:.3f} | {v['precision']:.3f} | {v['f1']:.3f} | {v['support']} |"
        for lab, v in m["per_class"].items()
    ]
    lines += dimension_lines(m.get("dimensions"))
    if m.get("multi_label"):
        return (
            "\n".join(
                lines
                + [
                    "",
                    f"Multi-label (a label is on where its score passes {ON_SCORE}): micro-F1 "
                    f"{m['micro_f1']:.3f}, exact match {m['exact_match']:.3f}. UA is the mean "
                    "per-label recall, WA the recall pooled over labels.",
                ]
            )
            + "\n"
        )
    lines += calibration_lines(m.get("calibration"))
    for column, values in m.get("by", {}).items():
        lines += ["", f"| {column} | UA | WA | macro-F1 | n |", "| --- | --- | --- | --- | --- |"]
        lines += [
            f"| {v} | {s['ua']:.3f} | {s['wa']:.3f} | {s['macro_f1']:.3f} | {s['n']} |"
            for v, s in values.items()
        ]
    lines += [
        "",
        "Confusion (rows: true label, columns: predicted): see `confusion.png`.",
        "",
        "| true \\ predicted | " + " | ".join(m["labels"]) + " |",
        "| --- |" + " --- |" * len(m["labels"]),
    ]
    lines += [
        f"| {lab} | " + " | ".join(str(c) for c in row) + " |"
        for lab, row in zip(m["labels"], m["confusion"], strict=True)
    ]
    return "\n".join(lines) + "\n"
