"""How a shard becomes training batches: clips sorted by length into buckets (little
padding), and modality dropout (a clip loses its audio or its text for a step)."""

from __future__ import annotations

import numpy as np
import torch


def buckets(chunk, size: int, generator: torch.Generator | None) -> list[np.ndarray]:
    """Row indices of ``chunk``'s batches of ``size``, its clips sorted by length (frames, or
    bytes of audio, then text tokens); with a ``generator``, ties broken and the batches
    ordered at random."""
    import pyarrow as pa
    import pyarrow.compute as pc

    n = chunk.num_rows
    keys = []
    for name in ("text_tokens", "audio_frames", "audio"):  # last is most significant
        if name not in chunk.column_names:
            continue
        column, kind = chunk.column(name), chunk.column(name).type
        if pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
            length = pc.binary_length(column)
        elif pa.types.is_list(kind) or pa.types.is_large_list(kind):
            length = pc.list_value_length(column)
        else:  # another type (a Python object column): no length to sort by
            continue
        keys.append(pc.fill_null(length, 0).to_numpy(zero_copy_only=False))
    if generator is not None:
        keys.insert(0, torch.rand(n, generator=generator).numpy())
    order = np.lexsort(keys) if keys else np.arange(n)
    batches = [order[i : i + size] for i in range(0, n, size)]
    if generator is not None:
        batches = [batches[i] for i in torch.randperm(len(batches), generator=generator)]
    return batches


def drop_modality(batch: dict, p: float, generator: torch.Generator) -> dict:
    """Modality dropout: each clip loses its audio (probability p/2) or its text (p/2) for
    this step; its mask is emptied, so co-attention pools that modality to zero and the head
    learns to use either one alone instead of leaning on one."""
    n = len(batch["id"])
    draw = torch.rand(n, generator=generator)
    batch = dict(batch)
    no_audio, no_text = draw < p / 2, (draw >= p / 2) & (draw < p)
    batch["audio_mask"] = batch["audio_mask"] & ~no_audio[:, None]
    batch["text_mask"] = batch["text_mask"] & ~no_text[:, None]
    return batch
