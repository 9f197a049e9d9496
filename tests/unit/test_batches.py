"""Batches from Arrow without a Python object per row: the same tensors as the row path."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import torch

from raymer.trained.batches import Collate, columns, stack, stack_arrow
from raymer.trained.checkpoint import ModelSpec

OLD = Path(__file__).resolve().parents[1] / "data" / "checkpoint-0.1.0"


def _ragged(rng, n, dim, nulls=()):
    return [
        None if i in nulls else rng.standard_normal((int(rng.integers(0, 7)), dim)).tolist()
        for i in range(n)
    ]


def test_arrow_stack_equals_the_row_path_with_nulls_empties_slices_and_chunks():
    rng = np.random.default_rng(0)
    rows = _ragged(rng, 9, 3, nulls={2, 5})
    rows[4] = []  # empty, not null
    array = pa.array(rows, type=pa.list_(pa.list_(pa.float32())))
    for column in (array, array.slice(3, 5), pa.chunked_array([array.slice(0, 4), array.slice(4)])):
        expected = stack(column.to_pylist())
        got = stack_arrow(column)
        assert got[0].shape == expected[0].shape
        np.testing.assert_array_equal(got[0], expected[0])
        np.testing.assert_array_equal(got[1], expected[1])


def test_unequal_step_widths_are_refused():
    bad = pa.array([[[1.0, 2.0]], [[1.0]]], type=pa.list_(pa.list_(pa.float32())))
    with pytest.raises(ValueError, match="unequal width"):
        stack_arrow(bad)


def test_a_table_collates_like_its_rows():
    spec = ModelSpec(**json.loads((OLD / "model.json").read_text()))
    rng = np.random.default_rng(1)
    table = pa.table(
        {
            "id": [f"c{i}" for i in range(6)],
            "label": [spec.labels[i % len(spec.labels)] for i in range(6)],
            "audio_frames": pa.array(
                _ragged(rng, 6, 4, nulls={3}), type=pa.list_(pa.list_(pa.float32()))
            ),
            "text_tokens": pa.array(_ragged(rng, 6, 5), type=pa.list_(pa.list_(pa.float32()))),
        }
    )
    collate = Collate(spec)
    fast, slow = collate.from_table(table), collate(columns(table))
    for key in ("audio", "audio_mask", "text", "text_mask", "label"):
        assert torch.equal(fast[key], slow[key]), key
    assert fast["id"] == slow["id"]
    unknown = table.set_column(1, "label", pa.array(["nope"] * 6))
    with pytest.raises(KeyError, match="nope"):
        collate.from_table(unknown)


def test_length_buckets_hold_every_row_once_and_pad_little():
    from raymer.training.batching import buckets

    rng = np.random.default_rng(2)
    table = pa.table(
        {
            "audio_frames": pa.array(_ragged(rng, 37, 2), type=pa.list_(pa.list_(pa.float32()))),
            "text_tokens": pa.array(_ragged(rng, 37, 2), type=pa.list_(pa.list_(pa.float32()))),
        }
    )
    lengths = np.array([len(x) for x in table.column("audio_frames").to_pylist()])
    for generator in (None, torch.Generator().manual_seed(0)):
        batches = buckets(table, 8, generator)
        assert sorted(np.concatenate(batches).tolist()) == list(range(37))
        assert [len(b) for b in batches].count(8) == 4
        spans = [np.ptp(lengths[b]) for b in batches]  # sorted: a batch's lengths are close
        assert sum(spans) <= np.ptp(lengths) + len(batches)
    shuffled = [b.tolist() for b in buckets(table, 8, torch.Generator().manual_seed(1))]
    again = [b.tolist() for b in buckets(table, 8, torch.Generator().manual_seed(1))]
    assert shuffled == again  # the seed decides
