"""One batch-then-item rule, driven by plain calls (``run_batch``: the stages, the crash
ledger's ``faults.process``) and by awaited ones (``arun_batch``: Serve): the same answers."""

from __future__ import annotations

import asyncio

from raymer.batches import ItemError, arun_batch, run_batch
from raymer.pipeline.faults import process


def _square(items: list) -> list:
    return [x * x for x in items]  # a str fails the batch, then alone


async def _asquare(items: list) -> list:
    return _square(items)


def test_sync_and_async_follow_the_same_rule():
    cases = [[2, "x", 3], [4], ["y"], []]
    for items in cases:
        sync = run_batch(_square, items, "squaring")
        awaited = asyncio.run(arun_batch(_asquare, items, "squaring"))
        assert sync == awaited
    out = run_batch(_square, [2, "x", 3], "squaring")
    assert out[0] == 4 and out[2] == 9 and isinstance(out[1], ItemError)
    assert out[1].message.startswith("squaring failed: TypeError")
    short = asyncio.run(arun_batch(_ashort, [1, 2], "counting"))  # short: item by item
    assert all(isinstance(r, ItemError) for r in short)  # each alone gives no result either


async def _ashort(items: list) -> list:
    return []


def test_the_crash_ledger_uses_the_same_rule_for_exceptions():
    rows = [{"id": str(i), "error": None, "stage": None} for i in range(3)]

    def work(some):
        for row in some:
            if row["id"] == "1":
                raise ValueError("no")
            row["done"] = True

    process(rows, work, "model")
    assert [r.get("done") for r in rows] == [True, None, True]
    assert rows[1]["error"] == "model failed: ValueError: no" and rows[1]["stage"] == "model"
