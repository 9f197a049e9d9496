"""What a training run's checkpoint says of its model (``ModelSpec``): built from the
config's ``model`` part (the fields both records have), the features it reads (their width,
labels, prosody statistics, how they were extracted) and, in fine-tune mode, its encoders."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import yaml

from raymer import storage
from raymer.config import ExtractConfig, ExtractSettings, TrainConfig
from raymer.config.train import ModelConfig
from raymer.errors import UsageError
from raymer.trained import checkpoint
from raymer.trained.checkpoint import ModelSpec
from raymer.training.data import Index, feature_files, features_path, keep_of, read_frames

# What the model part says of the model that its spec records: the fields both records have.
SPEC_KEYS = set(ModelConfig.model_fields) & set(ModelSpec.model_fields)


def model_spec(
    cfg: TrainConfig, index: Index, labels: list[str], train_speakers: set[str] = frozenset()
) -> ModelSpec:
    """The model's spec: shape, labels, how its inputs were extracted, fine-tune encoders,
    and the run its text branch starts from (checked here, before any worker starts)."""
    extract = extraction_settings(cfg.features)
    values = cfg.model.model_dump(include=SPEC_KEYS)  # the model part builds the spec
    values |= {"audio_dim": index.audio_dim, "text_dim": index.text_dim, "labels": list(labels)}
    # a text model never has prosody on (ModelConfig refuses it; compare's and crossval's
    # text models leave it out: as_modality)
    prosody = cfg.with_prosody(extract.prosody).model.prosody  # auto: train resolved it
    extract = extract.model_copy(update={"prosody": prosody})  # what serving extracts
    if prosody:
        values |= _prosody_spec(cfg, index, train_speakers)
    if cfg.mode == "finetune":
        values |= finetune_spec(cfg, extract)
    spec = ModelSpec(extract=extract, **values)
    if cfg.model.init_text:
        from raymer.models.transfer import check_text_branch

        source = checkpoint.load_spec(cfg.model.init_text)
        check_text_branch(source, spec)
        spec.init_text = source.checkpoint  # where the text branch started from
    return spec


def _prosody_spec(cfg: TrainConfig, index: Index, train_speakers: set[str]) -> dict:
    """The prosody columns' width and the training clips' statistics of each (a sample of
    at most 2,000 clips, as the temporal embedding reads), for the model to standardise them."""
    import numpy as np

    from raymer.audio.prosody import PROSODY_DIM

    if not extraction_settings(cfg.features).prosody:
        raise UsageError(
            f"prosody: the features under {cfg.features} were extracted without it; extract "
            "again with prosody: true"
        )
    clips = read_frames(cfg.features, keep_of(cfg, train_speakers), columns=tuple(cfg.data.holdout))
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
    # (features made elsewhere; prosody only where their record says so: extract's default
    # is on, but features made before it, or elsewhere, carry none)
    values = {"prosody": False} | {k: v for k, v in from_rows.items() if v} | values
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
    if cfg.model.modality != "text":
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
