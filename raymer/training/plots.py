"""PNG plots of an evaluation: confusion matrix and training curves (matplotlib, Agg)."""

from __future__ import annotations

import io

from raymer.contract.spec import SCORE_TITLES


def _figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def confusion_png(metrics: dict) -> bytes:
    """Row-normalised confusion matrix with counts, as PNG bytes."""
    import numpy as np

    plt = _figure()
    cm = np.asarray(metrics["confusion"], dtype=float)
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    labels = metrics["labels"]
    fig, ax = plt.subplots(figsize=(1.2 * len(labels) + 2, 1.2 * len(labels) + 1.5))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(
                j,
                i,
                f"{int(cm[i, j])}",
                ha="center",
                va="center",
                color="white" if norm[i, j] > 0.5 else "black",
            )
    ax.set_title(f"UA {metrics['ua']:.3f}  WA {metrics['wa']:.3f}")
    return _save(plt, fig)


def curves_png(history: list[dict], score: str = "ua") -> bytes:
    """Training and validation loss, and the validation score that chose the checkpoint
    (``val_score``; ``score`` names it: ``checkpoint.score_name``), per epoch."""
    plt = _figure()
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.5))
    epochs = [h["epoch"] for h in history]
    left.plot(epochs, [h["train_loss"] for h in history], label="train loss")
    left.plot(epochs, [h["val_loss"] for h in history], label="validation loss")
    left.set_xlabel("epoch")
    left.legend()
    right.plot(
        epochs,
        [h.get("val_score", h["val_ua"]) for h in history],
        label=f"validation {SCORE_TITLES[score]}",
    )
    for name in sorted(k for k in history[0] if k.startswith("val_ccc_")):  # each dimension
        right.plot(epochs, [h[name] for h in history], "--", label=f"CCC {name[8:]}")
    right.set_xlabel("epoch")
    right.set_ylim(-0.2 if score == "ccc" or "val_ccc" in history[0] else 0, 1)
    right.legend(fontsize=8)
    return _save(plt, fig)


def reliability_png(calibration: dict) -> bytes:
    """The reliability diagram: accuracy against the mean top score in each confidence bin
    (the diagonal: scores that say how often they are right), before calibration where the
    model has a temperature, and as answered."""
    plt = _figure()
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot([0, 1], [0, 1], ":", color="grey", label="calibrated")
    shown = [("as trained", calibration.get("uncalibrated")), ("answered", calibration)]
    for name, c in shown:
        if c and c["bins"]:
            x = [b["confidence"] for b in c["bins"]]
            y = [b["accuracy"] for b in c["bins"]]
            ax.plot(x, y, "o-", label=f"{name}: ECE {c['ece']:.3f}")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("top score (mean in bin)")
    ax.set_ylabel("accuracy in bin")
    ax.legend(fontsize=8, loc="lower right")
    return _save(plt, fig)


def _save(plt, fig) -> bytes:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()
