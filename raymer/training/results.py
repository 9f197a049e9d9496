"""What ``evaluate``, ``infer``, ``compare`` and ``crossval`` answer: typed records, each with
``to_json``, the file the command writes beside its outputs (``metrics.json``,
``infer.json``, ``comparison.json``, ``crossval.json``: their shapes are the records')."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Evaluation:
    """A checkpoint scored on labelled clips (``raymer evaluate``; ``metrics.json``).

    Attributes:
        scores: the label metrics: ``ua``, ``wa``, ``macro_f1``, ``per_class`` and
            ``confusion`` for one label per clip; the multi-label metrics for a list of
            labels; none for a model of emotion dimensions alone.
        dimensions: each emotion dimension's ``ccc``, ``pearson``, ``rmse`` and ``n``.
        by: the same scores per value of each ``by`` column (``report_by``).
        calibration: how well a single-label model's top score says how often it is right
            (``raymer.trained.calibration``): ``ece``, ``brier``, ``accuracy``,
            ``confidence``, ``bins`` (the reliability diagram), the model's ``temperature``
            and, for a calibrated model, ``uncalibrated`` (the same of its own scores before
            calibration); ``min_confidence``: the share of clips each threshold leaves
            without a label and the accuracy on the rest.
    """

    checkpoint: str
    modality: str
    mode: str
    features: str
    speakers: list[str]
    unlabelled: int
    speaker_stats: bool
    n: int
    scores: dict[str, Any] = field(default_factory=dict)
    dimensions: dict[str, dict[str, float]] | None = None
    by: dict[str, dict[str, dict]] | None = None
    calibration: dict[str, Any] | None = None

    @property
    def ua(self) -> float | None:
        """Unweighted accuracy (mean recall), for one label per clip."""
        return self.scores.get("ua")

    @property
    def wa(self) -> float | None:
        return self.scores.get("wa")

    @property
    def macro_f1(self) -> float | None:
        return self.scores.get("macro_f1")

    def to_json(self) -> dict:
        out = self.scores | {"n": self.n}
        out |= {k: getattr(self, k) for k in ("checkpoint", "modality", "mode", "features")}
        out |= {k: getattr(self, k) for k in ("speakers", "unlabelled", "speaker_stats")}
        if self.dimensions:
            out["dimensions"] = self.dimensions
        if self.by:
            out["by"] = self.by
        if self.calibration:
            out["calibration"] = self.calibration
        return out


@dataclass
class InferSummary:
    """Offline predictions written (``raymer infer``; ``infer.json``): clips, the unlabelled
    ones, and clips per predicted label."""

    checkpoint: str
    modality: str
    features: str
    labels: list[str]
    n: int
    unlabelled: int
    predicted: dict[str, int]

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class ComparedModel:
    """One modality of ``raymer compare``: its best checkpoint, validation UA and the scores
    on each held-out set (``speakers``, ``holdout``; None where not asked)."""

    checkpoint: str
    val_ua: float | None
    speakers: dict[str, Any] | None = None
    holdout: dict[str, Any] | None = None

    def to_json(self) -> dict:
        out = {"checkpoint": self.checkpoint, "val_ua": self.val_ua}
        return out | {k: v for k in ("speakers", "holdout") if (v := getattr(self, k))}


@dataclass
class Comparison:
    """``raymer compare``: each modality's model (``comparison.json``) and the table."""

    results: dict[str, ComparedModel]
    markdown: str

    def to_json(self) -> dict:
        return {modality: model.to_json() for modality, model in self.results.items()}


@dataclass
class CrossvalReport:
    """``raymer crossval`` (``crossval.json``): per modality its ``folds`` (each test
    group's scores), their ``mean`` and ``std``, and the ``pooled`` scores of every fold's
    predictions together."""

    split_by: str
    folds: list[str]
    results: dict[str, dict[str, Any]]
    markdown: str = ""

    def to_json(self) -> dict:
        return {"split_by": self.split_by, "folds": self.folds, "results": self.results}
