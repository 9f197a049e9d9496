"""Start a model's text branch from another checkpoint's (e.g. a text-only run on GoEmotions).

Pure torch. The text branch of the fusion head is ``text_proj``, ``text_encoder`` (its
transformer blocks, when ``num_layers > 0``) and ``out_text``; a fine-tune checkpoint adds its
fine-tuned text encoder (MiniLM). The label head is never carried over: the label sets differ.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import Tensor, nn

from .errors import ModelError

if TYPE_CHECKING:  # types only: models/ does not import the checkpoint module
    from raymer.contract.spec import ModelSpec

HEAD_PARTS = ("text_proj.", "text_encoder.", "out_text.")
SHAPE_KEYS = ("text_dim", "hidden_dim", "num_layers", "num_heads")


def check_text_branch(source: ModelSpec, target: ModelSpec) -> None:
    """Raise ``ValueError`` (saying why) when ``source``'s text branch cannot start
    ``target``. Both are checkpoint specs (``model.json``)."""
    where = source.checkpoint or "the init_text checkpoint"
    if source.modality == "audio":
        raise ModelError(f"init_text: {where} is an audio-only model; it has no text branch")
    if target.modality == "audio":
        raise ModelError("init_text: an audio-only model has no text branch to start")
    differ = [k for k in SHAPE_KEYS if getattr(source, k) != getattr(target, k)]
    if differ:
        pairs = ", ".join(f"{k} {getattr(source, k)} vs {getattr(target, k)}" for k in differ)
        raise ModelError(
            f"init_text: the text branch of {where} has another shape ({pairs}); train with the "
            "same hidden_dim, num_layers and num_heads, on the same text encoder"
        )
    if source.text_encoder != target.text_encoder:
        raise ModelError(
            f"init_text: {where} read the tokens of {source.text_encoder!r}, this model "
            f"reads {target.text_encoder!r}: a branch only fits the encoder it learnt on"
        )
    if source.finetune and not target.finetune:
        raise ModelError(
            f"init_text: {where} fine-tuned its text encoder, and its branch fits that encoder's "
            "tokens, not the frozen encoder's tokens in these features; train with mode=finetune "
            "so the fine-tuned encoder comes along"
        )


def text_branch(state: dict[str, Tensor], spec: ModelSpec) -> dict[str, Tensor]:
    """The text-branch weights of a checkpoint, keyed ``head/<part>`` (fusion head) and
    ``encoder/<name>`` (the fine-tuned text encoder of a fine-tune checkpoint)."""
    prefix = "head." if spec.finetune else ""
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
    source_spec: ModelSpec,
    target_spec: ModelSpec,
) -> list[str]:
    """Copy ``source``'s text branch into ``model`` (built from ``target_spec``); returns the
    names of the parameters it set. The fine-tuned encoder comes along only into a fine-tune
    model."""
    check_text_branch(source_spec, target_spec)
    prefix = "head." if target_spec.finetune else ""
    own = model.state_dict()
    update = {}
    for key, value in text_branch(source_state, source_spec).items():
        part, name = key.split("/", 1)
        if part == "encoder" and not target_spec.finetune:
            continue
        target = prefix + name if part == "head" else "text_encoder." + name
        if target not in own:
            raise ModelError(f"init_text: this model has no parameter {target} for {key}")
        if own[target].shape != value.shape:
            raise ModelError(
                f"init_text: {target} is {tuple(own[target].shape)} here and "
                f"{tuple(value.shape)} in the source"
            )
        update[target] = value
    if not update:
        raise ModelError("init_text: the source checkpoint holds no text-branch weights")
    model.load_state_dict(update, strict=False)
    return sorted(update)
