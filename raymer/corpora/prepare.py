"""``raymer corpus prepare``: the emotion corpora the paper used, as the project's manifest.

The adapters live in ``speech`` (IEMOCAP, MSP-Podcast, RAVDESS, SAVEE, any manifest), ``acted`` (CREMA-D,
TESS) and
``goemotions`` (text only); ``prepared`` holds what is common to all: problems, label maps,
folds, the summary and the manifest written.
"""

from __future__ import annotations

from collections.abc import Callable

import yaml

from raymer import storage
from raymer.corpora.acted import crema_d, tess
from raymer.corpora.goemotions import goemotions
from raymer.corpora.prepared import (
    Prepared,
    apply_label_map,
    assign_folds,
    summary,
    write_manifest,
)
from raymer.corpora.speech import iemocap, manifest, msp_podcast, ravdess, savee
from raymer.errors import UsageError

ADAPTERS: dict[str, Callable[..., Prepared]] = {
    "iemocap": iemocap,
    "msp-podcast": msp_podcast,
    "ravdess": ravdess,
    "savee": savee,
    "crema-d": crema_d,
    "tess": tess,
    "goemotions": goemotions,
    "manifest": manifest,
}
CORPORA = tuple(ADAPTERS)
# The --labels choices of the corpora that have several label sets.
LABEL_SETS = {
    "iemocap": ("4class", "all"),
    "msp-podcast": ("4class", "all"),
    "goemotions": ("ekman", "all"),
}


class PrepareError(UsageError):
    """An option that does not apply to the corpus named, or nothing left to write."""


def prepare(
    name: str,
    source: str,
    output: str,
    labels: str | None = None,
    subset: str | None = None,
    label_map: str | None = None,
    folds: int = 5,
) -> tuple[Prepared, str]:
    """Read corpus ``name`` at ``source``, map its labels, assign folds, write the manifest to
    ``output``; returns the prepared corpus and its summary."""
    options: dict[str, str] = {}
    if labels:
        if labels not in LABEL_SETS.get(name, ()):
            raise PrepareError(
                f"--labels {labels!r} does not apply to {name}; "
                + "; ".join(f"{k}: {', '.join(v)}" for k, v in LABEL_SETS.items())
            )
        options["labels"] = labels
    if subset:
        if name != "iemocap":
            raise PrepareError("--subset (improvised, scripted) applies to iemocap only")
        options["subset"] = subset
    prepared = ADAPTERS[name](source, **options)
    if label_map:
        mapping = yaml.safe_load(storage.read_bytes(label_map))
        if not isinstance(mapping, dict):
            raise PrepareError(f"--label-map {label_map}: expected a mapping label -> label")
        apply_label_map(prepared, {str(k): v for k, v in mapping.items()})
    if not prepared.rows:
        raise PrepareError(f"nothing to write: {summary(prepared, name)}")
    assign_folds(prepared, name, folds)
    write_manifest(prepared, output)
    return prepared, summary(prepared, name)
