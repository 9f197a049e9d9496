"""``raymer train``: the fusion model on extracted features, distributed with Ray Train.

Output layout (local or s3://)::

    OUTPUT/NAME/checkpoint_*/   a checkpoint folder (``raymer.trained.checkpoint``): model.json, model.pt, ...
    OUTPUT/config.yaml          the resolved TrainConfig
    OUTPUT/train_summary.json   splits, per-epoch metrics and the best checkpoint
"""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import asdict

import pyarrow.parquet as pq

from raymer import storage
from raymer.config import TrainConfig, dump_config, require_paths
from raymer.drills import armed
from raymer.errors import UsageError
from raymer.extras import can_plot
from raymer.runtime import READ_ARGS, init_ray
from raymer.trained import checkpoint
from raymer.trained.checkpoint import score_name, target_column, write_card
from raymer.training.calibrate import calibrate_run
from raymer.training.data import (
    AUGMENT,
    COLUMNS,
    Index,
    feature_columns,
    feature_files,
    features_path,
    frame_stats,
    keep_of,
    rated_only,
    read_frames,
    read_index,
    split_speakers,
)
from raymer.training.errors import TrainingError
from raymer.training.finetune_data import FINETUNE_COLUMNS, decode_rows
from raymer.training.loop import WorkerConfig, history_uri, nan_marker
from raymer.training.model_spec import extraction_settings, model_spec
from raymer.training.report import TrainSummary, card_facts, epoch_lines

logger = logging.getLogger(__name__)


def refuse_multi_label(cfg: TrainConfig, command: str) -> None:
    """crossval and compare score single labels: a multi_label run, or a model of
    dimensions alone, is refused, saying why."""
    if cfg.model.multi_label:
        raise UsageError(
            f"{command} scores single-label clips; train and evaluate a multi_label model on "
            "the corpus's own split (e.g. GoEmotions' train/dev/test: split_by=fold)"
        )
    if not cfg.model.has_labels:
        raise UsageError(
            f"{command} compares labels (UA), and reports dimensions beside them: give "
            f"targets [label, {', '.join(cfg.model.targets)}], or train and evaluate a model of "
            "dimensions alone"
        )


# What must match for a re-run of the same run name to go on from its checkpoints
RESUMED_KEYS = ("modality", "audio_input", "audio_dim", "text_dim", "prosody_dim", "labels")
RESUMED_KEYS += ("targets", "hidden_dim", "num_layers", "num_heads", "loss", "multi_label")


def refuse_another_model(cfg: TrainConfig, spec) -> None:
    """A re-run of the same run name in the same output goes on from its latest checkpoint:
    refused, before any worker starts, where those checkpoints hold another model (other
    features, other settings), which they could not be loaded into."""
    specs = storage.list_files(storage.join(cfg.output, cfg.run.name), (checkpoint.SPEC_FILE,))
    if not specs:
        return
    old = checkpoint.ModelSpec.model_validate_json(storage.read_bytes(specs[-1]))
    differ = [
        f"{k}: {getattr(old, k)!r} then, {getattr(spec, k)!r} now"
        for k in RESUMED_KEYS
        if getattr(old, k) != getattr(spec, k)
    ]
    if differ:
        raise UsageError(
            f"{cfg.output} holds run {cfg.run.name!r} of another model ({'; '.join(differ)}), "
            "whose checkpoints a re-run would go on from: give another output or run.name, "
            "or remove that run"
        )


def worker_resources(cfg: TrainConfig) -> dict[str, float]:
    """What each Ray Train worker reserves (``resources.model``)."""
    stage = cfg.resources.model
    gpus = cfg.resources.gpus(stage)
    return {"CPU": stage.num_cpus} | ({"GPU": gpus} if cfg.resources.use_gpu else {})


def build_trainer(cfg: TrainConfig):
    """A TorchTrainer over the features, with the speaker split resolved and recorded."""
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from raymer.training.loop import train_loop

    index = read_index(cfg.features, cfg.data.split_by, cfg.model.multi_label, rated_only(cfg))
    labels = _checked_labels(cfg, index)
    train_s, val_s, test_s = split_speakers(
        index.speakers,
        cfg.data.test_speakers,
        cfg.data.val_speakers,
        cfg.data.val_fraction,
        cfg.run.seed,
    )
    datasets = _datasets(cfg, {"train": train_s, "val": val_s})
    spec = model_spec(cfg, index, labels, train_s)
    refuse_another_model(cfg, spec)
    stats = None
    if cfg.model.audio_norm == "speaker":  # each speaker's statistics; the training ones' pooled
        stats = frame_stats(cfg.features, spec.audio_dim)
        pool = train_s if cfg.data.split_by == "speaker" else stats.count  # (sessions: all)
        spec.frame_mean, spec.frame_std = stats.pooled(pool)
    adapter_state = (
        _fit_temporal(cfg, train_s, spec.audio_dim) if cfg.model.audio_input == "temporal" else None
    )
    out_fs, out_path = storage.filesystem(cfg.output)
    trainer = TorchTrainer(
        train_loop,
        train_loop_config={
            "run": WorkerConfig(
                cfg,
                spec,
                adapter_state,
                stats,
                drill=armed(),  # a fault drill (raymer.drills), None but in tests
            )
        },
        scaling_config=ScalingConfig(
            num_workers=cfg.resources.model.actors,
            use_gpu=cfg.resources.use_gpu,
            resources_per_worker=worker_resources(cfg),
        ),
        run_config=RunConfig(
            name=cfg.run.name,
            storage_path=out_path,
            storage_filesystem=out_fs,
            checkpoint_config=CheckpointConfig(
                num_to_keep=cfg.run.num_to_keep,
                checkpoint_score_attribute="val_score",
                checkpoint_score_order="max",
            ),
            failure_config=FailureConfig(max_failures=cfg.run.max_failures),
        ),
        datasets=datasets,
    )
    return trainer, labels, (train_s, val_s, test_s), index.unlabelled


def _checked_labels(cfg: TrainConfig, index: Index) -> list[str]:
    """The label set to train on (none for a model of dimensions alone); refuses features
    the configuration cannot train on."""
    if index.audio_dim == 0 and cfg.model.modality != "text":
        raise UsageError(
            f"the features under {cfg.features} hold text only (extracted from a text "
            f"manifest); train them with modality=text, not {cfg.model.modality}"
        )
    labels = (cfg.data.labels or index.label_set()) if cfg.model.has_labels else []
    unknown = sorted(set(index.label_set()) - set(labels)) if labels else []
    if unknown:
        raise UsageError(
            f"labels {unknown} in the features are not in the configured labels {labels}"
        )
    present = set(feature_columns(cfg.features))
    missing = sorted(set(cfg.data.holdout) - present)
    if missing:
        raise UsageError(f"holdout columns {missing} are not in the features")
    unrated = [t for t in cfg.model.dimensions if t not in present]
    if unrated:
        raise UsageError(
            f"targets {unrated}: the features under {cfg.features} have no such column (a "
            "manifest column rated -1..1, as `raymer corpus prepare iemocap|msp-podcast` and "
            "`raymer corpus synth` write; extract again from such a manifest)"
        )
    return labels


def _datasets(cfg: TrainConfig, speakers: dict[str, set[str]]) -> dict:
    """One Ray dataset per split: the columns training reads, the split's speakers (and
    holdout values) only, filtered a batch at a time in Arrow; in fine-tune mode with audio,
    the clips decoded on the way. A features-mode split that fits in a share of the object
    store is materialized there once, so later epochs do not read the Parquet again."""
    import ray.data

    fs, path = storage.filesystem(features_path(cfg.features))
    target = [target_column(cfg.model.multi_label)] if cfg.model.has_labels else []
    base = FINETUNE_COLUMNS if cfg.mode == "finetune" else COLUMNS
    base = [c for c in base if c != "label" or target]
    dims = cfg.model.dimensions
    columns = list(
        dict.fromkeys([*base, *target, *dims, cfg.data.split_by, *sorted(cfg.data.holdout)])
    )
    columns += [AUGMENT] if AUGMENT in feature_columns(cfg.features) else []
    ds = ray.data.read_parquet(path, filesystem=fs, **READ_ARGS)
    ds = ds.select_columns(columns)
    datasets = {
        name: ds.map_batches(
            keep_of(cfg, group, copies=name == "train" and cfg.data.use_augmented).table,
            batch_format="pyarrow",
            num_cpus=READ_ARGS["num_cpus"],
        )
        for name, group in speakers.items()
    }
    if cfg.mode == "finetune" and cfg.model.modality != "text":  # a text model decodes no audio
        return {
            k: v.map_batches(decode_rows, batch_size=16, num_cpus=0.25) for k, v in datasets.items()
        }
    if _fits_in_memory(cfg, columns):
        datasets = {k: v.materialize() for k, v in datasets.items()}
    return datasets


CACHE_SHARE = 0.4  # of the object store: what a materialized training set may take


def _fits_in_memory(cfg: TrainConfig, columns: list[str]) -> bool:
    """Whether the features' columns (their uncompressed size, from the Parquet footers)
    fit in ``CACHE_SHARE`` of the cluster's object store."""
    import ray

    need = 0
    for uri in feature_files(cfg.features):
        fs, inner = storage.filesystem(uri)
        meta = pq.read_metadata(fs.open_input_file(inner))
        for g in range(meta.num_row_groups):
            group = meta.row_group(g)
            for c in range(group.num_columns):
                chunk = group.column(c)
                if chunk.path_in_schema.split(".")[0] in columns:
                    need += chunk.total_uncompressed_size
    store = ray.cluster_resources().get("object_store_memory", 0)
    fits = need <= CACHE_SHARE * store
    logger.info(
        "training set: %.1f MB uncompressed, object store %.1f MB: %s",
        need / 1e6,
        store / 1e6,
        "held in the object store" if fits else "streamed from Parquet each epoch",
    )
    return fits


def _fit_temporal(cfg: TrainConfig, train_speakers: set[str], width: int) -> dict:
    """The paper's temporal embedding g, trained on the training speakers' frames only: the
    ``width`` Whisper columns the model reads (stored frames may carry prosody after them,
    which a temporal model does not read)."""
    from raymer.models.temporal import fit_temporal_embedding

    keep = keep_of(cfg, train_speakers)
    clips = read_frames(cfg.features, keep, columns=tuple(cfg.data.holdout))
    clips = [c[:, :width] for c in clips]
    g, _ = fit_temporal_embedding(
        clips,
        cfg.model.temporal_dim,
        k=cfg.model.temporal_k,
        steps=cfg.model.temporal_steps,
        seed=cfg.run.seed,
    )
    return {k: v.clone() for k, v in g.state_dict().items()}


def train(cfg: TrainConfig) -> TrainSummary:
    require_paths(cfg, "train")
    # Workers run in other folders: every local path they see must be absolute.
    paths = {"features": cfg.features, "output": cfg.output, "model.init_text": cfg.model.init_text}
    cfg = cfg.updated(**{k: storage.absolute(v) for k, v in paths.items() if v is not None})
    cfg = cfg.with_prosody(extraction_settings(cfg.features).prosody)  # model.prosody: auto
    init_ray()
    storage.makedirs(cfg.output)
    storage.write_bytes(storage.join(cfg.output, "config.yaml"), dump_config(cfg).encode())
    trainer, labels, (train_s, val_s, test_s), unlabelled = build_trainer(cfg)
    marker = nan_marker(cfg)
    if storage.exists(marker):
        storage.delete_file(marker)
    with epoch_lines(cfg):
        result = trainer.fit()
    if storage.exists(marker):
        nan = json.loads(storage.read_bytes(marker))
        raise TrainingError(
            f"the training loss became NaN or infinite ({nan['loss']}) in epoch {nan['epoch']} "
            f"(batch {nan['step']}), so the run stopped; that epoch wrote no checkpoint. "
            f"Try a lower lr (now {cfg.optim.lr:g}) and check the features for NaN values."
        )
    if not result.best_checkpoints:
        raise TrainingError(f"the run under {cfg.output} finished without a checkpoint")
    best, metrics = max(result.best_checkpoints, key=lambda cm: cm[1]["val_score"])
    history = json.loads(storage.read_bytes(history_uri(cfg)))
    score = score_name(cfg.model.multi_label, cfg.model.has_labels)
    summary = TrainSummary(
        best_checkpoint=_uri(cfg.output, best.path),
        best_val_ua=None if metrics.get("val_ua") is None else float(metrics["val_ua"]),
        best_val_score=float(metrics["val_score"]),
        selected_by=f"val_{score}",
        best_epoch=int(metrics["epoch"]),
        epochs=int(result.metrics["epoch"]),
        history=history,
        labels=labels,
        train_speakers=sorted(train_s),
        val_speakers=sorted(val_s),
        test_speakers=sorted(test_s),
        split_by=cfg.data.split_by,
        unlabelled=unlabelled,
    )
    calibrated = calibrate_run(cfg, summary.best_checkpoint, sorted(val_s))
    if calibrated is not None:
        summary.calibration = calibrated.to_json()
        print(calibrated.line(), file=sys.stderr, flush=True)
    storage.write_bytes(
        storage.join(cfg.output, checkpoint.TRAIN_SUMMARY_FILE),
        json.dumps(asdict(summary), indent=2, default=float).encode(),
    )
    write_card(summary.best_checkpoint, card_facts(cfg, summary))
    if history and can_plot():
        from raymer.training.plots import curves_png

        storage.write_bytes(
            storage.join(cfg.output, "training_curves.png"),
            curves_png(history, score),
        )
    return summary


def _uri(output: str, path: str) -> str:
    """A checkpoint path from Ray (no scheme on S3) -> a URI like the output's."""
    return f"s3://{path}" if output.startswith("s3://") and not path.startswith("s3://") else path
