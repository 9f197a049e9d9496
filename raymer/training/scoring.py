"""Scoring stored features with a checkpoint, in this process: which clips (``Selection``),
the model's batch of them, and the prediction rows (``predictions_of``) that ``evaluate``,
``infer`` (a row batch at a time, in its actors) and the end of training's calibration
share."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from raymer import storage
from raymer.contract.schema import AUGMENT
from raymer.errors import RunError, UsageError
from raymer.trained.batches import Collate, columns, scores_of
from raymer.trained.checkpoint import ModelSpec, labels_on, target_column, top_label
from raymer.trained.targets import has_target, is_rated
from raymer.training.data import feature_files

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


def predictions_of(
    table: pa.Table, scores: np.ndarray, spec: ModelSpec, min_confidence: float = 0.0
) -> pa.Table:
    """Feature rows and the model's answers on them (``scores_of``: a score per label, then a
    value per dimension) -> prediction rows: the rows' own columns (their types kept, so
    every part of an output has one schema), ``predicted``, ``predicted_labels`` (a
    multi-label model), ``score_<label>`` and ``predicted_<dimension>`` (a model with
    dimensions; the clip's own rating, where it has one, stays in ``<dimension>``);
    ``predicted`` is ``uncertain`` where the top score is under ``min_confidence``."""
    labels, n = spec.labels, len(spec.labels)
    out = table.select([c for c in table.column_names if c not in FEATURE_COLUMNS])
    if labels:  # (a model of dimensions alone has none)
        top = [top_label(labels, row[:n], min_confidence) for row in scores]
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


def scored(table: pa.Table, spec: ModelSpec) -> tuple[np.ndarray, np.ndarray]:
    """Prediction rows of labelled clips (``predictions_of``) -> their label scores (N, L)
    and each clip's label index."""
    index = {lab: i for i, lab in enumerate(spec.labels)}
    scores = np.stack(
        [table.column(f"score_{lab}").to_numpy(zero_copy_only=False) for lab in spec.labels], 1
    )
    y = np.array([index[v] for v in table.column("label").to_pylist()], dtype=int)
    return scores, y
