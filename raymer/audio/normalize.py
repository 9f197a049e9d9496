"""Per-speaker standardisation of the audio frames (``audio_norm: speaker``): in training,
each frame dimension of a clip over all of its speaker's clips (mean 0, deviation 1), so the
model learns how a voice departs from its speaker's own rather than the speakers' timbre and
setups. Every inference path (evaluate, infer, recognize, serve, the library) standardises
with the training speakers' pooled statistics, kept in the checkpoint: one answer whichever
way a recording comes in. Opt-in (``evaluate``/``infer`` with speaker statistics), a corpus
whose speakers' clips are all at hand can be scored speaker-adaptively instead.

The statistics are sums, so Ray Data adds them up over any corpus (``partial_sums`` per
batch, ``combine`` per speaker, ``add``). Pure numpy and Arrow: no Ray, no torch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # Arrow for the Ray Data steps only: judging a clip needs none of it
    import pyarrow as pa

GROUP = "speaker"  # the column whose groups are standardised together
EPS = 1e-5


@dataclass
class FrameStats:
    """Per speaker: frame count, sum and sum of squares of each frame dimension."""

    count: dict[str, float]
    total: dict[str, np.ndarray]
    squares: dict[str, np.ndarray]

    def mean_std(self, group: str) -> tuple[np.ndarray, np.ndarray] | None:
        n = self.count.get(group, 0.0)
        if n < 2:
            return None
        mean = self.total[group] / n
        var = np.maximum(self.squares[group] / n - mean**2, 0.0)
        return mean.astype(np.float32), np.sqrt(var + EPS).astype(np.float32)

    def pooled(self, groups) -> tuple[list[float], list[float]]:
        """Mean and deviation of the frames of ``groups`` together (the training speakers:
        what a checkpoint keeps for clips of speakers it does not know)."""
        groups = [g for g in groups if g in self.count]
        if not groups:
            raise ValueError("no frames of these speakers to pool")
        one = add(
            [
                {
                    GROUP: "all",
                    "n": self.count[g],
                    "total": self.total[g],
                    "squares": self.squares[g],
                }
                for g in groups
            ]
        )
        mean, std = one.mean_std("all")
        return mean.tolist(), std.tolist()


def partial_sums(table: pa.Table, dim: int) -> pa.Table:
    """A batch of feature rows -> one row per speaker in it: ``speaker``, ``n``, ``total``
    and ``squares`` (of the first ``dim`` frame columns; augmented copies and rows without a
    speaker left out). Ray Data ``map_batches(batch_format="pyarrow")``."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from raymer.contract.schema import AUGMENT

    column = table.column("audio_frames").combine_chunks()
    lengths = pc.fill_null(pc.list_value_length(column), 0).to_numpy(zero_copy_only=False)
    steps = column.flatten()  # every clip's frames, in order
    width = len(steps[0]) if len(steps) else dim
    flat = steps.flatten().to_numpy(zero_copy_only=False).reshape(-1, width)[:, :dim]
    owner = np.repeat(np.arange(table.num_rows), lengths)  # the row of each frame
    keep = np.ones(table.num_rows, dtype=bool)
    if AUGMENT in table.column_names:
        keep &= np.array([a is None for a in table.column(AUGMENT).to_pylist()])
    groups = [str(g) if g not in (None, "") else None for g in table.column(GROUP).to_pylist()]
    out: dict[str, list] = {GROUP: [], "n": [], "total": [], "squares": []}
    for group in sorted({g for g, k in zip(groups, keep, strict=True) if g is not None and k}):
        rows = np.array([g == group for g in groups]) & keep
        real = flat[rows[owner]].astype(np.float64)
        out[GROUP].append(group)
        out["n"].append(float(len(real)))
        out["total"].append(real.sum(0).tolist())
        out["squares"].append((real**2).sum(0).tolist())
    return pa.table(out)


def add(rows: list[dict]) -> FrameStats:
    """Partial sums (``partial_sums`` rows, any number per speaker) -> ``FrameStats``."""
    stats = FrameStats({}, {}, {})
    for row in rows:
        g = row[GROUP]
        stats.count[g] = stats.count.get(g, 0.0) + row["n"]
        total, squares = np.asarray(row["total"]), np.asarray(row["squares"])
        stats.total[g] = stats.total.get(g, 0.0) + total
        stats.squares[g] = stats.squares.get(g, 0.0) + squares
    return stats


def standardize(
    frames: np.ndarray,
    mask: np.ndarray,
    groups: list | None,
    stats: FrameStats | None,
    pooled: tuple | None,
) -> np.ndarray:
    """Padded frames (B, T, D) and mask (B, T) -> each clip standardised with its speaker's
    statistics (``groups[i]`` in ``stats``), else with ``pooled`` (mean, deviation: the
    training speakers'), else over its own real frames; padding stays 0."""
    out = np.zeros_like(frames)
    for i in range(len(frames)):
        found = stats.mean_std(str(groups[i])) if stats and groups and groups[i] else None
        real = frames[i][mask[i]]
        if found is None and pooled is not None:
            found = (np.asarray(pooled[0], np.float32), np.asarray(pooled[1], np.float32))
        if found is None:
            mean = real.mean(0) if len(real) else 0.0
            std = np.sqrt(real.var(0) + EPS) if len(real) else 1.0
        else:
            mean, std = found
        out[i][mask[i]] = (real - mean) / std
    return out


def combine(table: pa.Table) -> pa.Table:
    """One speaker's partial sums -> one row (Ray Data ``groupby(GROUP).map_groups``)."""
    import pyarrow as pa

    stats = add(table.to_pylist())
    (group,) = stats.count
    return pa.table(
        {
            GROUP: [group],
            "n": [stats.count[group]],
            "total": [stats.total[group].tolist()],
            "squares": [stats.squares[group].tolist()],
        }
    )
