"""Word error rate of a transcript against a reference, after light normalisation."""

from __future__ import annotations

import re
import unicodedata

_NON_WORD = re.compile(r"[^\w\s']+")


def normalize_words(text: str) -> list[str]:
    """Lower-case, strip accents' combining marks and punctuation, split on whitespace."""
    text = unicodedata.normalize("NFKC", text or "").lower().replace("-", " ")
    return _NON_WORD.sub(" ", text).replace("'", "").split()


def edit_distance(ref: list[str], hyp: list[str]) -> int:
    """Levenshtein distance between two word lists (substitutions, insertions, deletions)."""
    previous = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, start=1):
        current = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, start=1):
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (r != h))
        previous = current
    return previous[-1]


def word_errors(reference: str, hypothesis: str) -> tuple[int, int]:
    """(edits, reference words): sum both over a corpus for its WER."""
    ref, hyp = normalize_words(reference), normalize_words(hypothesis)
    return edit_distance(ref, hyp), len(ref)


def wer(reference: str, hypothesis: str) -> float:
    edits, words = word_errors(reference, hypothesis)
    return edits / words if words else float(edits > 0)
