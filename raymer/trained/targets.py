"""What a model learns from a clip: its label (indices, or a multi-hot of its label list)
and its emotion dimensions (NaN where it has no rating), from stored rows or an Arrow table;
and whether a clip has them at all (``has_target``, ``is_rated``). ``batches.Collate`` puts
them beside the model's inputs."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from raymer.contract.spec import target_column

if TYPE_CHECKING:
    import pyarrow as pa

Columns = dict[str, np.ndarray]


def has_target(value: Any) -> bool:
    """A label (None or "": none), a list of labels (empty: none) or a rating (NaN: none)."""
    if value is None:
        return False
    if isinstance(value, int | float):
        return not math.isnan(value)
    return value != "" if isinstance(value, str) else len(value) > 0


def is_rated(row: dict, dimensions) -> bool:
    """A clip rated on any of ``dimensions`` (a model of dimensions alone trains and scores
    it; null: not rated)."""
    return any(row.get(d) is not None for d in dimensions)


def targets(batch: Columns, labels: list[str], multi_label: bool = False):
    """Label indices (B,), or with ``multi_label`` a multi-hot (B, L) float tensor from the
    ``labels`` lists; None for a batch without targets (clips to predict)."""
    import torch

    if target_column(multi_label) not in batch:
        return None
    index = {label: i for i, label in enumerate(labels)}
    if not multi_label:
        return torch.tensor([index[str(x)] for x in batch["label"]], dtype=torch.long)
    hot = torch.zeros(len(batch["labels"]), len(labels))
    for i, names in enumerate(batch["labels"]):
        hot[i, [index[str(x)] for x in names]] = 1.0
    return hot


def dimension_targets(values: dict[str, Any], dimensions: list[str]):
    """The clips' emotion dimensions (B, D) float32, NaN where a clip has no rating; None
    for a model without dimensions or a batch without those columns (clips to predict).
    ``values``: each dimension's column (numpy, or Arrow: nulls become NaN)."""
    import torch

    if not dimensions or any(d not in values for d in dimensions):
        return None
    cols = []
    for d in dimensions:
        column = values[d]
        if not isinstance(column, np.ndarray):  # Arrow
            column = column.to_pylist()
        cols.append([np.nan if v is None else float(v) for v in column])
    return torch.tensor(np.asarray(cols, dtype=np.float32).T.reshape(-1, len(dimensions)))


def arrow_targets(table: pa.Table, labels: list[str], multi_label: bool = False):
    """``targets`` for an Arrow table: label indices by a dictionary lookup, or multi-hot."""
    import pyarrow.compute as pc
    import torch

    name = target_column(multi_label)
    if name not in table.column_names:
        return None
    column = table.column(name)
    if not multi_label:
        index = pc.index_in(column.cast("string"), value_set=pa_strings(labels))
        if index.null_count:
            unknown = pc.filter(column, pc.is_null(index)).unique().to_pylist()
            raise KeyError(f"labels {unknown[:5]} are not in the model's labels {labels}")
        return torch.from_numpy(index.to_numpy(zero_copy_only=False).astype(np.int64))
    return targets({"labels": objects(column.to_pylist())}, labels, multi_label=True)


def pa_strings(values: list[str]):
    import pyarrow as pa

    return pa.array([str(v) for v in values], type=pa.string())


def objects(values: list) -> np.ndarray:
    """Row values -> an object array, as Ray Data gives a column (one by one: equal-shaped
    lists must not broadcast)."""
    out = np.empty(len(values), dtype=object)
    for i, value in enumerate(values):
        out[i] = value
    return out
