"""PNG plots of ``raymer recognize`` (matplotlib, Agg): a recording's timeline, and the label
shares over a corpus."""

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


def timeline_png(rows: list[dict], labels: list[str], dimensions: list[str] = ()) -> bytes:
    """One recording's timeline (prediction rows, in order): time on x; a band per segment
    coloured by its label (grey without speech) with the first words of its transcript
    under it (a lane per speaker where the rows have speakers: ``_bands``); below, the emotion dimensions over time (arousal, valence, ...: -1..1) for a
    model that has them, else each label's score."""
    from matplotlib.patches import Patch

    plt = _figure()
    colours = {lab: plt.cm.tab10(i % 10) for i, lab in enumerate(labels)}
    fig, (band, lines) = plt.subplots(
        2, 1, figsize=(12, 5), sharex=True, gridspec_kw={"height_ratios": [1.4, 3]}
    )
    total = max(r["end_s"] for r in rows) or 1.0
    _bands(band, rows, colours, total)
    present = [lab for lab in labels if any(r["label"] == lab for r in rows)]
    if present:
        band.legend(
            handles=[Patch(color=colours[lab], label=lab) for lab in present],
            loc="lower right", bbox_to_anchor=(1.0, 1.0), fontsize=7,
            ncols=len(present), frameon=False,
        )  # fmt: skip
    band.set_title(f"{rows[0]['id']}: timeline (grey: no speech)", loc="left")
    mids = [(r["start_s"] + r["end_s"]) / 2 for r in rows]
    series = [(d, d) for d in dimensions] or [(lab, f"score_{lab}") for lab in labels]
    for i, (name, column) in enumerate(series):
        points = [(m, r.get(column)) for m, r in zip(mids, rows, strict=True)]
        points = [(m, v) for m, v in points if v is not None]
        if points:
            xs, ys = zip(*points, strict=True)
            colour = plt.cm.Dark2(i % 8) if dimensions else colours[name]
            marker = "o" if len(rows) <= 60 else None  # a long call's points would hide its line
            lines.plot(xs, ys, marker=marker, color=colour, label=name)
    if dimensions:
        lines.axhline(0.0, color="0.7", linewidth=0.8)
    lines.set_ylim(*((-1.05, 1.05) if dimensions else (0, 1)))
    if total >= 120:  # a long recording reads in minutes, a tick every round step
        from matplotlib.ticker import MultipleLocator

        lines.xaxis.set_major_locator(MultipleLocator(minute_step(total)))
        lines.xaxis.set_major_formatter(lambda t, _: clock(t))
    lines.set_xlabel("time (m:ss)" if total >= 120 else "time (s)")
    lines.set_ylabel("value (-1..1)" if dimensions else "score")
    if lines.get_legend_handles_labels()[0]:
        lines.legend(loc="upper right", fontsize=8, ncols=min(len(series), 6))
    fig.tight_layout()
    return _png(fig, plt)


def minute_step(total_s: float) -> int:
    """The time axis's tick step (seconds) for a recording of ``total_s``: a round number of
    minutes giving at most 10 ticks."""
    return next((s for s in (60, 120, 300, 600, 900, 1800) if total_s / s <= 10), 3600)


def clock(t: float) -> str:
    """Seconds as m:ss (an hour and more as minutes: 75:00)."""
    return f"{int(t // 60)}:{int(t % 60):02d}"


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


def _bands(band, rows: list[dict], colours: dict, total: float) -> None:
    """The segments' bands: one lane, its transcript's first words under each band; or,
    where the rows have speakers (a call's parties), a lane per speaker, named on the axis,
    in the order they first speak (their bands may overlap in time: both are drawn)."""
    speakers = list(dict.fromkeys(r.get("speaker") for r in rows if r.get("speaker")))
    lanes = {name: j for j, name in enumerate(speakers)}
    height = 1.0 / max(len(speakers), 1)
    for i, r in enumerate(rows):
        colour = colours.get(r["label"], (0.8, 0.8, 0.8, 1.0))
        if speakers:
            top = 1.0 - lanes.get(r.get("speaker"), 0) * height
            band.axvspan(r["start_s"], r["end_s"], ymin=top - 0.9 * height, ymax=top, color=colour)
            continue
        band.axvspan(r["start_s"], r["end_s"], ymin=0.45, ymax=1.0, color=colour, alpha=0.9)
        room = int(380 * (r["end_s"] - r["start_s"]) / total)  # characters that fit (2 lines)
        words = textwrap.shorten(r.get("transcript") or "", max(room, 8), placeholder="…")
        if words and room >= 8:  # under the band, on two staggered lines
            mid = (r["start_s"] + r["end_s"]) / 2
            band.text(mid, 0.3 - 0.18 * (i % 2), words, ha="center", va="center", fontsize=7)
    band.set_ylim(0, 1)
    band.set_yticks([1.0 - (j + 0.45) * height for j in range(len(speakers))], speakers)
