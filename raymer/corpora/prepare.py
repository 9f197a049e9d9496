"""``raymer corpus prepare``: the emotion corpora the paper used, as the project's manifest.

The adapters live in ``speech`` (IEMOCAP, MSP-Podcast), ``acted`` (CREMA-D, TESS, RAVDESS,
SAVEE), ``goemotions`` (text only) and here (``manifest``: any corpus already listed, read by
the pipeline's one reader); ``prepared`` holds what is common to all: problems, label maps,
folds, the summary and the manifest written.
"""

from __future__ import annotations

from collections.abc import Callable

import yaml

from raymer import storage
from raymer.corpora.acted import crema_d, ravdess, savee, tess
from raymer.corpora.goemotions import goemotions
from raymer.corpora.prepared import (
    Prepared,
    apply_label_map,
    assign_folds,
    summary,
    write_manifest,
)
from raymer.corpora.speech import iemocap, msp_podcast
from raymer.errors import UsageError
from raymer.pipeline.inprocess import read_rows
from raymer.pipeline.shards import file_of, is_address


def manifest(source: str) -> Prepared:
    """Any corpus already listed: a manifest (CSV/JSONL/Parquet with ``path`` and ``label``),
    shards with the audio inside (Parquet, WebDataset tars: the manifest's paths are then the
    clips' addresses in them, read by extract as the shards are) or Lhotse manifests (a row
    per supervision, with its recording's path and span): checked like the others and
    brought onto a label set with ``--label-map``."""

    inputs = read_rows(source)
    out = Prepared([], storage.parent(source), text_only=inputs.text_only)
    for rid, _path, error in inputs.problems:
        out.problem("bad manifest row", f"{rid}: {error}")
    there: dict[str, bool] = {}  # each file (a shard, a recording) looked for once
    for row in inputs.rows:
        if not inputs.text_only:
            where = file_of(row["path"] or "")
            if where not in there:
                there[where] = storage.exists(where)
            if not there[where]:
                out.problem("missing file", row["path"])
                continue
        if row.get("label") is None:
            out.problem("no label", row["id"])
        out.rows.append(
            {k: v for k, v in row.items() if k != "reference_text"}
            | {"text": row.get("reference_text"), "raw_label": row.get("label")}
        )
    return out


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
    if any(is_address(r.get("path")) for r in prepared.rows):
        _survey_shards(prepared, output)
    return prepared, summary(prepared, name)


def _survey_shards(prepared: Prepared, manifest: str) -> None:
    """The clips inside shards: their hours and what extract would refuse, from a survey
    of the manifest written (``corpus inspect``: each clip's header, read from its shard)."""
    from raymer.pipeline.inspect import inspect_corpus

    survey = inspect_corpus(manifest)
    prepared.surveyed_s = survey.hours * 3600
    for row in survey.examples:
        prepared.problem("unreadable audio", f"{row['id']}: {row['error']}")
    missed = sum(survey.problems.values()) - len(survey.examples)
    if missed > 0:  # (counted, beyond the examples the survey keeps)
        prepared.problem_counts["unreadable audio"] += missed
