"""Start a model's text branch from another checkpoint's (e.g. a text-only run on GoEmotions).

Pure torch. The text branch of the fusion head is ``text_proj``, ``text_encoder`` (its
transformer blocks, when ``num_layers > 0``) and ``out_text``; a fine-tune checkpoint adds its
fine-tuned text encoder (MiniLM). The label head is never carried over: the label sets differ.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

HEAD_PARTS = ("text_proj.", "text_encoder.", "out_text.")
SHAPE_KEYS = ("text_dim", "hidden_dim", "num_layers", "num_heads")


def _finetune(spec: dict[str, Any]) -> bool:
    return spec.get("mode", "features") == "finetune"


def text_encoder_name(spec: dict[str, Any]) -> str | None:
    """The text encoder whose token states the branch read: the fine-tuned one, or the one
    the features were extracted with."""
    if _finetune(spec):
        return spec.get("text_model")
    return (spec.get("extract") or {}).get("text_model")


def check_text_branch(source: dict[str, Any], target: dict[str, Any]) -> None:
    """Raise ``ValueError`` (saying why) when ``source``'s text branch cannot start
    ``target``. Both are checkpoint specs (``model.json``)."""
    where = source.get("checkpoint", "the init_text checkpoint")
    if source.get("modality") == "audio":
        raise ValueError(f"init_text: {where} is an audio-only model; it has no text branch")
    if target.get("modality") == "audio":
        raise ValueError("init_text: an audio-only model has no text branch to start")
    differ = [k for k in SHAPE_KEYS if source.get(k) != target.get(k)]
    if differ:
        pairs = ", ".join(f"{k} {source.get(k)} vs {target.get(k)}" for k in differ)
        raise ValueError(
            f"init_text: the text branch of {where} has another shape ({pairs}); train with the "
            "same hidden_dim, num_layers and num_heads, on the same text encoder"
        )
    if text_encoder_name(source) != text_encoder_name(target):
        raise ValueError(
            f"init_text: {where} read the tokens of {text_encoder_name(source)!r}, this model "
            f"reads {text_encoder_name(target)!r}: a branch only fits the encoder it learnt on"
        )
    if _finetune(source) and not _finetune(target):
        raise ValueError(
            f"init_text: {where} fine-tuned its text encoder, and its branch fits that encoder's "
            "tokens, not the frozen encoder's tokens in these features; train with mode=finetune "
            "so the fine-tuned encoder comes along"
        )


def text_branch(state: dict[str, Tensor], spec: dict[str, Any]) -> dict[str, Tensor]:
    """The text-branch weights of a checkpoint, keyed ``head/<part>`` (fusion head) and
    ``encoder/<name>`` (the fine-tuned text encoder of a fine-tune checkpoint)."""
    prefix = "head." if _finetune(spec) else ""
    out = {}
    for key, value in state.items():
        if key.startswith(prefix) and key[len(prefix) :].startswith(HEAD_PARTS):
            out["head/" + key[len(prefix) :]] = value
        elif prefix and key.startswith("text_encoder."):
            out["encoder/" + key[len("text_encoder.") :]] = value
    return out


def load_text_branch(
    model: nn.Module,
    source_state: dict[str, Tensor],
    source_spec: dict[str, Any],
    target_spec: dict[str, Any],
) -> list[str]:
    """Copy ``source``'s text branch into ``model`` (built from ``target_spec``); returns the
    names of the parameters it set. The fine-tuned encoder comes along only into a fine-tune
    model."""
    check_text_branch(source_spec, target_spec)
    prefix = "head." if _finetune(target_spec) else ""
    own = model.state_dict()
    update = {}
    for key, value in text_branch(source_state, source_spec).items():
        part, name = key.split("/", 1)
        if part == "encoder" and not _finetune(target_spec):
            continue
        target = prefix + name if part == "head" else "text_encoder." + name
        if target not in own:
            raise ValueError(f"init_text: this model has no parameter {target} for {key}")
        if own[target].shape != value.shape:
            raise ValueError(
                f"init_text: {target} is {tuple(own[target].shape)} here and "
                f"{tuple(value.shape)} in the source"
            )
        update[target] = value
    if not update:
        raise ValueError("init_text: the source checkpoint holds no text-branch weights")
    model.load_state_dict(update, strict=False)
    return sorted(update)
