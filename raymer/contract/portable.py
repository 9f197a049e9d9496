"""A portable export (``raymer export --format onnx``): what its folder holds and the checks a
runtime makes before it trusts one. No torch here: the runtime that reads an export
(``raymer.inference.portable``) runs without it.

    EXPORT/
      export.json        format, raymer version, opset, sha256 of every file below
      model.json         the main model's spec (its extraction settings name the folders below)
      README.md          its model card
      head.onnx          the head: frames and token states -> scores (and dimensions)
      text/              the text-only model, where the checkpoint had one (model.json, head.onnx)
      text_encoder/      the text encoder as ONNX (model.onnx, its weights in model.onnx.data),
                         encoder.json, its tokenizer files
      whisper/           Whisper for CTranslate2 (the checkpoint's ASR model, as it was used)
"""

from __future__ import annotations

import hashlib
import json
import os

from raymer.errors import UsageError

EXPORT_FILE = "export.json"
HEAD_FILE = "head.onnx"
TEXT_ENCODER_FILE = "model.onnx"  # in ENCODERS["text"]
ENCODER_FILE = "encoder.json"  # beside it: its pad token and hidden size
FORMAT = "onnx"
ENCODERS = {"asr": "whisper", "text": "text_encoder"}  # folders of the export


class ExportError(UsageError):
    """An export a runtime cannot trust or run; the message says what and why."""


def export_root(folder: str) -> str | None:
    """The export ``folder`` belongs to (itself, or the one above for its ``text/`` model),
    or None for a checkpoint that is not an export. Local folders only."""
    for root in (folder, os.path.dirname(os.path.normpath(folder))):
        if root and os.path.isfile(os.path.join(root, EXPORT_FILE)):
            return root
    return None


def localized(spec, root: str):
    """``spec`` with its extraction settings naming the export's own encoders (absolute
    paths of ``root``'s folders), so the featurizer and the text encoder load them."""
    extract = spec.extract.model_copy(
        update={
            "asr_model": os.path.join(os.path.abspath(root), ENCODERS["asr"]),
            "text_model": os.path.join(os.path.abspath(root), ENCODERS["text"]),
        }
    )
    return spec.model_copy(update={"extract": extract})


_VERIFIED: set[str] = set()


def verify(root: str, version: str) -> dict:
    """``root``'s ``export.json``, once every check holds: the format is this runtime's,
    made by raymer ``version`` (this one's, given by the caller: the contract imports no
    package above it), and every file it lists is there with its sha256 (read in blocks;
    once per process and folder)."""
    try:
        with open(os.path.join(root, EXPORT_FILE), "rb") as f:
            facts = json.loads(f.read())
    except (OSError, ValueError) as err:
        raise ExportError(f"{root}: cannot read {EXPORT_FILE}: {err}") from None
    if facts.get("format") != FORMAT:
        raise ExportError(
            f"{root}: an export of format {facts.get('format')!r}; this runtime reads {FORMAT!r}"
        )
    if facts.get("raymer") != version:
        raise ExportError(
            f"{root} was exported by raymer {facts.get('raymer')}; this is raymer {version}: "
            "export the checkpoint again with this version"
        )
    if root in _VERIFIED:
        return facts
    for name, digest in sorted(facts.get("files", {}).items()):
        path = os.path.join(root, name)
        if not os.path.isfile(path):
            raise ExportError(f"{root}: {name} is missing (the export lists it)")
        if sha256_of(path) != digest:
            raise ExportError(f"{root}: {name} was altered (its sha256 is not the export's)")
    _VERIFIED.add(root)
    return facts


def sha256_of(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(8 << 20):
            h.update(block)
    return h.hexdigest()
