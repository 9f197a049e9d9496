"""What a checkpoint's model is (``ModelSpec``, its ``model.json``) and where its targets
are: the contract every module that builds, trains, loads or describes a model shares. Pure
pydantic: no torch, no Ray, and no raymer module but the settings, so any module may import
it (types included) without an import cycle."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from raymer.config import ExtractSettings
from raymer.config.train import Answers, check_targets


class ModelSpec(Answers, BaseModel, extra="forbid"):
    """What a checkpoint stores (``model.json``) to rebuild its model and make its inputs,
    without the training config."""

    audio_dim: int = Field(..., ge=0, description="Width of the audio frames (0: no audio).")
    text_dim: int = Field(..., ge=1, description="Width of the text token states.")
    labels: list[str] = Field(
        ..., description="The label set, in logit order (empty: a model of dimensions alone)."
    )
    loss: Literal["bce", "ce"] = Field(
        "bce", description="How logits become scores: sigmoid (bce) or softmax (ce)."
    )
    multi_label: bool = Field(False, description="Trained on a list of labels per clip.")
    temperature: float | None = Field(
        None,
        gt=0,
        description="A single-label model's calibration: its scores are the softmax of its "
        "logits divided by this temperature, fitted on the validation clips at the end of "
        "training, so that a top score says how often such an answer is right "
        "(raymer.trained.calibration). None: its loss's own scores (multi-label models and "
        "checkpoints from before calibration).",
    )
    targets: list[str] = Field(
        ["label"],
        description="What the model answers: the label and any emotion dimensions (arousal, "
        "valence, dominance; -1..1) from a regression head on the same fusion body "
        "(checkpoints from before the option: the label only).",
    )
    hidden_dim: int = Field(..., ge=1)
    num_layers: int = Field(..., ge=0)
    num_heads: int = Field(..., ge=1)
    dropout: float = Field(..., ge=0, lt=1)
    modality: Literal["fusion", "audio", "text"]
    audio_input: Literal["frames", "temporal"] = "frames"
    temporal_dim: int = Field(128, ge=1)
    audio_norm: Literal["none", "recording", "speaker"] = Field(
        "none",
        description="recording: each recording's audio frames standardised in the model; "
        "speaker: in training with its speaker's statistics, at inference with the training "
        "speakers' pooled ones (frame_mean, frame_std) (checkpoints from before the option: "
        "none).",
    )
    frame_mean: list[float] | None = Field(
        None,
        description="audio_norm speaker: the training speakers' pooled mean of each frame "
        "column, for clips whose speaker's statistics are not at hand (every inference path).",
    )
    frame_std: list[float] | None = Field(
        None, description="audio_norm speaker: the pooled standard deviation of each column."
    )
    prosody_dim: int = Field(
        0,
        ge=0,
        description="How many of the audio_dim columns are prosody (eGeMAPS descriptors, the "
        "last ones; 0: none, as in checkpoints from before the option).",
    )
    prosody_mean: list[float] | None = Field(
        None, description="Training-set mean of each prosody column (standardised in the model)."
    )
    prosody_std: list[float] | None = Field(
        None, description="Training-set standard deviation of each prosody column."
    )
    extract: ExtractSettings = Field(
        default_factory=ExtractSettings,
        description="How the training features were made; serving makes its inputs the same way.",
    )
    mode: Literal["features", "finetune"] = Field(
        "features", description="features: a head on cached features; finetune: end to end."
    )
    asr_model: str | None = Field(None, description="Fine-tune: the Whisper encoder trained.")
    text_model: str | None = Field(None, description="Fine-tune: the text encoder trained.")
    n_mels: int = Field(80, ge=1, description="Fine-tune: log-mel bins of the Whisper encoder.")
    pool: int = Field(5, ge=1, description="Fine-tune: encoder frames averaged per frame.")
    max_text_tokens: int = Field(128, ge=1, description="Fine-tune: token limit of the text.")
    init_text: str | None = Field(None, description="Checkpoint the text branch started from.")
    checkpoint: str | None = Field(
        None, exclude=True, description="Where this spec was read from (not saved)."
    )

    @field_validator("extract", mode="before")
    @classmethod
    def _no_settings(cls, value: Any) -> Any:
        return {} if value is None else value  # checkpoints of features made elsewhere

    @field_validator("targets")
    @classmethod
    def _known_targets(cls, value: list[str]) -> list[str]:
        return check_targets(value)

    @model_validator(mode="after")
    def _labels_fit_targets(self) -> ModelSpec:
        if ("label" in self.targets) != bool(self.labels):
            raise ValueError(
                f"labels {self.labels} with targets {self.targets}: a model answers labels "
                "exactly when `label` is one of its targets"
            )
        return self

    @property
    def finetune(self) -> bool:
        return self.mode == "finetune"

    @property
    def needs_audio(self) -> bool:
        """Reads the raw audio: a fine-tune model with an audio branch. A features model
        reads Whisper frames, a text model no audio at all."""
        return self.finetune and self.modality != "text"

    @property
    def text_encoder(self) -> str:
        """The text encoder whose token states the model reads: the fine-tuned one, or the
        one the features were extracted with."""
        return (self.text_model if self.finetune else None) or self.extract.text_model

    @property
    def speech_encoder(self) -> str:
        """The Whisper model of the audio branch (fine-tuned, or the features')."""
        return (self.asr_model if self.finetune else None) or self.extract.asr_model


def target_column(multi_label: bool) -> str:
    """Where a clip's targets are: ``label`` (one) or ``labels`` (a list, e.g. GoEmotions)."""
    return "labels" if multi_label else "label"


SCORE_TITLES = {"ua": "UA", "macro_f1": "macro-F1", "ccc": "mean CCC"}  # score_name's, as shown


def score_name(multi_label: bool, labels: bool = True) -> str:
    """The metric that chooses checkpoints and stops early: UA, or macro-F1 for multi-label;
    for a model of dimensions alone (``labels`` False), their mean CCC."""
    if not labels:
        return "ccc"
    return "macro_f1" if multi_label else "ua"
