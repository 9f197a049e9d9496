"""The fault rules of the pipeline stages, without Ray: the ledger and ``process``."""

from __future__ import annotations

import pytest

from raymer.pipeline.faults import CrashLedger, process


def test_the_ledger_counts_attempts_that_never_finished_and_forgets_the_rest():
    ledger = CrashLedger()
    assert ledger.begin("a") == 0 and ledger.begin("b") == 0
    ledger.finish("a")
    assert ledger.open.keys() == {"b"}  # a finished key takes no memory
    assert ledger.begin("b") == 1 and ledger.begin("b") == 2  # b's worker died twice
    ledger.finish("b")
    assert ledger.crashed() == 1
    ledger.finish("never-begun")


def test_an_exception_costs_the_rows_it_happens_on():
    rows = [{"id": str(i), "error": None, "stage": None} for i in range(5)]

    def work(some):
        for row in some:
            if row["id"] == "3":
                raise RuntimeError("bad row")
            row["done"] = True

    process(rows, work, "asr")
    assert [r.get("done") for r in rows] == [True, True, True, None, True]
    assert rows[3]["stage"] == "asr" and "RuntimeError: bad row" in rows[3]["error"]
    assert all(r["error"] is None for i, r in enumerate(rows) if i != 3)


def test_one_environment_variable_arms_a_drill(monkeypatch):
    from raymer.drills import DRILL_ENV, Drill, armed

    monkeypatch.delenv(DRILL_ENV, raising=False)
    assert armed() is None
    monkeypatch.setenv(DRILL_ENV, "poison:joe/joe_00003")
    assert armed() == Drill("poison", ("joe/joe_00003",))
    monkeypatch.setenv(DRILL_ENV, "train-kill:1:/tmp/x:y")  # a marker path may hold colons
    assert armed() == Drill("train-kill", ("1", "/tmp/x:y"))
    for bad, says in (
        ("explode:now", "unknown drill 'explode'"),
        ("poison", "takes 1 argument"),
        ("train-kill:1", "takes 2 argument"),
        ("train-kill:one:/tmp/m", "whole number"),
    ):
        monkeypatch.setenv(DRILL_ENV, bad)
        with pytest.raises(ValueError, match=says):
            armed()
    Drill("poison", ("a",)).meet(["b", "c"])  # not the poisoned clip: nothing happens
