"""Builders: a checkpoint's spec (``raymer.trained.checkpoint.ModelSpec``) -> its model, and the
extraction settings (``raymer.config.ExtractSettings``) -> the encoders that make its inputs.

The modules take numbers and modules, never configs; these functions are where a config
meets them (torchtune's builders).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # types only: checkpoint.load_model imports this module
    from raymer.config import ExtractSettings
    from raymer.contract.spec import ModelSpec

    from .fusion import CoAttentionFusion
    from .text_encoder import TextEncoder
    from .whisper import WhisperFeaturizer


def build_model(spec: ModelSpec):
    """The model a spec describes: the fusion head on cached features, or (``mode:
    finetune``) the end-to-end recognizer with its pretrained encoders."""
    if spec.finetune:
        return build_recognizer(spec)
    return build_fusion_model(spec)


def build_recognizer(spec: ModelSpec):
    """Whisper encoder (from the CTranslate2 weights) + text encoder + fusion head."""
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    from .finetune import EmotionRecognizer
    from .registry import resolve_model
    from .whisper_encoder import load_whisper_encoder

    # Only the encoders the modality uses are loaded (a text-only run has no audio at all).
    audio = text = None
    if spec.modality in ("fusion", "audio"):
        audio = load_whisper_encoder(resolve_model(spec.speech_encoder))
    if spec.modality in ("fusion", "text"):
        hf_logging.disable_progress_bar()  # one "Loading weights" bar per worker is noise
        text = AutoModel.from_pretrained(resolve_model(spec.text_encoder))
    return EmotionRecognizer(audio, text, build_fusion_model(spec), pool=spec.pool)


def build_fusion_model(spec: ModelSpec) -> CoAttentionFusion:
    from .fusion import CoAttentionFusion
    from .temporal import TemporalEmbedding

    adapter, audio_dim = None, spec.audio_dim
    if spec.audio_input == "temporal":
        # The temporal embedding is trained before the fusion model and stays frozen in it.
        adapter = TemporalEmbedding(spec.audio_dim, spec.temporal_dim).requires_grad_(False)
        audio_dim = spec.temporal_dim
    return CoAttentionFusion(
        audio_dim,
        spec.text_dim,
        spec.hidden_dim,
        len(spec.labels),
        num_layers=spec.num_layers,
        num_heads=spec.num_heads,
        dropout=spec.dropout,
        modality=spec.modality,
        audio_adapter=adapter,
        audio_norm=spec.audio_norm,
        prosody_mean=spec.prosody_mean if spec.prosody_dim else None,
        prosody_std=spec.prosody_std if spec.prosody_dim else None,
        num_dims=len(spec.dimensions),
    )


def build_featurizer(
    settings: ExtractSettings, device: str = "cpu", threads: int = 0, speech=None, workers: int = 1
) -> WhisperFeaturizer:
    """Whisper ASR and audio frames (one encoder pass) made as ``settings`` say: the
    extraction stage's (an ``ExtractConfig``) or a checkpoint's (``ModelSpec.extract``);
    ``speech`` is the no-speech rule (``raymer.config.SpeechConfig``) of the command;
    ``workers``: calls that may run side by side (from threads)."""
    from .registry import resolve_model
    from .whisper import WhisperFeaturizer

    return WhisperFeaturizer(
        resolve_model(settings.asr_model),
        device=device,
        compute_type=settings.compute_type,
        cpu_threads=threads,
        beam_size=settings.beam_size,
        language=settings.language,
        window=settings.window,
        window_step_s=settings.window_step_s,
        min_window_s=settings.min_window_s,
        frame_rate_hz=settings.frame_rate_hz,
        prosody=settings.prosody,
        speech=speech,
        workers=workers,
    )


def build_text_encoder(
    settings: ExtractSettings, device: str = "cpu", threads: int = 0
) -> TextEncoder:
    """The text encoder (token states and a pooled embedding) made as ``settings`` say: a
    portable export's on onnxruntime (``text_onnx``), else the transformers one."""
    from .registry import resolve_model
    from .text_encoder import TextEncoder
    from .text_onnx import PortableTextEncoder, text_encoder_in

    folder = resolve_model(settings.text_model)
    if text_encoder_in(folder):
        return PortableTextEncoder(folder, settings.max_text_tokens, threads)
    return TextEncoder(
        folder,
        device=device,
        max_tokens=settings.max_text_tokens,
        threads=threads,
    )
