"""``raymer export --format onnx``: a checkpoint as a portable export (``contract.portable``),
run without torch by ``trained.portable``: the head(s) and the text encoder as ONNX graphs
(torch's exporter, a current opset, dynamic batch and time axes; checked by onnx's checker),
the tokenizer files, Whisper's CTranslate2 folder, the spec and the card, and the sha256 of
every file in ``export.json``. What it cannot export it refuses, with the reason."""

from __future__ import annotations

import json
import os
import shutil
import warnings
from pathlib import Path

from raymer.contract.portable import (
    ENCODER_FILE,
    ENCODERS,
    EXPORT_FILE,
    FORMAT,
    HEAD_FILE,
    TEXT_ENCODER_FILE,
    ExportError,
    sha256_of,
)

OPSET = 18


def export_onnx(checkpoint: str, output: str) -> str:
    """The model(s) behind ``checkpoint`` (anything ``checkpoint.resolve`` accepts, a compare
    output included) as a portable export in the local folder ``output``; returns it."""
    from raymer import __version__, storage
    from raymer.trained.checkpoint import CARD_FILE, SPEC_FILE, TEXT_FOLDER, load_spec, models_of

    if storage.is_remote(output):
        raise ExportError("export --format onnx writes a local folder (copy it with raymer copy)")
    main, text = models_of(checkpoint)
    spec = load_spec(main)
    if spec.finetune:
        raise ExportError(
            f"{main} is a fine-tune model (its encoders train with it, in torch): the portable "
            "runtime runs features-mode heads; export it as safetensors (no --format)"
        )
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    _head(main, out)
    (out / SPEC_FILE).write_bytes(spec.model_dump_json(indent=2).encode())
    _card(spec, out / CARD_FILE, str(out))
    if text and spec.modality != "text":
        text_spec = load_spec(text)
        _head(text, out / TEXT_FOLDER)
        (out / TEXT_FOLDER / SPEC_FILE).write_bytes(text_spec.model_dump_json(indent=2).encode())
    _text_encoder(spec.extract, out / ENCODERS["text"])  # (every model reads its tokens)
    _whisper(spec.extract.asr_model, out / ENCODERS["asr"])
    files = sorted(
        str(p.relative_to(out)) for p in out.rglob("*") if p.is_file() and p.name != EXPORT_FILE
    )
    facts = {
        "format": FORMAT,
        "raymer": __version__,
        "opset": OPSET,
        "modality": spec.modality,
        "files": {name: sha256_of(str(out / name)) for name in files},
    }
    (out / EXPORT_FILE).write_text(json.dumps(facts, indent=2) + "\n")
    return str(out)


def _card(spec, path: Path, where: str) -> None:
    from raymer import storage
    from raymer.trained.checkpoint import CARD_FILE, CardFacts, render

    card = storage.join(spec.checkpoint, CARD_FILE)
    text = (
        storage.read_bytes(card).decode()
        if storage.exists(card)
        else render(spec, CardFacts(), where)
    )
    path.write_text(text.replace(spec.checkpoint, where))


def _head(uri: str, folder: Path) -> None:
    """The head of the checkpoint at ``uri``: frames and token states -> its answers
    (scores by its loss and temperature, then its dimensions), as ``batches.scores_of``."""
    import numpy as np
    import onnx
    import torch

    from raymer.trained.batches import LoadedModel
    from raymer.trained.checkpoint import label_scores

    loaded = LoadedModel.load(uri)
    spec = loaded.spec

    class Answers(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = loaded.model

        def forward(self, audio, audio_mask, text, text_mask):
            out = self.model(audio, audio_mask, text, text_mask)
            scores = label_scores(out.logits, spec.loss, spec.temperature)
            return (
                torch.cat([scores, out.dims.to(scores.dtype)], -1)
                if out.dims is not None
                else scores
            )

    audio_dim = 1 if spec.modality == "text" else spec.audio_dim  # a text model: no audio
    sample = loaded.collate.live_arrays(
        frames=[np.zeros((7, audio_dim), np.float32), np.zeros((5, audio_dim), np.float32)],
        tokens=[np.zeros((4, spec.text_dim), np.float32), np.zeros((6, spec.text_dim), np.float32)],
    )
    args = tuple(torch.from_numpy(sample[k]) for k in ("audio", "audio_mask", "text", "text_mask"))
    batch, frames, tokens = (
        torch.export.Dim(n, min=1, max=m) for n, m in (("b", 4096), ("t", 1500), ("s", 512))
    )
    shapes = (
        {0: batch, 1: frames},
        {0: batch, 1: frames},
        {0: batch, 1: tokens},
        {0: batch, 1: tokens},
    )
    folder.mkdir(parents=True, exist_ok=True)
    _exported(
        Answers().eval(),
        args,
        shapes,
        folder / HEAD_FILE,
        ["audio", "audio_mask", "text", "text_mask"],
        ["answers"],
    )
    onnx.checker.check_model(str(folder / HEAD_FILE))


def _text_encoder(extract, folder: Path) -> None:
    """The text encoder the features were made with, as ONNX (token states), and its
    tokenizer files."""
    import onnx
    import torch
    from transformers import AutoModel, AutoTokenizer

    from raymer.models.registry import resolve_model

    source = resolve_model(extract.text_model)
    tokenizer = AutoTokenizer.from_pretrained(source)
    if not getattr(tokenizer, "is_fast", False):
        raise ExportError(
            f"the text encoder {extract.text_model} has no fast tokenizer (tokenizer.json)"
        )
    model = AutoModel.from_pretrained(source).eval()

    class Hidden(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask):
            return self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    sample = tokenizer(
        ["an export", "a sentence to pad the batch with"], padding=True, return_tensors="pt"
    )
    args = (sample["input_ids"], sample["attention_mask"])
    batch, tokens = torch.export.Dim("b", min=1, max=4096), torch.export.Dim("s", min=1, max=512)
    shapes = ({0: batch, 1: tokens}, {0: batch, 1: tokens})
    folder.mkdir(parents=True, exist_ok=True)
    _exported(
        Hidden().eval(),
        args,
        shapes,
        folder / TEXT_ENCODER_FILE,
        ["input_ids", "attention_mask"],
        ["hidden"],
        weights_apart=True,
    )
    onnx.checker.check_model(str(folder / TEXT_ENCODER_FILE))
    tokenizer.save_pretrained(str(folder))
    facts = {
        "source": extract.text_model,
        "pad_id": tokenizer.pad_token_id,
        "pad_token": tokenizer.pad_token,
        "hidden_size": int(model.config.hidden_size),
    }
    (folder / ENCODER_FILE).write_text(json.dumps(facts, indent=2) + "\n")


def _exported(
    module, args, shapes, path: Path, inputs: list[str], outputs: list[str], weights_apart=False
) -> None:
    """``module`` as an ONNX graph at ``path``; ``weights_apart``: its weights in a file
    beside it (``path`` + ``.data``), which onnxruntime reads straight into its tensors (the
    graph's protobuf, parsed whole, then holds no second copy: a replica's peak memory)."""
    import torch

    with warnings.catch_warnings():  # the exporter's own notes on the graph
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            module, args, dynamo=True, dynamic_shapes=shapes, opset_version=OPSET,
            input_names=inputs, output_names=outputs, external_data=False,
        )  # fmt: skip
    program.save(str(path), external_data=weights_apart)


def _whisper(asr_model: str, folder: Path) -> None:
    """Whisper's CTranslate2 folder as the checkpoint's features were made with it."""
    from raymer.models.registry import resolve_model

    source = resolve_model(asr_model)
    if not os.path.isfile(os.path.join(source, "model.bin")):
        raise ExportError(
            f"{asr_model} ({source}) is not a CTranslate2 Whisper folder (no model.bin)"
        )
    if folder.exists():
        shutil.rmtree(folder)
    shutil.copytree(source, folder, ignore=shutil.ignore_patterns(".*", "__pycache__"))
