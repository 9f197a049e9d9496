"""Settings of ``raymer train`` (and compare, crossval): the model, its data, Ray Train."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, model_validator

from raymer.config.command import CommandConfig, Part, part
from raymer.config.parts import ResourcesConfig

# Emotion dimensions a manifest may rate (rescaled to -1..1 by ``raymer corpus prepare``) and
# a model may be trained to answer beside the label (``targets``).
DIMENSIONS = ("arousal", "valence", "dominance")
TARGETS = ("label", *DIMENSIONS)


def check_targets(targets: list[str]) -> list[str]:
    """A model's targets (a ``TrainConfig``'s, a checkpoint's ``ModelSpec``'s): known,
    once each, at least one."""
    unknown = [t for t in targets if t not in TARGETS]
    if unknown or not targets or len(set(targets)) != len(targets):
        raise ValueError(f"targets {targets}: any of {', '.join(TARGETS)}, once each")
    return targets


def target_dimensions(targets: list[str]) -> list[str]:
    """The emotion dimensions among ``targets``, in output order (none: labels only)."""
    return [t for t in targets if t in DIMENSIONS]


class Answers:
    """What a model answers, read from its ``targets``: the one reading of a ``ModelConfig``
    (what a run trains) and a ``ModelSpec`` (what a checkpoint answers), which hold it."""

    @property
    def has_labels(self) -> bool:
        """Answers a label (else emotion dimensions alone)."""
        return "label" in self.targets

    @property
    def dimensions(self) -> list[str]:
        """The emotion dimensions it answers, in output order (none: labels only)."""
        return target_dimensions(self.targets)


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


class ModelConfig(Answers, Part):
    """What the model is: its inputs, its size, what it answers (``ModelSpec`` is built from
    these fields, the ones both records have)."""

    modality: Literal["fusion", "audio", "text"] = Field(
        "fusion", description="Both modalities through co-attention, or one alone (same head)."
    )
    audio_input: Literal["frames", "temporal"] = Field(
        "frames",
        description="Audio input of the model: the Whisper frames, or the paper's temporal "
        "embedding g (a projection trained first with a triplet loss, then frozen).",
    )
    audio_norm: Literal["none", "recording", "speaker"] = Field(
        "none",
        description="recording: standardise each recording's audio frames (per dimension, "
        "over its own frames) inside the model, so training, evaluation, recognize, serve and "
        "the library apply it alike; takes a recording's channel and level out of the audio "
        "branch. speaker: each clip's frames standardised with its speaker's statistics "
        "(over all of the speaker's clips, summed by Ray Data; the features' `speaker` "
        "column) in training, and with the training speakers' pooled statistics (kept in "
        "the checkpoint) in evaluate, infer, recognize, serve and the library, so they all "
        "agree (evaluate/infer --speaker-stats: each clip's own speaker's). none: the "
        "frames as extracted.",
    )
    prosody: bool | Literal["auto"] = Field(
        "auto",
        description="Read the eGeMAPS prosody columns the features carry (extract's prosody, "
        "on by default) beside the Whisper frames, standardised with the training set's "
        "statistics (recorded in the checkpoint); recognize, serve and the library extract "
        "them too then. auto: read them where the features carry them and the model reads "
        "cached Whisper frames (features mode, audio_input frames, an audio branch); true: "
        "refuse features without them; false: the Whisper frames alone.",
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
    targets: list[Literal["label", "arousal", "valence", "dominance"]] = Field(
        default_factory=lambda: ["label"],
        description="What the model learns to answer: the label, any emotion dimensions the "
        "features carry as columns (-1..1, as `raymer corpus prepare` and the sample corpus "
        "write them), or both (multi-task): dimensions from a regression head on the same "
        "fusion body trained with 1 - CCC; evaluate, recognize, serve and the library answer "
        "them too. Without `label`, checkpoints are chosen by the dimensions' mean CCC.",
    )
    init_text: str | None = Field(
        None,
        description="A checkpoint (or train output) whose text branch starts this model, e.g. a "
        "text-only run on GoEmotions: its text projection and blocks (and in fine-tune mode "
        "its fine-tuned text encoder) are loaded before training; the label head starts anew.",
    )

    def as_modality(self, modality: str) -> dict:
        """The dotted settings that make this model one of ``modality`` (compare's and
        crossval's models of each modality from one config): what that modality cannot read
        is left out (prosody, an audio input, for text; init_text, a text branch, for
        audio)."""
        return {
            "model.modality": modality,
            "model.prosody": self.prosody if modality != "text" else False,
            "model.init_text": self.init_text if modality != "audio" else None,
        }

    @model_validator(mode="after")
    def _answers_fit(self) -> ModelConfig:
        if self.audio_norm != "none" and self.audio_input == "temporal":
            raise ValueError(
                f"model.audio_norm={self.audio_norm} standardises the frames the model reads, "
                "but the temporal embedding is trained before it on the frames as extracted: "
                "use one of them"
            )
        if self.prosody is True and self.audio_input == "temporal":
            raise ValueError("model.prosody joins the cached Whisper frames: audio_input=frames")
        if self.prosody is True and self.modality == "text":
            raise ValueError("model.prosody is an audio input; modality=text reads none")
        if self.multi_label and self.loss != "bce":
            raise ValueError(
                "model.multi_label needs loss=bce: one sigmoid per label (softmax picks one label)"
            )
        check_targets(self.targets)
        if self.multi_label and not self.has_labels:
            raise ValueError("model.multi_label trains label lists: targets must include `label`")
        if self.init_text and self.modality == "audio":
            raise ValueError("model.init_text starts a text branch; modality=audio has none")
        return self


class OptimConfig(Part):
    """How the model is trained: the optimiser, the batches, how long, the objectives."""

    # lr, epochs, patience and val_fraction: the README ablation's settings, under which the
    # defaults were chosen on two held-out sets (a higher lr and shorter runs scored lower
    # there with prosody: "Voices it never heard")
    lr: float = Field(5e-4, gt=0, description="AdamW learning rate.")
    weight_decay: float = Field(1e-2, ge=0, description="AdamW weight decay.")
    batch_size: int = Field(32, ge=1, description="Clips per batch per worker.")
    epochs: int = Field(40, ge=1, description="Most epochs to train.")
    patience: int = Field(
        8, ge=1, description="Early stopping: epochs without a better validation score."
    )
    modality_dropout: float = Field(
        0.0,
        ge=0,
        lt=1,
        description="Fusion only: share of training clips that lose one modality (audio or "
        "text, half each) for a step, so the model learns to use either alone.",
    )
    dimension_weight: float = Field(
        1.0, gt=0, description="Weight of the dimensions' loss (1 - CCC) beside the label's."
    )


class DataConfig(Part):
    """Which clips train, validate and test: labels, splits, held-out sets, copies."""

    labels: list[str] | None = Field(
        None, description="Label set in order; default: the labels found in the features, sorted."
    )
    use_augmented: bool = Field(
        True,
        description="Train on the augmented copies the features hold (extract's augment), "
        "beside their clips; validation, test and evaluate read the clips only.",
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
        0.3,
        gt=0,
        lt=1,
        description="Share of the training speakers used for validation when val_speakers is empty.",
    )
    report_by: list[str] = Field(
        default_factory=list,
        description="compare and crossval: scores per value of these feature columns too "
        "(the sample corpus: clip_type, whose audio_cue clips have their emotion in the voice "
        "only).",
    )


class RunConfig(Part):
    """The run itself: its name (a re-run resumes it), seed, fault tolerance, checkpoints."""

    name: str = Field(
        "fusion", description="Run name; re-running the same name in the same output resumes."
    )
    seed: int = Field(0, description="Random seed of the model and the speaker split.")
    max_failures: int = Field(
        2, ge=0, description="Worker failures survived, each restarting from the last checkpoint."
    )
    num_to_keep: int = Field(
        2,
        ge=1,
        description="Checkpoints kept: the best by validation score (UA; macro-F1 if multi_label).",
    )


class TrainConfig(CommandConfig):
    """Settings of ``raymer train``: the fusion model on extracted features, on Ray Train.
    Grouped by concern, as litgpt and torchtune group theirs: ``model``, ``optim``, ``data``,
    ``run``, beside ``finetune`` and ``resources`` (a flat key from before the grouping,
    ``epochs=3``, is refused with its place, ``optim.epochs=3``)."""

    UNUSED = {
        "resources.asr": "the training workers run every encoder themselves (resources.model)",
        "resources.device": "the workers use a GPU when resources.use_gpu is set",
        "resources.decode_num_cpus": "training reads features, it decodes no audio",
    }

    features: str | None = Field(
        None,
        description="Extraction output (its features/ folder) or the folder itself; local or s3://.",
    )
    output: str | None = Field(
        None, description="Run root: checkpoints, the resolved config and metrics; local or s3://."
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
    model: ModelConfig = part(ModelConfig)
    optim: OptimConfig = part(OptimConfig)
    data: DataConfig = part(DataConfig)
    run: RunConfig = part(RunConfig)
    resources: ResourcesConfig = part(
        ResourcesConfig, model={"actors": 2, "num_cpus": 0.5, "num_gpus": 1.0, "threads": 0}
    )  # model: the Ray Train workers (gloo on CPU, nccl on GPU)

    @model_validator(mode="after")
    def _mode_fits(self) -> TrainConfig:
        model = self.model
        if model.prosody is True and self.mode == "finetune":
            raise ValueError(
                "model.prosody joins the cached Whisper frames: it needs mode=features"
            )
        if self.mode == "finetune" and model.audio_input == "temporal":
            raise ValueError(
                "model.audio_input=temporal works on cached frames only; fine-tune mode trains "
                "the Whisper encoder itself (use audio_input=frames)"
            )
        return self

    def with_prosody(self, carried: bool) -> TrainConfig:
        """``model.prosody: auto`` made true or false, ``carried`` saying whether the features
        hold the prosody columns: read where they do and the model reads cached Whisper
        frames with an audio branch (what ``_answers_fit`` and ``_mode_fits`` allow)."""
        if self.model.prosody != "auto":
            return self
        model = self.model
        reads = self.mode == "features" and model.audio_input == "frames"
        return self.updated(**{"model.prosody": carried and reads and model.modality != "text"})

    def updated(self, **dotted) -> TrainConfig:
        """A copy with some settings changed, by dotted key (``model.modality``), validated."""
        data = self.model_dump()
        for key, value in dotted.items():
            *parts, name = key.split(".")
            inner = data
            for part_name in parts:
                inner = inner[part_name]
            inner[name] = value
        return type(self)(**data)
