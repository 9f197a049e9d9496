"""The trained-model contract: what a checkpoint folder holds, how it is found, loaded and read.

Training writes checkpoints with ``save``; evaluation, inference, recognition and serving read
them through ``resolve``, ``load_spec`` and ``load_model``, and turn logits into scores and
labels with ``label_scores`` and ``labels_on``. No Ray here, and torch only inside the
functions that need it.

A checkpoint folder (local or s3://)::

    model.json      ModelSpec: the model's numbers, labels, loss, mode and extraction settings
    model.safetensors  the weights (safetensors: no code runs when they are read)
    model.pt        the same weights as a torch state dict
    README.md       the model card (``card``): labels, training data, metrics, settings
    optimizer.pt    the optimizer's state (resuming a run)
    state.json      the run's state: epoch, best score, early-stopping count, history
    config.yaml     the TrainConfig of the run that wrote it

``export`` writes a folder with the model alone (spec, safetensors, card; and a ``text/``
model for texts when there is one), which everything that loads a checkpoint accepts.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from raymer import storage
from raymer.contract.card import CARD_FILE, CardFacts, render
from raymer.contract.portable import HEAD_FILE, export_root, localized
from raymer.contract.spec import ModelSpec, score_name, target_column  # noqa: F401 (read from here too)

if TYPE_CHECKING:
    import torch

SPEC_FILE = "model.json"
MODEL_FILE = "model.pt"
WEIGHTS_FILE = "model.safetensors"
TEXT_FOLDER = "text"  # an exported folder's text-only model
OPTIMIZER_FILE = "optimizer.pt"
STATE_FILE = "state.json"
CONFIG_FILE = "config.yaml"
TRAIN_SUMMARY_FILE = "train_summary.json"  # a train output: names its best checkpoint
COMPARISON_FILE = "comparison.json"  # a compare output: fusion/, audio/ and text/ runs

ON_SCORE = 0.5  # a multi-label model's label is on where its score passes this
UNCERTAIN = "uncertain"  # the label of an answer whose top score is under min_confidence


def label_scores(logits: torch.Tensor, loss: str, temperature: float | None = None) -> torch.Tensor:
    """Logits -> a score per label: a calibrated model's (``ModelSpec.temperature``) the
    softmax of its logits divided by the temperature, a distribution whose top score says
    how often such an answer is right (``raymer.trained.calibration``); an uncalibrated
    one's (multi-label, or from before calibration) its loss's own: sigmoids for a
    BCE-trained model (independent, multi-label), softmax probabilities for a CE one."""
    import torch

    if temperature is not None:
        return torch.softmax(logits / temperature, -1)
    return torch.sigmoid(logits) if loss == "bce" else torch.softmax(logits, -1)


def labels_on(labels: Sequence[str], scores: Sequence[float]) -> list[str]:
    """A multi-label answer: every label whose score passes ``ON_SCORE`` (possibly none)."""
    return [lab for lab, s in zip(labels, scores, strict=True) if s > ON_SCORE]


def top_label(
    labels: Sequence[str], scores: Sequence[float], min_confidence: float = 0.0
) -> str | None:
    """The label with the highest score (None for a model without labels); the first of
    equal ones, as ``top_index``; ``UNCERTAIN`` where that score is under
    ``min_confidence`` (the scores are still given: every entry point's rule)."""
    if not labels:
        return None
    values = np.asarray(scores, dtype=np.float64)[None, : len(labels)]
    if values.max() < min_confidence:
        return UNCERTAIN
    return labels[int(top_index(values)[0])]


def top_index(scores):
    """Rows of scores (N, L): numpy, or torch, whose ``argmax`` it is -> the index of each
    row's top label (the first of equal ones). The one rule behind every top label: an
    answer's, evaluate's and the training loop's."""
    return scores.argmax(-1)


def resolve(uri: str) -> str:
    """The checkpoint folder ``uri`` means: a checkpoint folder itself, a train output (its
    best checkpoint) or a ``raymer compare`` output (its fusion run's best checkpoint)."""
    if storage.exists(storage.join(uri, SPEC_FILE)):
        return uri
    summary = storage.join(uri, TRAIN_SUMMARY_FILE)
    if storage.exists(summary):
        return json.loads(storage.read_bytes(summary))["best_checkpoint"]
    if storage.exists(storage.join(uri, COMPARISON_FILE)):
        return resolve(storage.join(uri, "fusion"))
    raise FileNotFoundError(
        f"{uri} is neither a checkpoint (no {SPEC_FILE}), a train output (no "
        f"{TRAIN_SUMMARY_FILE}) nor a compare output (no {COMPARISON_FILE})"
    )


def models_of(uri: str) -> tuple[str, str | None]:
    """(main, text-only) model URIs behind ``uri``: a ``raymer compare`` output gives both
    (its fusion and text runs), as does an exported folder with a ``text/`` model; a train
    output or checkpoint folder gives itself only."""
    if storage.exists(storage.join(uri, COMPARISON_FILE)):
        return storage.join(uri, "fusion"), storage.join(uri, "text")
    text = storage.join(uri, TEXT_FOLDER)
    if storage.exists(storage.join(uri, SPEC_FILE)) and storage.exists(
        storage.join(text, SPEC_FILE)
    ):
        return uri, text
    return uri, None


def digest(uri: str) -> str:
    """The content of the checkpoint at ``uri``: sha256 of its spec and weights (read in
    blocks), so a model retrained into the same folder is told apart from the one before."""
    import hashlib

    folder = resolve(uri)
    h = hashlib.sha256(storage.read_bytes(storage.join(folder, SPEC_FILE)))
    for name in (WEIGHTS_FILE, MODEL_FILE, HEAD_FILE):  # safetensors, before them .pt; ONNX
        uri = storage.join(folder, name)
        if not storage.exists(uri):
            continue
        fs, path = storage.filesystem(uri)
        h.update(name.encode())
        with fs.open_input_stream(path) as stream:
            while block := stream.read(8 << 20):
                h.update(block)
    return h.hexdigest()


def load_spec(uri: str) -> ModelSpec:
    """A checkpoint's spec without its weights (``checkpoint``: the folder it came from)."""
    folder = resolve(uri)
    spec = ModelSpec.model_validate_json(storage.read_bytes(storage.join(folder, SPEC_FILE)))
    root = None if storage.is_remote(folder) else export_root(folder)
    if root is not None:  # a portable export: its extraction settings name its own encoders
        spec = localized(spec, root)
    return spec.model_copy(update={"checkpoint": folder})


def read_state(checkpoint: str) -> dict[str, torch.Tensor]:
    """A checkpoint folder's weights (local or s3://), on the CPU: the safetensors file when
    there is one (checkpoints before 0.2 have ``model.pt`` only)."""
    import torch

    weights = storage.join(checkpoint, WEIGHTS_FILE)
    if storage.exists(weights):
        from safetensors.torch import load

        return load(storage.read_bytes(weights))
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / MODEL_FILE
        local.write_bytes(storage.read_bytes(storage.join(checkpoint, MODEL_FILE)))
        return torch.load(local, map_location="cpu", weights_only=True)  # tensors only, no code


def load_model(uri: str, device: str = "cpu") -> tuple[torch.nn.Module, ModelSpec]:
    """Checkpoint (anything ``resolve`` accepts; local or s3://) -> (model in eval mode on
    ``device``, its spec)."""
    from raymer.models.builders import build_model

    spec = load_spec(uri)
    model = build_model(spec)
    model.load_state_dict(read_state(spec.checkpoint))
    return model.to(device).eval(), spec


def save(
    directory: Path,
    spec: ModelSpec,
    weights: dict,
    *,
    optimizer: dict | None = None,
    state: dict | None = None,
    config: str | None = None,
    card: CardFacts | None = None,
) -> None:
    """Write a checkpoint folder (local): the spec, the weights (safetensors and torch) and
    the model card, and for a training run its optimizer state, run state and config."""
    import torch

    directory.mkdir(parents=True, exist_ok=True)
    torch.save(weights, directory / MODEL_FILE)
    (directory / WEIGHTS_FILE).write_bytes(safetensors_bytes(weights))
    (directory / SPEC_FILE).write_text(spec.model_dump_json(indent=2))
    (directory / CARD_FILE).write_text(render(spec, card or CardFacts(), str(directory)))
    if optimizer is not None:
        torch.save(optimizer, directory / OPTIMIZER_FILE)
    if state is not None:
        (directory / STATE_FILE).write_text(json.dumps(state))
    if config is not None:
        (directory / CONFIG_FILE).write_text(config)


def safetensors_bytes(weights: dict) -> bytes:
    """A state dict as a safetensors file. safetensors refuses tensors that share memory:
    each is written as its own copy."""
    from safetensors.torch import save

    return save({k: v.detach().cpu().contiguous().clone() for k, v in weights.items()})


def write_card(uri: str, facts: CardFacts) -> None:
    """(Re)write the model card of the checkpoint ``uri`` resolves to (local or s3://)."""
    spec = load_spec(uri)
    text = render(spec, facts, spec.checkpoint)
    storage.write_bytes(storage.join(spec.checkpoint, CARD_FILE), text.encode())


def export(checkpoint: str, output: str) -> list[str]:
    """A self-contained copy of the model(s) behind ``checkpoint`` (anything ``resolve``
    accepts, a compare output included) in ``output``: ``model.json``, ``model.safetensors``
    and ``README.md``, and under ``text/`` the text-only model when there is one. No
    optimizer, run state or pickle: ``Recognizer.from_checkpoint``, ``raymer serve``,
    ``evaluate`` and ``recognize`` load it. Returns the folders written."""
    main, text = models_of(checkpoint)
    written = [_export_one(main, output)]
    if text and load_spec(main).modality != "text":  # a text model answers texts itself
        written.append(_export_one(text, storage.join(output, TEXT_FOLDER)))
    return written


def _export_one(uri: str, output: str) -> str:
    spec = load_spec(uri)
    storage.makedirs(output)
    weights = safetensors_bytes(read_state(spec.checkpoint))
    storage.write_bytes(storage.join(output, WEIGHTS_FILE), weights)
    storage.write_bytes(storage.join(output, SPEC_FILE), spec.model_dump_json(indent=2).encode())
    card = storage.join(spec.checkpoint, CARD_FILE)
    if storage.exists(card):
        text = storage.read_bytes(card).decode().replace(spec.checkpoint, output)
    else:
        text = render(spec, CardFacts(), output)
    storage.write_bytes(storage.join(output, CARD_FILE), text.encode())
    return output
