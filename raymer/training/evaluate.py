"""``raymer evaluate``: score a trained checkpoint on extracted features with labels.

Writes ``metrics.json`` (ua, wa, macro_f1, per_class, confusion), ``predictions.parquet``
(one row per clip: id, label, predicted, a score per label, the manifest's other columns),
``report.md`` and ``confusion.png``. (``raymer train`` writes ``training_curves.png``.)
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from raymer import storage
from raymer.training.data import collate, feature_files, has_target, target_column, targets
from raymer.training.metrics import ON_SCORE, classification_metrics, labels_on, multilabel_metrics

FEATURE_COLUMNS = {"audio_frames", "text_tokens", "audio_embedding", "text_embedding", "segments"}


def resolve_checkpoint(uri: str) -> str:
    """A checkpoint folder, a train output folder (its best checkpoint is used) or a
    ``raymer compare`` output (its fusion run's best checkpoint)."""
    if storage.exists(storage.join(uri, "model.json")):
        return uri
    summary = storage.join(uri, "train_summary.json")
    if storage.exists(summary):
        return json.loads(storage.read_bytes(summary))["best_checkpoint"]
    if storage.exists(storage.join(uri, "comparison.json")):
        return resolve_checkpoint(storage.join(uri, "fusion"))
    raise FileNotFoundError(
        f"{uri} is neither a checkpoint (no model.json), a train output (no "
        "train_summary.json) nor a compare output (no comparison.json)"
    )


def load_spec(uri: str) -> dict:
    """A checkpoint's spec (``model.json``: model settings, labels, how its features were
    made) without its weights."""
    ckpt = resolve_checkpoint(uri)
    return json.loads(storage.read_bytes(storage.join(ckpt, "model.json"))) | {"checkpoint": ckpt}


def load_model(uri: str):
    """Checkpoint (local or s3://) -> (model in eval mode, its spec)."""
    from raymer.models.builders import build_model

    spec = load_spec(uri)
    model = build_model(spec)
    model.load_state_dict(read_state(spec["checkpoint"]))
    return model.eval(), spec


def read_state(checkpoint: str) -> dict:
    """A checkpoint folder's weights (``model.pt``, local or s3://), on the CPU."""
    import torch

    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / "model.pt"
        local.write_bytes(storage.read_bytes(storage.join(checkpoint, "model.pt")))
        return torch.load(local, map_location="cpu")


def label_scores(logits, loss: str):
    """Logits -> a score per label: sigmoids for a BCE-trained model (independent,
    multi-label), softmax probabilities for a CE-trained one."""
    import torch

    return torch.sigmoid(logits) if loss == "bce" else torch.softmax(logits, -1)


def model_inputs(spec: dict, table: pa.Table) -> dict:
    """A features table -> the model's batch: cached frames and tokens, or (fine-tune
    checkpoints) the decoded audio (none for a text model) and text through the fine-tune
    collate. No targets: a clip to predict need not have a label."""
    from raymer.training.loop import make_collate

    if spec.get("mode", "features") == "finetune":
        from raymer.training.finetune_data import FINETUNE_COLUMNS, decode_rows

        names = [c for c in FINETUNE_COLUMNS if c != "label"]
        cols = {c: np.asarray(table.column(c).to_pylist(), dtype=object) for c in names}
        if spec["modality"] == "text":
            return make_collate(spec)(cols)
        decoded = decode_rows(cols)
        if len(decoded["id"]) != len(cols["id"]):
            lost = sorted(set(cols["id"]) - set(decoded["id"]))
            raise ValueError(f"cannot decode the audio of {lost} any more (see the log)")
        return make_collate(spec)(decoded)
    cols = {
        c: np.asarray(table.column(c).to_pylist(), dtype=object)
        for c in ("id", "audio_frames", "text_tokens")
    }
    return collate(cols, spec["labels"], spec.get("multi_label", False))


def _matches(row: dict, where: dict[str, set[str]]) -> bool:
    return all(str(row.get(k)) in v for k, v in where.items())


def predict_table(
    model,
    spec: dict,
    features: str,
    speakers: list[str] | None,
    where: dict[str, list[str]] | None = None,
    batch_size: int = 64,
    labelled_only: bool = True,
):
    """Score every labelled clip (of ``speakers``, matching ``where``) -> predictions table.

    Clips without a label are left out and counted (``table.schema.metadata``); a label the
    checkpoint was not trained on is refused: its scores would mean nothing.
    ``labelled_only=False`` (``raymer infer``) scores every matching clip, labelled or not,
    whatever its label. A multi-label checkpoint scores the clips' ``labels`` lists and adds
    ``predicted_labels`` (every label whose score passes ``ON_SCORE``) to ``predicted`` (the
    top one).
    """
    import torch

    where = dict(where or {}) | ({"speaker": list(speakers)} if speakers else {})
    where_sets = {k: set(v) for k, v in where.items()}  # built once, tested on every row
    labels, multi = spec["labels"], spec.get("multi_label", False)
    target = target_column(multi)
    rows: list[dict] = []
    unlabelled, foreign = 0, set()
    for path in feature_files(features):
        fs, inner = storage.filesystem(path)
        for batch in pq.ParquetFile(fs.open_input_file(inner)).iter_batches(batch_size=batch_size):
            table = pa.Table.from_batches([batch])
            small = table.drop_columns([c for c in FEATURE_COLUMNS if c in table.column_names])
            keep = []
            for i, row in enumerate(small.to_pylist()):
                if not _matches(row, where_sets):
                    continue
                names = row.get(target) if multi else [row.get(target)]
                if not labelled_only:
                    unlabelled += not has_target(row.get(target))
                    keep.append(i)
                elif not has_target(row.get(target)):
                    unlabelled += 1
                elif set(names) - set(labels):
                    foreign.update(set(names) - set(labels))
                else:
                    keep.append(i)
            if not keep:
                continue
            table = table.take(pa.array(keep, type=pa.int64()))
            inputs = model_inputs(spec, table)
            with torch.no_grad():
                logits = model(
                    inputs["audio"], inputs["audio_mask"], inputs["text"], inputs["text_mask"]
                ).logits
            scores = label_scores(logits, spec.get("loss", "bce"))
            carried = [c for c in table.column_names if c not in FEATURE_COLUMNS]
            for i, record in enumerate(table.select(carried).to_pylist()):
                record["predicted"] = labels[int(scores[i].argmax())]
                if multi:
                    record["predicted_labels"] = labels_on(labels, scores[i].tolist())
                record.update({f"score_{lab}": float(scores[i, j]) for j, lab in enumerate(labels)})
                rows.append(record)
    if foreign:
        raise ValueError(
            f"the features under {features} have labels {sorted(foreign)} that the checkpoint "
            f"was not trained on (its labels: {labels}); evaluate a checkpoint trained on this "
            "label set, select matching clips with --where label=..., or predict them without "
            "scores with `raymer infer`"
        )
    if not rows:
        raise ValueError(
            f"no {'labelled ' if labelled_only else ''}clips under {features} to score"
            + (f" ({unlabelled} clips have no label)" if unlabelled else "")
            + (f" matching {where}" if where else "")
            + ("; `raymer infer` predicts unlabelled clips" if labelled_only and unlabelled else "")
        )
    table = pa.Table.from_pylist(rows)
    return table.replace_schema_metadata({"unlabelled": str(unlabelled)})


def evaluate(
    checkpoint: str,
    features: str,
    output: str,
    speakers: list[str] | None = None,
    where: dict[str, list[str]] | None = None,
) -> dict:
    model, spec = load_model(checkpoint)
    predictions = predict_table(model, spec, features, speakers, where)
    labels = spec["labels"]
    index = {lab: i for i, lab in enumerate(labels)}
    if spec.get("multi_label"):
        y_true, y_pred = (
            targets({"labels": predictions.column(c).to_pylist()}, labels, True).bool().numpy()
            for c in ("labels", "predicted_labels")
        )
        scores = multilabel_metrics(y_true, y_pred, labels)
    else:
        y_true = [index[x] for x in predictions.column("label").to_pylist()]
        y_pred = [index[x] for x in predictions.column("predicted").to_pylist()]
        scores = classification_metrics(y_true, y_pred, labels)
    metrics = scores | {
        "checkpoint": spec["checkpoint"],
        "modality": spec["modality"],
        "mode": spec.get("mode", "features"),
        "features": features,
        "speakers": sorted(set(predictions.column("speaker").to_pylist()) - {None}),
        "unlabelled": int(predictions.schema.metadata[b"unlabelled"]),
    }
    _save(output, predictions, "metrics.json", metrics)
    storage.write_bytes(storage.join(output, "report.md"), report_markdown(metrics).encode())
    if "confusion" in metrics:  # single-label only: a multi-label clip has no one cell
        from raymer.training.plots import confusion_png

        storage.write_bytes(storage.join(output, "confusion.png"), confusion_png(metrics))
    return metrics


def infer(
    checkpoint: str,
    features: str,
    output: str,
    speakers: list[str] | None = None,
    where: dict[str, list[str]] | None = None,
) -> dict:
    """Offline predictions: every clip of the features (of ``speakers``, matching ``where``),
    labelled or not -> ``OUTPUT/predictions.parquet`` (``predicted``, ``score_<label>``,
    ``predicted_labels`` for a multi-label model, the other columns carried through) and
    ``OUTPUT/infer.json`` (clips per predicted label)."""
    model, spec = load_model(checkpoint)
    predictions = predict_table(model, spec, features, speakers, where, labelled_only=False)
    predicted = predictions.column("predicted").to_pylist()
    summary = {
        "checkpoint": spec["checkpoint"],
        "modality": spec["modality"],
        "features": features,
        "labels": spec["labels"],
        "n": len(predicted),
        "unlabelled": int(predictions.schema.metadata[b"unlabelled"]),
        "predicted": {lab: predicted.count(lab) for lab in spec["labels"]},
    }
    _save(output, predictions, "infer.json", summary)
    return summary


def _save(output: str, predictions: pa.Table, name: str, summary: dict) -> None:
    """OUTPUT/predictions.parquet and the summary beside it (OUTPUT/NAME, JSON)."""
    storage.makedirs(output)
    storage.write_bytes(storage.join(output, name), json.dumps(summary, indent=2).encode())
    fs, path = storage.filesystem(storage.join(output, "predictions.parquet"))
    pq.write_table(predictions, path, filesystem=fs)


def report_markdown(m: dict) -> str:
    lines = [
        f"# Evaluation: {m['modality']} model ({m.get('mode', 'features')} mode)",
        "",
        f"- checkpoint: `{m['checkpoint']}`",
        f"- features: `{m['features']}`",
        f"- clips: {m['n']}; speakers: {', '.join(m['speakers']) or 'unknown'}"
        + (f"; {m['unlabelled']} clips without a label left out" if m.get("unlabelled") else ""),
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
