"""PNG plots of ``raymer recognize`` (matplotlib, Agg): a recording's emotion over time, and
the label shares over a corpus."""

from __future__ import annotations

import io
import textwrap


def _figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig, plt) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return buffer.getvalue()


def timeline_png(rows: list[dict], labels: list[str]) -> bytes:
    """One recording's segments (prediction rows, in order): a band per segment coloured by
    its label (grey without speech), each label's score as a line, and the first words of
    each segment's transcript."""
    plt = _figure()
    colours = {lab: plt.cm.tab10(i % 10) for i, lab in enumerate(labels)}
    fig, (band, lines) = plt.subplots(
        2, 1, figsize=(12, 4.5), sharex=True, gridspec_kw={"height_ratios": [1, 3]}
    )
    for r in rows:
        colour = colours.get(r["label"], (0.8, 0.8, 0.8, 1.0))
        band.axvspan(r["start_s"], r["end_s"], color=colour, alpha=0.9)
        words = textwrap.shorten(r.get("transcript") or "", 28, placeholder="…")
        if words:
            mid = (r["start_s"] + r["end_s"]) / 2
            band.text(mid, 0.5, words, ha="center", va="center", fontsize=7, rotation=12)
    band.set_yticks([])
    band.set_title(f"{rows[0]['id']}: emotion over time (grey: no speech)")
    mids = [(r["start_s"] + r["end_s"]) / 2 for r in rows]
    for lab in labels:
        scores = [r.get(f"score_{lab}") for r in rows]
        points = [(m, s) for m, s in zip(mids, scores, strict=True) if s is not None]
        if points:
            xs, ys = zip(*points, strict=True)
            lines.plot(xs, ys, marker="o", color=colours[lab], label=lab)
    lines.set_ylim(0, 1)
    lines.set_xlabel("time (s)")
    lines.set_ylabel("score")
    lines.legend(loc="upper right", fontsize=8, ncols=min(len(labels), 6))
    fig.tight_layout()
    return _png(fig, plt)


def shares_png(seconds: dict[str, float]) -> bytes:
    """Speech time per label over the corpus, as shares."""
    plt = _figure()
    total = sum(seconds.values()) or 1.0
    labels = list(seconds)
    fig, ax = plt.subplots(figsize=(1.1 * len(labels) + 2.5, 3.5))
    bars = ax.bar(labels, [seconds[lab] / total for lab in labels], color="tab:blue")
    for bar, lab in zip(bars, labels, strict=True):
        ax.text(
            bar.get_x() + bar.get_width() / 2,
            bar.get_height(),
            f"{seconds[lab] / 3600:.2f} h",
            ha="center",
            va="bottom",
            fontsize=8,
        )
    ax.set_ylabel("share of speech time")
    ax.set_title("labels over the corpus")
    ax.tick_params(axis="x", rotation=30)
    fig.tight_layout()
    return _png(fig, plt)
