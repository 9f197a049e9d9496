"""GoEmotions (text only): 58k Reddit comments, 27 emotions plus neutral, multi-label."""

from __future__ import annotations

import csv
import io

from raymer import storage
from raymer.corpora.prepared import CorpusLayoutError, Prepared

GOEMOTIONS_LABELS = (
    "admiration",
    "amusement",
    "anger",
    "annoyance",
    "approval",
    "caring",
    "confusion",
    "curiosity",
    "desire",
    "disappointment",
    "disapproval",
    "disgust",
    "embarrassment",
    "excitement",
    "fear",
    "gratitude",
    "grief",
    "joy",
    "love",
    "nervousness",
    "optimism",
    "pride",
    "realization",
    "relief",
    "remorse",
    "sadness",
    "surprise",
    "neutral",
)
# GoEmotions' documented mapping to Ekman's six (ekman_mapping.json), neutral kept.
GOEMOTIONS_EKMAN = {
    "anger": ("anger", "annoyance", "disapproval"),
    "disgust": ("disgust",),
    "fear": ("fear", "nervousness"),
    "joy": (
        "joy",
        "amusement",
        "approval",
        "excitement",
        "gratitude",
        "love",
        "optimism",
        "relief",
        "pride",
        "admiration",
        "desire",
        "caring",
    ),
    "sadness": ("sadness", "disappointment", "embarrassment", "grief", "remorse"),
    "surprise": ("surprise", "realization", "confusion", "curiosity"),
    "neutral": ("neutral",),
}
_TO_EKMAN = {fine: coarse for coarse, fines in GOEMOTIONS_EKMAN.items() for fine in fines}


def goemotions(root: str, labels: str = "ekman") -> Prepared:
    """``train.tsv``, ``dev.tsv``, ``test.tsv``: text, comma-separated label ids, id (no
    header). ``labels``: ekman (the six plus neutral) | all (the 27 plus neutral). Multi-label
    examples keep every label in ``labels`` (a list); ``label`` is set only when they agree
    on one."""
    splits = [s for s in ("train", "dev", "test") if storage.exists(storage.join(root, f"{s}.tsv"))]
    if not splits:
        raise CorpusLayoutError(
            f"{root} does not look like GoEmotions: expected train.tsv, dev.tsv, test.tsv "
            "(tab-separated: text, label ids like 2,17, id; no header)"
        )
    out = Prepared([], root, text_only=True)
    for split in splits:
        data = storage.read_bytes(storage.join(root, f"{split}.tsv")).decode("utf-8")
        for n, fields in enumerate(csv.reader(io.StringIO(data), delimiter="\t"), start=1):
            if len(fields) != 3:
                out.problem("malformed line", f"{split}.tsv line {n}: {len(fields)} fields")
                continue
            text, ids, rid = fields
            try:
                fine = [GOEMOTIONS_LABELS[int(i)] for i in ids.split(",")]
            except (ValueError, IndexError):
                out.problem("unknown label", f"{split}.tsv line {n}: {ids!r}")
                continue
            names = sorted({_TO_EKMAN[f] for f in fine}) if labels == "ekman" else fine
            out.add(
                {
                    "path": None,
                    "id": rid,
                    "label": names[0] if len(set(names)) == 1 else None,
                    "labels": names,
                    "raw_label": ids,
                    "speaker": None,
                    "session": None,
                    "text": text,
                    "split": split,
                },
                f"{split}.tsv line {n}",
            )
    return out
