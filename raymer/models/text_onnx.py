"""A text encoder exported to ONNX (``raymer export --format onnx``), run without torch or
transformers: the tokenizer file the checkpoint's encoder came with (``tokenizers``: the same
ids) and the graph on onnxruntime. ``builders.build_text_encoder`` picks it for a folder
holding one."""

from __future__ import annotations

import os

import numpy as np

from raymer.contract.portable import ENCODER_FILE, TEXT_ENCODER_FILE


def session(path: str, threads: int = 0):
    """An onnxruntime session on the CPU (``threads``: 0, its default)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads > 0:
        options.intra_op_num_threads = threads
    options.log_severity_level = 3
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


class PortableTextEncoder:
    """The exported text encoder (``models.text_encoder.TextEncoder``'s answers: each text's
    token states and its pooled, L2-normalised embedding), on onnxruntime and ``tokenizers``
    (the tokenizer file the checkpoint's encoder came with: the same ids)."""

    def __init__(self, folder: str, max_tokens: int = 128, threads: int = 0) -> None:
        import json

        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_file(os.path.join(folder, "tokenizer.json"))
        with open(os.path.join(folder, ENCODER_FILE), "rb") as f:
            facts = json.loads(f.read())
        self.tokenizer.enable_truncation(max_tokens)
        self.tokenizer.enable_padding(pad_id=facts["pad_id"], pad_token=facts["pad_token"])
        self.session = session(os.path.join(folder, TEXT_ENCODER_FILE), threads)
        self.hidden_size = int(facts["hidden_size"])

    @property
    def dim(self) -> int:
        return self.hidden_size

    def __call__(self, texts: list[str]) -> list:
        from raymer.models.text_encoder import TextFeatures

        if not texts:
            return []
        found = self.tokenizer.encode_batch([t or "" for t in texts])
        ids = np.array([e.ids for e in found], np.int64)
        mask = np.array([e.attention_mask for e in found], np.int64)
        hidden = self.session.run(None, {"input_ids": ids, "attention_mask": mask})[0]
        weights = mask[..., None].astype(hidden.dtype)
        pooled = (hidden * weights).sum(1) / np.maximum(weights.sum(1), 1.0)
        pooled /= np.maximum(np.linalg.norm(pooled, axis=-1, keepdims=True), 1e-12)
        lengths = mask.sum(1)
        return [
            TextFeatures(hidden[i, : lengths[i]].astype(np.float32), pooled[i].astype(np.float32))
            for i in range(len(texts))
        ]


def text_encoder_in(folder: str) -> bool:
    """Whether ``folder`` holds an exported text encoder."""
    return os.path.isfile(os.path.join(folder, TEXT_ENCODER_FILE))
