"""A portable export's head (``raymer export --format onnx``) on onnxruntime, without torch:
what ``batches.LoadedModel`` is for a checkpoint. With the exported text encoder
(``models.text_onnx``) and Whisper on CTranslate2 (the featurizer never needed torch), it is
the whole runtime: ``inference.heads`` picks it where a checkpoint is an export, so
``Recognizer.from_checkpoint`` and ``raymer serve`` load one as they load a run. Writing an
export (torch): ``trained.export_onnx``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from raymer import __version__
from raymer.contract.portable import HEAD_FILE, ExportError, export_root, verify
from raymer.models.text_onnx import session


def is_export(uri: str) -> bool:
    """Whether ``uri`` (a model folder) belongs to a portable export."""
    return not uri.startswith(("s3://", "gs://")) and export_root(uri) is not None


@dataclass
class PortableModel:
    """An exported head, as ``trained.batches.LoadedModel`` is a checkpoint's model: its
    spec, the batch maker of its inputs (the same ``Collate``: the same columns and
    standardisation) and its answers (``answer``: scores then dimensions, (N, L + D))."""

    session: Any
    spec: Any
    collate: Any

    @classmethod
    def load(cls, uri: str, threads: int = 0) -> PortableModel:
        from raymer.trained.batches import Collate
        from raymer.trained.checkpoint import load_spec

        root = export_root(uri)
        if root is None:
            raise ExportError(f"{uri} is not a portable export (no export.json)")
        verify(root, __version__)
        spec = load_spec(uri)
        if spec.finetune:
            raise ExportError(
                f"{uri}: a fine-tune model; the portable runtime runs features-mode heads"
            )
        return cls(session(os.path.join(spec.checkpoint, HEAD_FILE), threads), spec, Collate(spec))

    @property
    def checkpoint(self) -> str | None:
        return self.spec.checkpoint

    def answer(self, frames=None, tokens=None, clips=None, texts=None) -> np.ndarray:
        arrays = self.collate.live_arrays(frames=frames, tokens=tokens)
        feed = {
            i.name: arrays[i.name] for i in self.session.get_inputs()
        }  # (a text head: no audio)
        return np.asarray(self.session.run(None, feed)[0])
