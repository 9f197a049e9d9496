"""``raymer evaluate``: score a trained checkpoint on extracted features with labels.

Writes ``metrics.json`` (ua, wa, macro_f1, per_class, confusion; for a model with emotion
dimensions, ``dimensions``: CCC, Pearson's r, RMSE and n of each), ``predictions.parquet``
(one row per clip: id, label, predicted, a score per label, ``predicted_<dimension>``, the
manifest's other columns),
``report.md`` and ``confusion.png``. (``raymer train`` writes ``training_curves.png``.)
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from raymer import storage
from raymer.contract.schema import AUGMENT
from raymer.errors import RunError, UsageError
from raymer.extras import can_plot
from raymer.trained import checkpoint
from raymer.trained.batches import Collate, columns, scores_of
from raymer.trained.checkpoint import ON_SCORE, ModelSpec, labels_on, target_column, top_index
from raymer.trained.targets import has_target, is_rated
from raymer.training.data import feature_files
from raymer.training.metrics import (
    classification_metrics,
    multilabel_metrics,
    regression_metrics,
)
from raymer.training.results import Evaluation

FEATURE_COLUMNS = {"audio_frames", "text_tokens", "audio_embedding", "text_embedding", "segments"}


def model_batch(collate: Collate, table: pa.Table) -> dict:
    """A features table -> the model's batch: the cached frames and tokens, or (fine-tune
    checkpoints) the text and the decoded audio (none for a text model). No targets: a clip
    to predict need not have a label."""
    if not collate.spec.finetune:
        names = ["id", "audio_frames", "text_tokens", "speaker"]
        return collate.from_table(table.select([c for c in names if c in table.column_names]))
    from raymer.training.finetune_data import FINETUNE_COLUMNS, decode_rows

    cols = columns(table.select([c for c in FINETUNE_COLUMNS if c != "label"]))
    if collate.spec.needs_audio:
        decoded = decode_rows(cols)
        if len(decoded["id"]) != len(cols["id"]):
            lost = sorted(set(cols["id"]) - set(decoded["id"]))
            raise RunError(f"cannot decode the audio of {lost} any more (see the log)")
        cols = decoded
    return collate(cols)


@dataclass
class Selection:
    """Which clips to score: of ``where``'s values (speakers among them), labelled or not;
    and what was left out on the way (clips without a label, labels the model lacks)."""

    spec: ModelSpec
    where: dict[str, set[str]]
    labelled_only: bool = True
    unlabelled: int = 0
    foreign: set[str] = field(default_factory=set)

    def keep(self, rows: list[dict]) -> list[int]:
        """Indices of the rows to score (counting the unlabelled and foreign ones)."""
        target, labels = target_column(self.spec.multi_label), set(self.spec.labels)
        kept = []
        for i, row in enumerate(rows):
            if row.get(AUGMENT) is not None:
                continue  # an augmented copy (extract's augment): its clip is scored
            if not all(str(row.get(k)) in v for k, v in self.where.items()):
                continue
            if not self.spec.has_labels:  # a model of dimensions alone: rated clips
                if is_rated(row, self.spec.dimensions):
                    kept.append(i)
                elif self.labelled_only:
                    self.unlabelled += 1
                else:
                    kept.append(i)
                continue
            value = row.get(target)
            names = set(value) if self.spec.multi_label and value is not None else {value}
            if not has_target(value):
                self.unlabelled += 1
                if self.labelled_only:
                    continue
            elif self.labelled_only and names - labels:
                self.foreign |= names - labels
                continue
            kept.append(i)
        return kept


def predictions_of(table: pa.Table, scores: np.ndarray, spec: ModelSpec) -> pa.Table:
    """Feature rows and the model's answers on them (``scores_of``: a score per label, then a
    value per dimension) -> prediction rows: the rows' own columns (their types kept, so
    every part of an output has one schema), ``predicted``, ``predicted_labels`` (a
    multi-label model), ``score_<label>`` and ``predicted_<dimension>`` (a model with
    dimensions; the clip's own rating, where it has one, stays in ``<dimension>``)."""
    labels, n = spec.labels, len(spec.labels)
    out = table.select([c for c in table.column_names if c not in FEATURE_COLUMNS])
    if labels:  # (a model of dimensions alone has none)
        top = [labels[int(i)] for i in top_index(scores[:, :n])] if len(scores) else []
        out = out.append_column("predicted", pa.array(top, pa.string()))
    if spec.multi_label:
        on = [labels_on(labels, row[:n].tolist()) for row in scores]
        out = out.append_column("predicted_labels", pa.array(on, pa.list_(pa.string())))
    for j, lab in enumerate(labels):
        out = out.append_column(f"score_{lab}", pa.array(scores[:, j], pa.float64()))
    for j, dim in enumerate(spec.dimensions):
        out = out.append_column(f"predicted_{dim}", pa.array(scores[:, n + j], pa.float64()))
    return out


def norm_stats(spec: ModelSpec, features: str):
    """``audio_norm: speaker``: each speaker's statistics over the features (Ray Data)."""
    if spec.audio_norm != "speaker" or spec.finetune:
        return None
    from raymer.training.data import frame_stats

    return frame_stats(features, spec.audio_dim)


def refusals(selection: Selection, features: str, where: dict, found: bool) -> None:
    labels = selection.spec.labels
    if selection.foreign:
        raise UsageError(
            f"the features under {features} have labels {sorted(selection.foreign)} that the "
            f"checkpoint was not trained on (its labels: {labels}); evaluate a checkpoint "
            "trained on this label set, select matching clips with --where label=..., or "
            "predict them without scores with `raymer infer`"
        )
    if not found:
        labelled_only, unlabelled = selection.labelled_only, selection.unlabelled
        raise UsageError(
            f"no {'labelled ' if labelled_only else ''}clips under {features} to score"
            + (f" ({unlabelled} clips have no label)" if unlabelled else "")
            + (f" matching {where}" if where else "")
            + ("; `raymer infer` predicts unlabelled clips" if labelled_only and unlabelled else "")
        )


def predict_table(
    model,
    spec: ModelSpec,
    features: str,
    speakers: list[str] | None,
    where: dict[str, list[str]] | None = None,
    batch_size: int = 64,
    labelled_only: bool = True,
    speaker_stats: bool = False,
):
    """Score every labelled clip (of ``speakers``, matching ``where``) -> predictions table.

    Clips without a label are left out and counted (``table.schema.metadata``); a label the
    checkpoint was not trained on is refused: its scores would mean nothing.
    ``labelled_only=False`` (``raymer infer``) scores every matching clip, labelled or not,
    whatever its label. A multi-label checkpoint scores the clips' ``labels`` lists and adds
    ``predicted_labels`` (every label whose score passes ``ON_SCORE``) to ``predicted`` (the
    top one).
    """
    where = dict(where or {}) | ({"speaker": list(speakers)} if speakers else {})
    selection = Selection(spec, {k: set(v) for k, v in where.items()}, labelled_only)
    collate, parts = Collate(spec, norm_stats(spec, features) if speaker_stats else None), []
    for path in feature_files(features):
        fs, inner = storage.filesystem(path)
        for batch in pq.ParquetFile(fs.open_input_file(inner)).iter_batches(batch_size=batch_size):
            table = pa.Table.from_batches([batch])
            small = table.drop_columns([c for c in FEATURE_COLUMNS if c in table.column_names])
            keep = selection.keep(small.to_pylist())
            if keep:
                table = table.take(pa.array(keep, type=pa.int64()))
                scores = scores_of(model, collate, model_batch(collate, table))
                parts.append(predictions_of(table, scores.numpy(), spec))
    refusals(selection, features, where, bool(parts))
    table = pa.concat_tables(parts, promote_options="permissive")
    return table.replace_schema_metadata({"unlabelled": str(selection.unlabelled)})


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
    )
    metrics = result.to_json()
    _save(output, predictions, "metrics.json", metrics)
    storage.write_bytes(storage.join(output, "report.md"), report_markdown(metrics).encode())
    if "confusion" in metrics and can_plot():  # single-label only: no one cell for a list
        from raymer.training.plots import confusion_png

        storage.write_bytes(storage.join(output, "confusion.png"), confusion_png(metrics))
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
