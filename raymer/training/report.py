"""What a training run reports as it goes and after: one line per epoch on the terminal,
and the facts of its best checkpoint's model card."""

from __future__ import annotations

import contextlib
import json
import sys
from dataclasses import dataclass

from raymer import storage
from raymer.config import TrainConfig
from raymer.contract.card import CardFacts
from raymer.contract.spec import SCORE_TITLES, score_name
from raymer.training.loop import history_uri


@dataclass
class TrainSummary:
    best_checkpoint: str
    best_val_ua: float | None  # None: a model of dimensions alone (best_val_score: mean CCC)
    epochs: int
    history: list[dict]
    labels: list[str]
    train_speakers: list[str]
    val_speakers: list[str]
    test_speakers: list[str]
    split_by: str = "speaker"
    unlabelled: int = 0  # clips left out for having no label
    best_val_score: float = 0.0  # what chose the checkpoint: selected_by
    selected_by: str = "val_ua"  # val_ua; val_macro_f1 (multi-label); val_ccc (dimensions alone)
    best_epoch: int | None = None  # the epoch of best_checkpoint
    calibration: dict | None = None  # calibrate.Calibrated: the temperature, ECE, Brier


@contextlib.contextmanager
def epoch_lines(cfg: TrainConfig, every_s: float = 2.0):
    """One line per finished epoch while the block runs (read from the run's history.json,
    which rank 0 rewrites each epoch): loss, validation score, time."""
    import threading

    uri, score = history_uri(cfg), score_name(cfg.model.multi_label, cfg.model.has_labels)
    shown_as = SCORE_TITLES[score]
    shown: set[int] = set()
    stop = threading.Event()

    def show() -> None:
        with contextlib.suppress(Exception):  # not written yet, or mid-write: next time
            for h in json.loads(storage.read_bytes(uri)):
                if h["epoch"] not in shown:
                    shown.add(h["epoch"])
                    ccc = "".join(
                        f" | val CCC {k.removeprefix('val_ccc_')} {v:.3f}"
                        for k, v in h.items()
                        if k.startswith("val_ccc_")
                    )
                    print(
                        f"{cfg.run.name} epoch {h['epoch']}/{cfg.optim.epochs} | train loss "
                        f"{h['train_loss']:.4f} | val loss {h['val_loss']:.4f} | val "
                        f"{shown_as} {h['val_' + score]:.3f}{ccc} | "
                        f"{h['epoch_s']:.1f} s",
                        file=sys.stderr,
                        flush=True,
                    )

    def poll() -> None:
        while not stop.wait(every_s):
            show()

    thread = threading.Thread(target=poll, name="raymer-epochs", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=30)
        show()  # the last epoch


def card_facts(cfg: TrainConfig, summary: TrainSummary) -> CardFacts:
    """What the best checkpoint's model card says after the run (``compare`` adds tests)."""
    best = next((h for h in summary.history if h["epoch"] == summary.best_epoch), {})
    return CardFacts(
        features=cfg.features,
        train_clips=best.get("train_clips"),
        speakers={
            "train": summary.train_speakers,
            "validation": summary.val_speakers,
            "test": summary.test_speakers,
        },
        split_by=summary.split_by,
        epochs=summary.epochs,
        metrics={
            "validation": {
                "ua": best.get("val_ua"),
                "wa": best.get("val_wa"),
                "macro_f1": best.get("val_macro_f1"),
                "n": best.get("val_clips"),
                "dimensions": {
                    k.removeprefix("val_ccc_"): {"ccc": v}
                    for k, v in best.items()
                    if k.startswith("val_ccc_")
                },
                "calibration": summary.calibration,
            }
        },
    )
