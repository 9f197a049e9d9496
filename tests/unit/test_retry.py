"""One batch-then-item rule, driven by plain calls (``run_batch``: the stages, the crash
ledger's ``faults.process``, tested in test_faults.py) and by awaited ones (``arun_batch``:
Serve): the same answers."""

from __future__ import annotations

import asyncio

from raymer.itemwise import ItemError, arun_batch, run_batch


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
