"""Sentence encoder (MiniLM by default): token-level features and a pooled sentence vector."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class TextFeatures:
    """Attributes:
    tokens: last hidden states of the real (non-padding) tokens, shape (T, D).
    embedding: attention-masked mean of ``tokens``, L2-normalised, shape (D,)
        (what sentence-transformers returns for all-MiniLM-L6-v2).
    """

    tokens: np.ndarray
    embedding: np.ndarray


class TextEncoder:
    """Wraps a transformers encoder; loads from a local folder (or hub id where one is reachable)."""

    def __init__(
        self, model_dir: str, device: str = "cpu", max_tokens: int = 128, threads: int = 0
    ):
        import torch
        from transformers import AutoModel, AutoTokenizer

        if threads > 0:
            torch.set_num_threads(threads)
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        self.model = AutoModel.from_pretrained(model_dir).to(device).eval()
        self.device, self.max_tokens = device, max_tokens

    @property
    def dim(self) -> int:
        return int(self.model.config.hidden_size)

    def __call__(self, texts: list[str]) -> list[TextFeatures]:
        import torch

        if not texts:
            return []
        batch = self.tokenizer(
            [t or "" for t in texts],
            padding=True,
            truncation=True,
            max_length=self.max_tokens,
            return_tensors="pt",
        ).to(self.device)
        with torch.inference_mode():
            hidden = self.model(**batch).last_hidden_state  # (B, T, D)
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        pooled = torch.nn.functional.normalize(pooled, dim=-1)
        hidden, pooled = hidden.float().cpu().numpy(), pooled.float().cpu().numpy()
        lengths = batch["attention_mask"].sum(1).cpu().numpy()
        return [TextFeatures(hidden[i, : lengths[i]], pooled[i]) for i in range(len(texts))]
