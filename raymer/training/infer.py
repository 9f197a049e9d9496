"""``raymer infer``: a checkpoint over extracted features, as one Ray Data job.

    features (Ray Data's Parquet reader) -> the checkpoint's model (actors, batched)
    -> OUTPUT/predictions/ (Parquet parts)

then ``OUTPUT/infer.json``: clips per predicted label, aggregated by Ray Data over what was
written. The driver never holds the features or the predictions, whatever their size.
"""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from raymer import storage
from raymer.errors import UsageError
from raymer.runtime import READ_ARGS
from raymer.trained import checkpoint
from raymer.trained.batches import Collate, LoadedModel
from raymer.trained.checkpoint import UNCERTAIN, ModelSpec, target_column
from raymer.trained.targets import has_target
from raymer.training.results import InferSummary
from raymer.training.scoring import (
    FEATURE_COLUMNS,
    Selection,
    model_batch,
    norm_stats,
    predictions_of,
    refusals,
)


class Scorer:
    """Actor: the checkpoint's model on batches of feature rows -> prediction rows (the
    clips' own columns, ``predicted``, ``score_<label>``, ``predicted_labels`` for a
    multi-label model). Rows not matching ``where`` are left out. ``ledger``
    (``faults.CrashLedger``) counts the rows read, for the progress line."""

    def __init__(
        self,
        checkpoint_uri: str,
        where: dict[str, set[str]],
        threads: int,
        ledger=None,
        stats=None,
        min_confidence: float = 0.0,
    ) -> None:
        import torch

        torch.set_num_threads(threads)
        self.model = LoadedModel.load(checkpoint_uri)
        self.model.collate = Collate(self.model.spec, stats)  # audio_norm speaker's statistics
        self.spec = self.model.spec
        self.where, self.ledger, self.min_confidence = where, ledger, min_confidence

    def __call__(self, table: pa.Table) -> pa.Table:
        out = self._predict(table)
        if self.ledger is not None:
            seconds = table.column("duration_s") if "duration_s" in table.column_names else None
            audio_s = pc.sum(seconds).as_py() if seconds is not None else None
            self.ledger.count.remote(table.num_rows, float(audio_s or 0.0))
        return out

    def _predict(self, table: pa.Table) -> pa.Table:
        selection = Selection(self.spec, self.where, labelled_only=False)
        small = table.drop_columns([c for c in FEATURE_COLUMNS if c in table.column_names])
        keep = selection.keep(small.to_pylist())
        table = table.take(pa.array(keep, type=pa.int64()))
        scores = np.zeros((0, len(self.spec.labels) + len(self.spec.dimensions)), np.float32)
        if keep:
            scores = self.model.scores(model_batch(self.model.collate, table)).numpy()
        return predictions_of(table, scores, self.spec, self.min_confidence)


def counts(table: pa.Table, labels: list[str], targets: list[str]) -> pa.Table:
    """Prediction rows -> the numbers ``infer`` sums: unlabelled (no value in any of the
    ``targets`` columns: the label's, or each dimension of a model of dimensions alone, as
    ``Selection`` counts them), and one per label (a model of dimensions alone has none)."""
    cols = {}
    if labels:
        predicted = table.column("predicted").to_numpy(zero_copy_only=False)
        cols = {f"is_{lab}": (predicted == lab).astype(np.int64) for lab in [*labels, UNCERTAIN]}
    present = [table.column(c).to_pylist() for c in targets if c in table.column_names]
    if present:
        cols["unlabelled"] = np.array(
            [not any(has_target(v) for v in values) for values in zip(*present, strict=True)],
            dtype=np.int64,
        )
    else:
        cols["unlabelled"] = np.ones(table.num_rows, dtype=np.int64)
    return pa.table(cols)


def infer(
    checkpoint_uri: str,
    features: str,
    output: str,
    speakers: list[str] | None = None,
    where: dict[str, list[str]] | None = None,
    batch_size: int = 64,
    actors: int = 1,
    num_cpus: float = 0.5,
    threads: int = 1,
    speaker_stats: bool = False,
    min_confidence: float = 0.0,
) -> InferSummary:
    """Offline predictions: every clip of the features (of ``speakers``, matching ``where``),
    labelled or not -> ``OUTPUT/predictions/`` and ``OUTPUT/infer.json`` (clips per
    predicted label). A Ray Data job: ``actors`` model actors of ``num_cpus`` CPUs each,
    ``batch_size`` clips per batch. ``speaker_stats``: as ``evaluate``'s; ``min_confidence``:
    a clip whose top score is under it is predicted ``uncertain``."""
    from raymer.runtime import init_ray, shuffle_by_sort
    from raymer.training.data import feature_files

    spec = checkpoint.load_spec(checkpoint_uri)  # fails here, before Ray, when it is not one
    where = dict(where or {}) | ({"speaker": list(speakers)} if speakers else {})
    files = feature_files(features)
    if not files:
        raise UsageError(f"no features under {features} (expected Parquet files)")
    init_ray()
    out = storage.join(output, "predictions")
    for uri in storage.list_files(out, (".parquet",)):  # a re-run replaces the predictions
        storage.delete_file(uri)
    stats = norm_stats(spec, features) if speaker_stats else None
    scoring = (where, threads, stats, min_confidence)
    _predict(files, spec, scoring, out, batch_size, actors, num_cpus)
    with shuffle_by_sort():
        found = _totals(out, spec)
    refusals(Selection(spec, {}, labelled_only=False), features, where, bool(found["count()"]))
    summary = InferSummary(
        checkpoint=spec.checkpoint,
        modality=spec.modality,
        features=features,
        labels=list(spec.labels),
        n=int(found["count()"]),
        unlabelled=int(found.get("sum(unlabelled)") or 0),
        predicted=_predicted(found, spec.labels),
    )
    text = json.dumps(summary.to_json(), indent=2)
    storage.write_bytes(storage.join(output, "infer.json"), text.encode())
    return summary


def _predicted(found: dict, labels: list[str]) -> dict[str, int]:
    """Clips per predicted label (and ``uncertain``, where min_confidence left any)."""
    out = {lab: int(found.get(f"sum(is_{lab})") or 0) for lab in labels}
    unsure = int(found.get(f"sum(is_{UNCERTAIN})") or 0)
    return out | ({UNCERTAIN: unsure} if unsure else {})


def _predict(files, spec, scoring, out, batch_size, actors, num_cpus) -> None:
    """The Ray Data job: features -> Scorer actors -> ``out`` (Parquet), with its progress
    (``scoring``: the Scorer's where, threads, statistics and min_confidence)."""
    import ray.data
    from ray.data import ActorPoolStrategy

    from raymer.console import Progress
    from raymer.pipeline.faults import new_ledger, watched

    fs, _ = storage.filesystem(files[0])
    ds = ray.data.read_parquet(
        [storage.filesystem(f)[1] for f in files], filesystem=fs, **READ_ARGS
    )
    total = ds.count()  # from the Parquet footers
    ledger = new_ledger()
    ds = ds.map_batches(
        Scorer,
        fn_constructor_args=(
            spec.checkpoint,
            {k: set(v) for k, v in scoring[0].items()},
            scoring[1],
            ledger,
            scoring[2],
            scoring[3],
        ),
        batch_size=batch_size,
        compute=ActorPoolStrategy(size=actors),
        num_cpus=num_cpus,
        batch_format="pyarrow",
    )
    ofs, opath = storage.filesystem(out)
    with watched(ledger, Progress("infer", total, "clips")):
        ds.write_parquet(opath, filesystem=ofs)


def _totals(out: str, spec: ModelSpec) -> dict:
    """Predictions written, unlabelled ones and per predicted label, summed by Ray Data."""
    import ray.data
    from ray.data.aggregate import Count, Sum

    if not storage.list_files(out, (".parquet",)):
        return {"count()": 0}
    fs, path = storage.filesystem(out)
    written = ray.data.read_parquet(path, filesystem=fs, **READ_ARGS).map_batches(
        counts,
        fn_kwargs={
            "labels": spec.labels,
            "targets": [target_column(spec.multi_label)] if spec.has_labels else spec.dimensions,
        },
        batch_format="pyarrow",
    )
    names = ["unlabelled", *[f"is_{lab}" for lab in [*spec.labels, UNCERTAIN]]]
    names = names if spec.labels else ["unlabelled"]
    return written.aggregate(Count(), *[Sum(n) for n in names])
