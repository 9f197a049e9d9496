"""The end of a training run: the best checkpoint's temperature fitted on the validation
clips (``raymer.trained.calibration``) and kept in its spec, so that every entry point's
scores say how often such an answer is right."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

import pyarrow as pa

from raymer import storage
from raymer.config import TrainConfig
from raymer.trained import calibration, checkpoint
from raymer.trained.checkpoint import ModelSpec
from raymer.training.scoring import predict_table, scored

logger = logging.getLogger(__name__)


@dataclass
class Calibrated:
    """A checkpoint's temperature and its validation clips' calibration before and after."""

    temperature: float
    n: int
    ece_before: float
    ece_after: float
    brier_before: float
    brier_after: float

    def line(self) -> str:
        return (
            f"calibrated: temperature {self.temperature:.2f} on {self.n} labelled clips, "
            f"ECE {self.ece_before:.3f} -> {self.ece_after:.3f}, "
            f"Brier {self.brier_before:.3f} -> {self.brier_after:.3f}"
        )

    def to_json(self) -> dict:
        return asdict(self)


def calibrate_run(cfg: TrainConfig, best: str, validation: list[str]) -> Calibrated | None:
    """The end of a training run: ``calibrate`` the checkpoint ``best`` on the validation
    clips (its split's groups ``validation``), the held-out values of ``data.holdout`` left
    out. None without validation clips."""
    if not validation:
        return None
    where = {cfg.data.split_by: validation}
    return calibrate(best, cfg.features, where, leave_out=cfg.data.holdout)


def calibrate(
    checkpoint_uri: str,
    features: str,
    where: dict[str, list[str]] | None = None,
    leave_out: dict[str, list[str]] | None = None,
) -> Calibrated | None:
    """Fit the temperature of a checkpoint (a folder, or a train or compare output: its main
    model) on the labelled clips of ``features`` (matching ``where``; none whose column has
    a value of ``leave_out``) and write it into the checkpoint's spec: ``raymer calibrate``
    on a user's own labelled clips, and the end of training on the validation clips. None
    (the spec unchanged) for a multi-label model, one of dimensions alone, or no clips."""
    model, spec = checkpoint.load_model(checkpoint_uri)
    if not spec.labels or spec.multi_label:
        return None
    own = spec.model_copy(update={"temperature": None})  # its own scores (a re-run's too)
    table = predict_table(model, own, features, None, where)
    for column, values in (leave_out or {}).items():  # e.g. never the held-out sentences
        out = set(values)
        keep = [str(v) not in out for v in table.column(column).to_pylist()]
        table = table.filter(pa.array(keep))
    if table.num_rows == 0:
        return None
    scores, y = scored(table, spec)
    logits = calibration.logits_of(scores, spec.loss)
    t = calibration.fit_temperature(logits, y)
    before = calibration.calibration(scores, y)
    after = calibration.calibration(calibration.softmax(logits, t), y)
    folder = spec.checkpoint or checkpoint_uri
    spec.temperature = t
    storage.write_bytes(
        storage.join(folder, checkpoint.SPEC_FILE), spec.model_dump_json(indent=2).encode()
    )
    done = Calibrated(t, len(y), before["ece"], after["ece"], before["brier"], after["brier"])
    logger.info(done.line())
    return done


def calibration_of(predictions: pa.Table, model, spec: ModelSpec, features, speakers, where):
    """``Evaluation.calibration`` of a single-label model's predictions; for a calibrated
    model, its own scores before calibration too (scored again without its temperature)."""
    scores, y = scored(predictions, spec)
    out = calibration.calibration(scores, y) | {"temperature": spec.temperature}
    out["min_confidence"] = calibration.coverage(scores, y)
    if spec.temperature is not None:
        own = spec.model_copy(update={"temperature": None})
        before = predict_table(model, own, features, speakers, where)
        out["uncalibrated"] = calibration.calibration(*scored(before, spec))
    return out


def calibration_lines(c: dict | None) -> list[str]:
    """A report's calibration: ECE and Brier (before and after a calibrated model's
    temperature), and what each ``min_confidence`` would leave unlabelled."""
    if not c:
        return []
    lines = [
        "",
        "| scores | ECE | Brier | mean top score | accuracy |",
        "| --- | --- | --- | --- | --- |",
    ]
    if c.get("uncalibrated"):
        u = c["uncalibrated"]
        lines.append(
            f"| the model's own (before calibration) | {u['ece']:.3f} | {u['brier']:.3f} | "
            f"{u['confidence']:.3f} | {u['accuracy']:.3f} |"
        )
    name = "calibrated (temperature " + (
        f"{c['temperature']:.3g})" if c.get("temperature") is not None else "none: as trained)"
    )
    lines.append(
        f"| {name} | {c['ece']:.3f} | {c['brier']:.3f} | {c['confidence']:.3f} | "
        f"{c['accuracy']:.3f} |"
    )
    lines += [
        "",
        "| min_confidence | left without a label | accuracy on the rest |",
        "| --- | --- | --- |",
    ]
    lines += [
        f"| {r['min_confidence']:g} | {r['unlabelled']:.1%} | "
        + ("-" if r["accuracy"] is None else f"{r['accuracy']:.3f}")
        + " |"
        for r in c["min_confidence"]
    ]
    return lines + ["", "The reliability diagram: `reliability.png`."]
