"""The Whisper encoder in torch (transformers' ``WhisperEncoder``) from a CTranslate2 model.

Fine-tuning needs gradients, which CTranslate2 does not give. The registry ships Whisper in
CTranslate2 format only, so the encoder's variables are read straight from ``model.bin`` (its
binary layout: a header, then name / shape / dtype / bytes per variable, then aliases) and
mapped onto transformers' module names. The fused query/key/value projection is split, and the
key bias, which Whisper does not have, must be zero.

``encode`` runs the encoder on any window up to 30 s (stock transformers insists on exactly
30 s); at 30 s it is transformers' own forward, step by step.
"""

from __future__ import annotations

import re
import struct
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .errors import ModelError

# CTranslate2's variable dtypes, by type id (ctranslate2/specs/model_spec.py).
_CT2_DTYPES = ("float32", "int8", "int16", "int32", "float16", "bfloat16")


class ConversionError(ModelError):
    """A CTranslate2 model that cannot be turned into a torch Whisper encoder."""


def read_ct2_variables(model_bin: str | Path, prefix: str = "encoder/") -> dict[str, np.ndarray]:
    """The variables of a CTranslate2 ``model.bin`` whose name starts with ``prefix``."""
    out: dict[str, np.ndarray] = {}
    with open(model_bin, "rb") as f:

        def take(fmt: str):
            return struct.unpack("<" + fmt, f.read(struct.calcsize("<" + fmt)))[0]

        def string() -> str:
            return f.read(take("H"))[:-1].decode("utf-8")

        version = take("I")
        if version < 5:
            raise ConversionError(f"{model_bin}: CTranslate2 binary version {version} is too old")
        spec = string()
        if spec != "WhisperSpec":
            raise ConversionError(f"{model_bin} holds a {spec}, not a Whisper model")
        take("I")  # spec revision
        for _ in range(take("I")):
            name = string()
            shape = [take("I") for _ in range(take("B"))]
            dtype, size = _CT2_DTYPES[take("B")], take("I")
            if not name.startswith(prefix):
                f.seek(size, 1)
                continue
            if dtype == "bfloat16":
                raw = np.frombuffer(f.read(size), dtype=np.uint16).astype(np.uint32) << 16
                value = raw.view(np.float32)
            else:
                value = np.frombuffer(f.read(size), dtype=dtype)
            out[name] = value.reshape(shape)
    if any(name.endswith("weight_scale") for name in out):
        raise ConversionError(
            f"{model_bin} is quantized to int8; fine-tuning needs a float16/float32 "
            "CTranslate2 export (the registry's Whisper models are float16)"
        )
    return out


def _layer_count(variables: dict[str, np.ndarray]) -> int:
    return len({m.group(1) for name in variables if (m := re.match(r"encoder/layer_(\d+)/", name))})


def whisper_config(variables: dict[str, np.ndarray]):
    """A transformers ``WhisperConfig`` for the encoder described by ``variables``."""
    from transformers import WhisperConfig

    conv1 = variables["encoder/conv1/weight"]
    d_model, n_mels = conv1.shape[0], conv1.shape[1]
    return WhisperConfig(
        d_model=int(d_model),
        num_mel_bins=int(n_mels),
        encoder_layers=_layer_count(variables),
        encoder_attention_heads=int(variables["encoder/num_heads"]),
        encoder_ffn_dim=int(variables["encoder/layer_0/ffn/linear_0/weight"].shape[0]),
        max_source_positions=int(variables["encoder/position_encodings/encodings"].shape[0]),
        dropout=0.0,
        attention_dropout=0.0,
        activation_dropout=0.0,
    )


def ct2_to_torch_state(variables: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """CTranslate2 encoder variables -> a ``WhisperEncoder`` state dict (float32)."""

    def t(name: str) -> torch.Tensor:
        return torch.from_numpy(np.asarray(variables[f"encoder/{name}"], dtype=np.float32).copy())

    state = {
        "conv1.weight": t("conv1/weight"),
        "conv1.bias": t("conv1/bias"),
        "conv2.weight": t("conv2/weight"),
        "conv2.bias": t("conv2/bias"),
        "embed_positions.weight": t("position_encodings/encodings"),
        "layer_norm.weight": t("layer_norm/gamma"),
        "layer_norm.bias": t("layer_norm/beta"),
    }
    for i in range(_layer_count(variables)):
        ct2, hf = f"layer_{i}", f"layers.{i}"
        q, k, v = t(f"{ct2}/self_attention/linear_0/weight").chunk(3, dim=0)
        qb, kb, vb = t(f"{ct2}/self_attention/linear_0/bias").chunk(3, dim=0)
        if kb.abs().max() > 0:
            raise ConversionError(f"{ct2}: a Whisper key projection has no bias, found one")
        state |= {
            f"{hf}.self_attn.q_proj.weight": q,
            f"{hf}.self_attn.q_proj.bias": qb,
            f"{hf}.self_attn.k_proj.weight": k,
            f"{hf}.self_attn.v_proj.weight": v,
            f"{hf}.self_attn.v_proj.bias": vb,
            f"{hf}.self_attn.out_proj.weight": t(f"{ct2}/self_attention/linear_1/weight"),
            f"{hf}.self_attn.out_proj.bias": t(f"{ct2}/self_attention/linear_1/bias"),
            f"{hf}.self_attn_layer_norm.weight": t(f"{ct2}/self_attention/layer_norm/gamma"),
            f"{hf}.self_attn_layer_norm.bias": t(f"{ct2}/self_attention/layer_norm/beta"),
            f"{hf}.fc1.weight": t(f"{ct2}/ffn/linear_0/weight"),
            f"{hf}.fc1.bias": t(f"{ct2}/ffn/linear_0/bias"),
            f"{hf}.fc2.weight": t(f"{ct2}/ffn/linear_1/weight"),
            f"{hf}.fc2.bias": t(f"{ct2}/ffn/linear_1/bias"),
            f"{hf}.final_layer_norm.weight": t(f"{ct2}/ffn/layer_norm/gamma"),
            f"{hf}.final_layer_norm.bias": t(f"{ct2}/ffn/layer_norm/beta"),
        }
    return state


def load_whisper_encoder(model_dir: str | Path) -> nn.Module:
    """transformers' ``WhisperEncoder`` with the weights of a CTranslate2 Whisper folder."""
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    model_bin = Path(model_dir) / "model.bin"
    if not model_bin.is_file():
        raise ConversionError(f"{model_dir} has no model.bin (not a CTranslate2 model folder)")
    variables = read_ct2_variables(model_bin)
    encoder = WhisperEncoder(whisper_config(variables))
    missing, unexpected = encoder.load_state_dict(ct2_to_torch_state(variables), strict=False)
    if missing or unexpected:
        raise ConversionError(f"weights do not fit WhisperEncoder: {missing=} {unexpected=}")
    return encoder.eval()


def encode(encoder: nn.Module, mel: torch.Tensor) -> torch.Tensor:
    """log-mel (B, n_mels, 2T) with 2T <= 3000 -> encoder states (B, T, D).

    The steps of ``WhisperEncoder.forward`` with the position embeddings cut to the window,
    as CTranslate2 does, so a 4 s clip need not be padded to 30 s.
    """
    h = nn.functional.gelu(encoder.conv1(mel))
    h = nn.functional.gelu(encoder.conv2(h)).permute(0, 2, 1)
    if h.shape[1] > encoder.embed_positions.num_embeddings:
        raise ValueError(f"window of {h.shape[1]} frames is longer than Whisper's 30 s")
    h = h + encoder.embed_positions.weight[: h.shape[1]]
    h = nn.functional.dropout(h, p=encoder.dropout, training=encoder.training)
    for layer in encoder.layers:
        h = layer(h, None)
        h = h[0] if isinstance(h, tuple) else h
    return encoder.layer_norm(h)
