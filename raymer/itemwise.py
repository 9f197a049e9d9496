"""The one batch-then-item rule: ``run_batch`` runs a batch and, when it fails, item by item,
so one bad item fails alone (an ``ItemError`` naming what failed and why); ``arun_batch`` is
the same rule for awaited calls (a Serve deployment's batch)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Generator, Sequence
from dataclasses import dataclass
from typing import TypeVar

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ItemError:
    message: str  # one item's failure inside a batch: what failed and why


T, R = TypeVar("T"), TypeVar("R")


def _failed(what: str, err: Exception) -> ItemError:
    logger.warning("%s failed for one item: %s: %s", what, type(err).__name__, err)
    return ItemError(f"{what} failed: {type(err).__name__}: {err}")


def _batch_then_items(items: list, what: str) -> Generator[list, tuple, list]:
    """The one batch-then-item rule, free of how a call is made: it yields the items to run
    (the batch, then each item alone when the batch failed) and is sent back ``(True,
    results)`` or ``(False, exception)``; it returns one result or ``ItemError`` per item.
    ``run_batch`` drives it with plain calls, ``arun_batch`` with awaited ones."""
    ok, value = yield items
    if ok and len(value) == len(items):
        return list(value)
    err = value if not ok else RuntimeError(f"{len(value)} results for {len(items)} items")
    if len(items) == 1:
        return [_failed(what, err)]
    logger.warning("%s failed for a batch of %d (%s); retrying one by one", what, len(items), err)
    out = []
    for item in items:
        ok, value = yield [item]
        if ok and len(value) == 1:
            out.append(value[0])
        else:
            out.append(_failed(what, value if not ok else RuntimeError("no result")))
    return out


def run_batch(run: Callable[[list[T]], Sequence[R]], items: list[T], what: str) -> list:
    """``run(items)``; when the batch fails, ``run([item])`` for each item, so one bad item
    fails alone: its result is an ``ItemError`` naming ``what`` failed and why."""
    if not items:
        return []
    rule = _batch_then_items(items, what)
    call = next(rule)
    while True:
        try:
            answer = (True, list(run(call)))
        except Exception as err:
            answer = (False, err)
        try:
            call = rule.send(answer)
        except StopIteration as done:
            return done.value


async def arun_batch(
    run: Callable[[list[T]], Awaitable[Sequence[R]]], items: list[T], what: str
) -> list:
    """``run_batch`` for a coroutine ``run`` (a Serve deployment's batch): the same rule."""
    if not items:
        return []
    rule = _batch_then_items(items, what)
    call = next(rule)
    while True:
        try:
            answer = (True, list(await run(call)))
        except Exception as err:
            answer = (False, err)
        try:
            call = rule.send(answer)
        except StopIteration as done:
            return done.value
