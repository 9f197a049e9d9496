"""``raymer train``: the fusion model on extracted features, distributed with Ray Train.

Output layout (local or s3://)::

    OUTPUT/NAME/checkpoint_*/   a checkpoint folder (``raymer.checkpoint``): model.json, model.pt, ...
    OUTPUT/config.yaml          the resolved TrainConfig
    OUTPUT/train_summary.json   splits, per-epoch metrics and the best checkpoint
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict
from pathlib import Path

import pyarrow.parquet as pq
import yaml

from raymer import checkpoint, storage
from raymer.checkpoint import ModelSpec, score_name, target_column, write_card
from raymer.config import ExtractConfig, ExtractSettings, TrainConfig, dump_config, require_paths
from raymer.drills import armed
from raymer.errors import UsageError
from raymer.extras import can_plot
from raymer.runtime import READ_ARGS, init_ray
from raymer.training.data import (
    AUGMENT,
    COLUMNS,
    Index,
    InSpeakers,
    feature_columns,
    feature_files,
    features_path,
    frame_stats,
    read_frames,
    read_index,
    split_speakers,
)
from raymer.training.errors import TrainingError
from raymer.training.finetune_data import FINETUNE_COLUMNS, decode_rows
from raymer.training.loop import WorkerConfig, history_uri, nan_marker
from raymer.training.report import TrainSummary, card_facts, epoch_lines

logger = logging.getLogger(__name__)

MODEL_KEYS = ("hidden_dim", "num_layers", "num_heads", "dropout", "modality", "audio_input")
MODEL_KEYS += ("temporal_dim", "loss", "multi_label", "audio_norm", "targets")


def refuse_multi_label(cfg: TrainConfig, command: str) -> None:
    """crossval and compare score single labels: a multi_label run, or a model of
    dimensions alone, is refused, saying why."""
    if cfg.multi_label:
        raise UsageError(
            f"{command} scores single-label clips; train and evaluate a multi_label model on "
            "the corpus's own split (e.g. GoEmotions' train/dev/test: split_by=fold)"
        )
    if not cfg.has_labels:
        raise UsageError(
            f"{command} compares labels (UA), and reports dimensions beside them: give "
            f"targets [label, {', '.join(cfg.targets)}], or train and evaluate a model of "
            "dimensions alone"
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

    index = read_index(cfg.features, cfg.split_by, cfg.multi_label, rated_only(cfg))
    labels = _checked_labels(cfg, index)
    train_s, val_s, test_s = split_speakers(
        index.speakers, cfg.test_speakers, cfg.val_speakers, cfg.val_fraction, cfg.seed
    )
    datasets = _datasets(cfg, {"train": train_s, "val": val_s})
    spec = _spec(cfg, index, labels, train_s)
    stats = None
    if cfg.audio_norm == "speaker":  # each speaker's statistics; the training speakers' pooled
        stats = frame_stats(cfg.features, spec.audio_dim)
        pool = train_s if cfg.split_by == "speaker" else stats.count  # (sessions: every speaker)
        spec.frame_mean, spec.frame_std = stats.pooled(pool)
    adapter_state = _fit_temporal(cfg, train_s) if cfg.audio_input == "temporal" else None
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
            name=cfg.name,
            storage_path=out_path,
            storage_filesystem=out_fs,
            checkpoint_config=CheckpointConfig(
                num_to_keep=cfg.num_to_keep,
                checkpoint_score_attribute="val_score",
                checkpoint_score_order="max",
            ),
            failure_config=FailureConfig(max_failures=cfg.max_failures),
        ),
        datasets=datasets,
    )
    return trainer, labels, (train_s, val_s, test_s), index.unlabelled


def rated_only(cfg: TrainConfig) -> tuple[str, ...]:
    """A model of emotion dimensions alone: the dimensions (a clip rated on any is a training
    clip); () when the label is a target."""
    return () if cfg.has_labels else tuple(cfg.dimensions)


def keep_of(cfg: TrainConfig, speakers: set[str], copies: bool = False) -> InSpeakers:
    """The row filter of a split: its speakers, not the held-out groups, with a target."""
    target = target_column(cfg.multi_label)
    return InSpeakers(speakers, cfg.holdout, cfg.split_by, target, copies, rated_only(cfg))


def _checked_labels(cfg: TrainConfig, index: Index) -> list[str]:
    """The label set to train on (none for a model of dimensions alone); refuses features
    the configuration cannot train on."""
    if index.audio_dim == 0 and cfg.modality != "text":
        raise UsageError(
            f"the features under {cfg.features} hold text only (extracted from a text "
            f"manifest); train them with modality=text, not {cfg.modality}"
        )
    labels = (cfg.labels or index.label_set()) if cfg.has_labels else []
    unknown = sorted(set(index.label_set()) - set(labels)) if labels else []
    if unknown:
        raise UsageError(
            f"labels {unknown} in the features are not in the configured labels {labels}"
        )
    present = set(feature_columns(cfg.features))
    missing = sorted(set(cfg.holdout) - present)
    if missing:
        raise UsageError(f"holdout columns {missing} are not in the features")
    unrated = [t for t in cfg.dimensions if t not in present]
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
    target = [target_column(cfg.multi_label)] if cfg.has_labels else []
    base = FINETUNE_COLUMNS if cfg.mode == "finetune" else COLUMNS
    base = [c for c in base if c != "label" or target]
    dims = cfg.dimensions
    columns = list(dict.fromkeys([*base, *target, *dims, cfg.split_by, *sorted(cfg.holdout)]))
    columns += [AUGMENT] if AUGMENT in feature_columns(cfg.features) else []
    ds = ray.data.read_parquet(path, filesystem=fs, **READ_ARGS)
    ds = ds.select_columns(columns)
    datasets = {
        name: ds.map_batches(
            keep_of(cfg, group, copies=name == "train" and cfg.use_augmented).table,
            batch_format="pyarrow",
            num_cpus=READ_ARGS["num_cpus"],
        )
        for name, group in speakers.items()
    }
    if cfg.mode == "finetune" and cfg.modality != "text":  # a text model decodes no audio
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


def _spec(
    cfg: TrainConfig, index: Index, labels: list[str], train_speakers: set[str] = frozenset()
) -> ModelSpec:
    """The model's spec: shape, labels, how its inputs were extracted, fine-tune encoders,
    and the run its text branch starts from (checked here, before any worker starts)."""
    extract = extraction_settings(cfg.features)
    values = {k: getattr(cfg, k) for k in MODEL_KEYS}
    values |= {"audio_dim": index.audio_dim, "text_dim": index.text_dim, "labels": list(labels)}
    prosody = cfg.prosody and cfg.modality != "text"  # (compare's text model reads no audio)
    extract = extract.model_copy(update={"prosody": prosody})  # what serving extracts
    if prosody:
        values |= _prosody_spec(cfg, index, train_speakers)
    if cfg.mode == "finetune":
        values |= finetune_spec(cfg, extract)
    spec = ModelSpec(extract=extract, **values)
    if cfg.init_text:
        from raymer.models.transfer import check_text_branch

        source = checkpoint.load_spec(cfg.init_text)
        check_text_branch(source, spec)
        spec.init_text = source.checkpoint  # where the text branch started from
    return spec


def _prosody_spec(cfg: TrainConfig, index: Index, train_speakers: set[str]) -> dict:
    """The prosody columns' width and the training clips' statistics of each (a sample of
    at most 2,000 clips, as the temporal embedding reads), for the model to standardise them."""
    import numpy as np

    from raymer.prosody import PROSODY_DIM

    if not extraction_settings(cfg.features).prosody:
        raise UsageError(
            f"prosody: the features under {cfg.features} were extracted without it; extract "
            "again with prosody: true"
        )
    clips = read_frames(cfg.features, keep_of(cfg, train_speakers), columns=tuple(cfg.holdout))
    columns = np.concatenate([c[:, -PROSODY_DIM:] for c in clips if len(c)])
    return {
        "audio_dim": index.audio_dim + PROSODY_DIM,
        "prosody_dim": PROSODY_DIM,
        "prosody_mean": [float(x) for x in columns.mean(0)],
        "prosody_std": [float(x) for x in columns.std(0)],
    }


def extraction_settings(features: str) -> ExtractSettings:
    """How the features were made (models, window, frame rate, text source), saved in the
    checkpoint's spec so that serving computes its inputs the same way."""
    inner = features_path(features)
    root = features if inner != features else storage.parent(features)
    saved = storage.join(root, "config.yaml")
    values = yaml.safe_load(storage.read_bytes(saved)) if storage.exists(saved) else {}
    fs, path = storage.filesystem(feature_files(features)[0])
    columns = ["asr_model", "text_model", "audio_frame_rate_hz"]
    row = pq.read_table(path, filesystem=fs, columns=columns).slice(0, 1).to_pylist()[0]
    keys = set(ExtractSettings.model_fields)
    values = {k: v for k, v in (values or {}).items() if k in keys}
    from_rows = {
        "asr_model": row["asr_model"],
        "text_model": row["text_model"],
        "frame_rate_hz": row["audio_frame_rate_hz"],
    }
    values = {k: v for k, v in from_rows.items() if v} | values  # (features made elsewhere)
    return ExtractSettings(**ExtractConfig(**values).model_dump(include=keys))


def finetune_spec(cfg: TrainConfig, extract: ExtractSettings) -> dict:
    """What fine-tune mode adds to a checkpoint's spec: its encoders and the frame pooling
    (``extract``: how the features were made, from ``extraction_settings``)."""
    from transformers import AutoConfig

    from raymer.models.registry import resolve_model
    from raymer.models.whisper_encoder import read_ct2_variables

    asr = cfg.finetune.asr_model or extract.asr_model
    text = cfg.finetune.text_model or extract.text_model
    # Resolved here, so a missing model fails with its name before any worker starts.
    audio_dim, n_mels = 0, 80  # a text model has no Whisper encoder
    if cfg.modality != "text":
        conv1 = read_ct2_variables(
            Path(resolve_model(asr)) / "model.bin", prefix="encoder/conv1/weight"
        )["encoder/conv1/weight"]
        audio_dim, n_mels = int(conv1.shape[0]), int(conv1.shape[1])
    text_config = AutoConfig.from_pretrained(resolve_model(text))
    rate = extract.frame_rate_hz
    return {
        "mode": "finetune",
        "audio_dim": audio_dim,
        "n_mels": n_mels,
        "text_dim": int(text_config.hidden_size),
        "asr_model": asr,
        "text_model": text,
        "pool": max(1, round(50 / rate)),
        "max_text_tokens": cfg.finetune.max_text_tokens,
    }


def _fit_temporal(cfg: TrainConfig, train_speakers: set[str]) -> dict:
    """The paper's temporal embedding g, trained on the training speakers' frames only."""
    from raymer.models.temporal import fit_temporal_embedding

    clips = read_frames(cfg.features, keep_of(cfg, train_speakers), columns=tuple(cfg.holdout))
    g, _ = fit_temporal_embedding(
        clips, cfg.temporal_dim, k=cfg.temporal_k, steps=cfg.temporal_steps, seed=cfg.seed
    )
    return {k: v.clone() for k, v in g.state_dict().items()}


def train(cfg: TrainConfig) -> TrainSummary:
    require_paths(cfg, "train")
    # Workers run in other folders: every local path they see must be absolute.
    keys = ("features", "output", "init_text")
    cfg = cfg.model_copy(
        update={k: storage.absolute(v) for k in keys if (v := getattr(cfg, k)) is not None}
    )
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
            f"Try a lower lr (now {cfg.lr:g}) and check the features for NaN values."
        )
    if not result.best_checkpoints:
        raise TrainingError(f"the run under {cfg.output} finished without a checkpoint")
    best, metrics = max(result.best_checkpoints, key=lambda cm: cm[1]["val_score"])
    history = json.loads(storage.read_bytes(history_uri(cfg)))
    score = score_name(cfg.multi_label, cfg.has_labels)
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
        split_by=cfg.split_by,
        unlabelled=unlabelled,
    )
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
