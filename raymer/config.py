"""Typed run configurations and ``load_config(cls, path, overrides)``.

No torch and no ray here: configs are validated before any heavy import, so a bad value
fails in milliseconds with a message that names the field.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

C = TypeVar("C", bound=BaseModel)


class ConfigError(ValueError):
    """A config file or override that cannot be used; the message says which and why."""


class ExtractConfig(BaseModel, extra="forbid"):
    """Settings of ``raymer extract``: corpus in, Parquet features out."""

    input: str | None = Field(
        None, description="Manifest (CSV/JSONL/Parquet) or directory of audio; local or s3://."
    )
    output: str | None = Field(
        None, description="Output root: features/ and errors/ are written under it."
    )
    asr_model: str = Field(
        "whisper-base",
        description="Whisper model in CTranslate2 format: a registry name, local folder or hub id.",
    )
    text_model: str = Field(
        "minilm-l6", description="Text encoder: a registry name, local folder or hub id."
    )
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="Where the model stages run; auto picks cuda when use_gpu is set."
    )
    use_gpu: bool = Field(False, description="Give each model actor one GPU (num_gpus=1).")
    compute_type: str = Field(
        "default",
        description="CTranslate2 compute type; default means int8 on CPU, float16 on CUDA.",
    )
    language: str | None = Field(
        None, description="Force the spoken language (e.g. en); detected per clip when unset."
    )
    beam_size: int = Field(1, ge=1, le=10, description="Beam size of the Whisper decoder.")
    window: Literal["fit", "full"] = Field(
        "fit",
        description=(
            "Encoder window: 'fit' trims Whisper's 30 s window to the longest clip of a "
            "batch (rounded up to window_step_s); 'full' always encodes 30 s like stock Whisper."
        ),
    )
    window_step_s: float = Field(
        2.0, gt=0, le=30, description="Granularity of the 'fit' window, in seconds."
    )
    min_window_s: float = Field(
        8.0, gt=0, le=30, description="Shortest encoder window of the 'fit' mode, in seconds."
    )
    batch_size: int = Field(8, ge=1, description="Clips per batch in the model stages.")
    max_duration_s: float = Field(
        600.0, gt=0, description="Clips longer than this are reported as errors, not processed."
    )
    frame_rate_hz: float = Field(
        10.0,
        gt=0,
        le=50,
        description="Rate of the stored audio frame features (Whisper encodes at 50 Hz).",
    )
    text_source: Literal["asr", "reference"] = Field(
        "asr",
        description="Text embedded by the text encoder: the ASR transcript or the manifest text.",
    )
    inputs: Literal["auto", "audio", "text"] = Field(
        "auto",
        description="audio: decode and transcribe each clip, then embed its text; text: embed "
        "the manifest's `text` column only (no audio, no Whisper: a text corpus such as "
        "GoEmotions, for the text branch); auto: text when no manifest row has a path.",
    )
    max_text_tokens: int = Field(128, ge=8, le=512, description="Token limit of the text encoder.")
    asr_actors: int = Field(2, ge=1, description="Whisper actors (one GPU each with use_gpu).")
    asr_num_cpus: float = Field(
        0.5, gt=0, description="CPUs reserved per Whisper actor (fractional on small machines)."
    )
    asr_threads: int = Field(1, ge=0, description="CTranslate2 threads per Whisper actor.")
    asr_num_gpus: float = Field(
        1.0, ge=0, description="GPUs per Whisper actor when use_gpu is set (fractions share one)."
    )
    text_actors: int = Field(1, ge=1, description="Text encoder actors.")
    text_num_cpus: float = Field(0.25, gt=0, description="CPUs reserved per text encoder actor.")
    text_threads: int = Field(1, ge=1, description="torch threads per text encoder actor.")
    text_num_gpus: float = Field(
        0.0, ge=0, description="GPUs per text encoder actor when use_gpu is set (0: on CPU)."
    )
    decode_num_cpus: float = Field(0.25, gt=0, description="CPUs reserved per decoding task.")
    resume: bool = Field(True, description="Skip clips whose id is already in OUTPUT/features.")

    @field_validator("frame_rate_hz")
    @classmethod
    def _divides_encoder_rate(cls, value: float) -> float:
        if abs(50 / value - round(50 / value)) > 1e-6:
            raise ValueError(
                f"frame_rate_hz={value:g} must divide Whisper's 50 Hz frame rate "
                "(50, 25, 10, 5, 2, 1, ...): frames are averaged in whole groups"
            )
        return value

    @field_validator("compute_type")
    @classmethod
    def _known_compute_type(cls, value: str) -> str:
        known = {"default", "auto", "int8", "int8_float32", "int8_float16", "int8_bfloat16"}
        known |= {"int16", "float16", "bfloat16", "float32"}
        if value not in known:
            raise ValueError(f"unknown compute_type {value!r}; choose one of {sorted(known)}")
        return value


class SynthConfig(BaseModel, extra="forbid"):
    """Settings of ``raymer corpus synth``: the sample emotional speech corpus."""

    output: str = Field(..., description="Folder for the audio and manifest.csv.")
    clips: int = Field(200, ge=1, le=200_000, description="Number of clips to generate.")
    seed: int = Field(0, description="Random seed; the same seed gives the same corpus.")
    speakers: int = Field(
        8, ge=1, le=16, description="Number of speakers (piper voice plus espeak-ng variants)."
    )


class FinetuneConfig(BaseModel, extra="forbid"):
    """Settings of fine-tune mode: the encoders train too, with progressive unfreezing."""

    asr_model: str | None = Field(
        None,
        description="Whisper model (CTranslate2 format, float16/float32) whose encoder is "
        "fine-tuned; default: the asr_model the features were extracted with.",
    )
    text_model: str | None = Field(
        None, description="Text encoder; default: the text_model of the features."
    )
    encoder_lr: float = Field(
        2e-5, gt=0, description="Learning rate of the encoders once unfrozen (the head uses lr)."
    )
    top_layers: int = Field(
        2, ge=1, description="Layers of each encoder unfrozen in the 'top' stage."
    )
    unfreeze_top_at: int = Field(
        1,
        ge=0,
        description="Epoch (0-based) from which the top layers of both encoders train; "
        "before it only the fusion head trains.",
    )
    unfreeze_all_at: int = Field(
        3, ge=0, description="Epoch (0-based) from which the whole network trains."
    )
    max_text_tokens: int = Field(128, ge=8, le=512, description="Token limit of the text.")

    @model_validator(mode="after")
    def _ordered(self) -> FinetuneConfig:
        if self.unfreeze_all_at < self.unfreeze_top_at:
            raise ValueError(
                f"unfreeze_all_at={self.unfreeze_all_at} comes before unfreeze_top_at="
                f"{self.unfreeze_top_at}: the schedule is head, then top layers, then all"
            )
        return self


class TrainConfig(BaseModel, extra="forbid"):
    """Settings of ``raymer train``: the fusion model on extracted features, on Ray Train."""

    features: str | None = Field(
        None,
        description="Extraction output (its features/ folder) or the folder itself; local or s3://.",
    )
    output: str | None = Field(
        None, description="Run root: checkpoints, the resolved config and metrics; local or s3://."
    )
    labels: list[str] | None = Field(
        None, description="Label set in order; default: the labels found in the features, sorted."
    )
    mode: Literal["features", "finetune"] = Field(
        "features",
        description="features: encoders frozen, train on the cached Parquet features (fast); "
        "finetune: raw audio and text through the Whisper and text encoders, unfrozen "
        "progressively (see finetune).",
    )
    finetune: FinetuneConfig = Field(
        default_factory=FinetuneConfig,
        description="Fine-tune mode: models, encoder_lr, top_layers, unfreeze_top_at, "
        "unfreeze_all_at, max_text_tokens (override as finetune.KEY=VALUE).",
    )
    modality: Literal["fusion", "audio", "text"] = Field(
        "fusion", description="Both modalities through co-attention, or one alone (same head)."
    )
    audio_input: Literal["frames", "temporal"] = Field(
        "frames",
        description="Audio input of the model: the Whisper frames, or the paper's temporal "
        "embedding g (a projection trained first with a triplet loss, then frozen).",
    )
    temporal_dim: int = Field(128, ge=8, description="Width of the temporal embedding.")
    temporal_k: int = Field(2, ge=1, description="Positives lie within k frames of the anchor.")
    temporal_steps: int = Field(
        300, ge=1, description="Triplet training steps of the temporal embedding."
    )
    hidden_dim: int = Field(128, ge=8, description="Common width of both modalities.")
    num_layers: int = Field(
        0, ge=0, le=8, description="Transformer encoder blocks per modality before co-attention."
    )
    num_heads: int = Field(4, ge=1, description="Attention heads of those blocks.")
    dropout: float = Field(
        0.2, ge=0, lt=1, description="Dropout in the blocks and before the head."
    )
    modality_dropout: float = Field(
        0.0,
        ge=0,
        lt=1,
        description="Fusion only: share of training clips that lose one modality (audio or "
        "text, half each) for a step, so the model learns to use either alone.",
    )
    loss: Literal["bce", "ce"] = Field(
        "bce",
        description="Binary cross-entropy on logits (multi-label capable, as the paper) or softmax cross-entropy.",
    )
    multi_label: bool = Field(
        False,
        description="Targets from the features' `labels` column, a list of labels per clip "
        "(GoEmotions): one sigmoid per label (loss bce), several may be on; checkpoints are "
        "chosen by validation macro-F1. train and evaluate only (crossval and compare score "
        "single labels).",
    )
    init_text: str | None = Field(
        None,
        description="A checkpoint (or train output) whose text branch starts this model, e.g. a "
        "text-only run on GoEmotions: its text projection and blocks (and in fine-tune mode "
        "its fine-tuned text encoder) are loaded before training; the label head starts anew.",
    )
    lr: float = Field(1e-3, gt=0, description="AdamW learning rate.")
    weight_decay: float = Field(1e-2, ge=0, description="AdamW weight decay.")
    batch_size: int = Field(32, ge=1, description="Clips per batch per worker.")
    epochs: int = Field(30, ge=1, description="Most epochs to train.")
    patience: int = Field(
        6, ge=1, description="Early stopping: epochs without a better validation UA."
    )
    split_by: Literal["speaker", "session", "fold"] = Field(
        "speaker",
        description="Manifest column that splits train/validation/test (and the folds of "
        "crossval): no speaker (session, fold) is in two splits. `fold` is the column "
        "`raymer corpus prepare` writes (IEMOCAP's sessions, speaker folds elsewhere). "
        "test_speakers and val_speakers list values of this column.",
    )
    test_speakers: list[str] = Field(
        default_factory=list,
        description="Speakers held out for testing (never trained on, never used to choose a checkpoint).",
    )
    holdout: dict[str, list[str]] = Field(
        default_factory=dict,
        description=(
            "Clips held out of training and validation by another column, e.g. "
            "{template: [angry-03, sad-07]} for unseen sentences; evaluate them with --where."
        ),
    )
    val_speakers: list[str] = Field(
        default_factory=list,
        description="Speakers for validation; default: val_fraction of the training speakers.",
    )
    val_fraction: float = Field(
        0.2,
        gt=0,
        lt=1,
        description="Share of the training speakers used for validation when val_speakers is empty.",
    )
    num_workers: int = Field(2, ge=1, description="Ray Train workers (gloo on CPU, nccl on GPU).")
    use_gpu: bool = Field(False, description="One GPU per worker.")
    cpus_per_worker: float = Field(
        0.5, gt=0, description="CPUs reserved per worker (fractional on small machines)."
    )
    max_failures: int = Field(
        2, ge=0, description="Worker failures survived, each restarting from the last checkpoint."
    )
    num_to_keep: int = Field(2, ge=1, description="Checkpoints kept (the best by validation UA).")
    seed: int = Field(0, description="Random seed of the model and the speaker split.")
    name: str = Field(
        "fusion", description="Run name; re-running the same name in the same output resumes."
    )

    @model_validator(mode="after")
    def _mode_fits(self) -> TrainConfig:
        if self.mode == "finetune" and self.audio_input == "temporal":
            raise ValueError(
                "audio_input=temporal works on cached frames only; fine-tune mode trains the "
                "Whisper encoder itself (use audio_input=frames)"
            )
        if self.multi_label and self.loss != "bce":
            raise ValueError(
                "multi_label needs loss=bce: one sigmoid per label (softmax picks one label)"
            )
        if self.init_text and self.modality == "audio":
            raise ValueError("init_text starts a text branch; modality=audio has none")
        return self


# Where `raymer submit` and `raymer jobs` find a cluster's dashboard by default.
JOBS_ADDRESS = "http://127.0.0.1:8265"


class ServeConfig(BaseModel, extra="forbid"):
    """Settings of ``raymer serve``: the trained model behind an HTTP API, on Ray Serve."""

    checkpoint: str = Field(
        "runs/sample/compare",
        description="Checkpoint folder, train output, or a `raymer compare` output (its fusion "
        "model, and its text model for /v1/recognize/text); local or s3://. Default: what "
        "`make demo` trains.",
    )
    text_checkpoint: str | None = Field(
        None, description="Text-only model for /v1/recognize/text (default: from a compare output)."
    )
    host: str = Field("127.0.0.1", description="Address to listen on.")
    port: int = Field(8000, ge=1, le=65535, description="HTTP port.")
    min_replicas: int = Field(1, ge=0, description="Fewest model replicas (autoscaling).")
    max_replicas: int = Field(2, ge=1, description="Most model replicas (autoscaling).")
    target_ongoing_requests: float = Field(
        2.0, gt=0, description="Autoscaling target: ongoing requests per model replica."
    )
    upscale_delay_s: float = Field(3.0, ge=0, description="Load must last this long to scale up.")
    downscale_delay_s: float = Field(
        20.0, ge=0, description="Idleness must last this long to scale down."
    )
    max_ongoing_requests: int = Field(
        8, ge=1, description="Requests a model replica works on at once (its batch)."
    )
    max_queued_requests: int = Field(
        16, ge=1, description="Requests waiting for a model replica; beyond this: 503."
    )
    batch_max_size: int = Field(8, ge=1, description="Most clips per model batch (@serve.batch).")
    batch_wait_timeout_s: float = Field(
        0.05, ge=0, description="How long a batch waits to fill before it runs."
    )
    layout: Literal["single", "split"] = Field(
        "single",
        description="single: one Model deployment runs Whisper, the text encoder and the head "
        "of each request; split: a deployment per stage (Speech, Text, Head), composed by the "
        "ingress (benchmarks/serve_load.py compares them).",
    )
    replica_num_cpus: float = Field(
        0.5, gt=0, description="CPUs reserved per model replica (the Speech stage's when split)."
    )
    stage_num_cpus: float = Field(
        0.1, gt=0, description="CPUs reserved per Text and Head replica (layout: split)."
    )
    replica_threads: int = Field(1, ge=0, description="Torch/CTranslate2 threads per replica.")
    use_gpu: bool = Field(False, description="One GPU per model replica.")
    max_upload_mb: float = Field(20.0, gt=0, description="Largest upload accepted (else 413).")
    max_duration_s: float = Field(
        300.0, gt=0, description="Longest audio accepted, in seconds (else 413)."
    )
    max_text_chars: int = Field(2000, ge=1, description="Longest text for /v1/recognize/text.")
    request_timeout_s: float = Field(
        60.0, gt=0, description="A request not answered in this time gets 504."
    )
    segments_over_s: float = Field(
        30.0, gt=0, description="Audio longer than this also gets per-segment emotions."
    )
    auth_token: str | None = Field(
        None,
        description="Bearer token required on /v1/* (the RAYMER_API_TOKEN environment "
        "variable sets it too); none: open.",
    )
    cors_origins: list[str] = Field(
        default_factory=list, description="Origins allowed by CORS (e.g. ['*']); none: no CORS."
    )

    @model_validator(mode="after")
    def _replicas(self) -> ServeConfig:
        if self.max_replicas < self.min_replicas:
            raise ValueError(
                f"max_replicas={self.max_replicas} is below min_replicas={self.min_replicas}"
            )
        return self


def parse_overrides(overrides: list[str]) -> dict[str, Any]:
    """``["a=1", "b.c=x"]`` -> ``{"a": 1, "b": {"c": "x"}}``; values are parsed as YAML."""
    result: dict[str, Any] = {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {item!r} is not of the form key=value")
        node = result
        *parents, leaf = key.strip().split(".")
        for part in parents:
            node = node.setdefault(part, {})
        value = yaml.safe_load(raw) if raw != "" else None
        # A mapping given whole (holdout={} or holdout={a: [x]}) replaces the file's mapping;
        # dotted keys (finetune.top_layers=3) change one entry of it.
        node[leaf] = _Whole(value) if isinstance(value, dict) else value
    return result


class _Whole(dict):
    """An override's mapping value: it replaces, where dotted keys merge."""


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, _Whole):
            merged[key] = dict(value)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_config(
    cls: type[C],
    path: str | Path | None = None,
    overrides: list[str] | None = None,
    **values: Any,
) -> C:
    """Build ``cls`` from a YAML file, then keyword values, then ``key=value`` overrides."""
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        loaded = yaml.safe_load(path.read_text()) or {}
        if not isinstance(loaded, dict):
            raise ConfigError(
                f"config file {path} must hold a mapping, not {type(loaded).__name__}"
            )
        data = loaded
    data = _merge(data, {k: v for k, v in values.items() if v is not None})
    data = _merge(data, parse_overrides(overrides or []))
    try:
        return cls(**data)
    except ValidationError as err:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}" for e in err.errors()
        )
        raise ConfigError(f"invalid {cls.__name__}: {problems}") from None


# The settings a run cannot do without, by config: extract reads input, train reads features.
RUN_PATHS: dict[type, tuple[str, ...]] = {
    ExtractConfig: ("input", "output"),
    TrainConfig: ("features", "output"),
}


def require_paths(cfg: BaseModel, command: str) -> None:
    """Raise ``ConfigError`` naming what ``command`` lacks of its ``RUN_PATHS``."""
    keys = RUN_PATHS.get(type(cfg), ())
    if any(not getattr(cfg, k) for k in keys):
        flags = "/".join(f"--{k}" for k in keys)
        raise ConfigError(f"{command} needs {' and '.join(keys)} ({flags}, or in the config)")


def dump_config(cfg: BaseModel) -> str:
    """The resolved config as YAML, saved beside every output."""
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)
