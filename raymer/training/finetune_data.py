"""Fine-tune mode's data: the audio behind each extracted clip.

The features Parquet says which clips exist, their labels, speakers, audio ``path`` and text
(the transcript, or the reference text when extraction embedded that). The audio is read and
decoded with the extraction pipeline's own decoder; ``raymer.trained.batches.Collate`` then computes
Whisper's log-mel features in a window fitted to the batch and tokenizes the text.
"""

from __future__ import annotations

import logging

import numpy as np

from raymer.trained.batches import MAX_SAMPLES

logger = logging.getLogger(__name__)

FINETUNE_COLUMNS = [
    "id",
    "label",
    "speaker",
    "session",
    "path",
    "transcript",
    "reference_text",
    "text_source",
]


def decode_rows(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Ray Data batch -> the same rows with ``audio`` (float32 bytes, at most 30 s); a clip
    that no longer decodes is dropped with a warning (it decoded at extraction time)."""
    from raymer.audio.decode import UNLIMITED
    from raymer.pipeline.stages import decode_batch

    out = decode_batch(batch, UNLIMITED)  # it passed the guard at extraction time
    keep = [i for i, error in enumerate(out["error"]) if error is None]
    for i, error in enumerate(out["error"]):
        if error is not None:
            logger.warning("fine-tune: skipping %s: %s", out["id"][i], error)
    audio = np.empty(len(keep), dtype=object)
    audio[:] = [bytes(out["audio"][i][: 4 * MAX_SAMPLES]) for i in keep]
    result = {k: out[k][keep] for k in FINETUNE_COLUMNS + _extra(batch) if k in out}
    result["audio"] = audio
    return result


def _extra(batch: dict) -> list[str]:
    return [k for k in batch if k not in FINETUNE_COLUMNS]
