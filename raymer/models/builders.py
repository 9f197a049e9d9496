"""Builders: a config (or a checkpoint's saved hyperparameters) -> a model."""

from __future__ import annotations

from typing import Any

from .fusion import CoAttentionFusion
from .temporal import TemporalEmbedding

MODEL_KEYS = (
    "hidden_dim",
    "num_layers",
    "num_heads",
    "dropout",
    "modality",
    "audio_input",
    "temporal_dim",
)


def model_spec(cfg: Any, audio_dim: int, text_dim: int, labels: list[str]) -> dict[str, Any]:
    """What a checkpoint stores to rebuild its model without the training config."""
    return {
        "audio_dim": audio_dim,
        "text_dim": text_dim,
        "labels": list(labels),
        "loss": cfg.loss,  # how logits become scores: sigmoid (bce) or softmax (ce)
        "multi_label": cfg.multi_label,  # targets: a list of labels per clip
        **{k: getattr(cfg, k) for k in MODEL_KEYS},
    }


def build_model(spec: dict[str, Any]):
    """The model a spec describes: the fusion head on cached features, or (``mode:
    finetune``) the end-to-end recognizer with its pretrained encoders."""
    if spec.get("mode", "features") == "finetune":
        return build_recognizer(spec)
    return build_fusion_model(spec)


def build_recognizer(spec: dict[str, Any]):
    """Whisper encoder (from the CTranslate2 weights) + text encoder + fusion head."""
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    from .finetune import EmotionRecognizer
    from .registry import resolve_model
    from .whisper_encoder import load_whisper_encoder

    # Only the encoders the modality uses are loaded (a text-only run has no audio at all).
    audio = text = None
    if spec["modality"] in ("fusion", "audio"):
        audio = load_whisper_encoder(resolve_model(spec["asr_model"]))
    if spec["modality"] in ("fusion", "text"):
        hf_logging.disable_progress_bar()  # one "Loading weights" bar per worker is noise
        text = AutoModel.from_pretrained(resolve_model(spec["text_model"]))
    return EmotionRecognizer(audio, text, build_fusion_model(spec), pool=spec["pool"])


def build_fusion_model(spec: dict[str, Any]) -> CoAttentionFusion:
    adapter, audio_dim = None, spec["audio_dim"]
    if spec.get("audio_input", "frames") == "temporal":
        # The temporal embedding is trained before the fusion model and stays frozen in it.
        adapter = TemporalEmbedding(spec["audio_dim"], spec["temporal_dim"]).requires_grad_(False)
        audio_dim = spec["temporal_dim"]
    return CoAttentionFusion(
        audio_dim,
        spec["text_dim"],
        spec["hidden_dim"],
        len(spec["labels"]),
        num_layers=spec["num_layers"],
        num_heads=spec["num_heads"],
        dropout=spec["dropout"],
        modality=spec["modality"],
        audio_adapter=adapter,
    )
