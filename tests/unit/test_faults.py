"""The fault rules of the pipeline stages, without Ray: the ledger and ``process``."""

from __future__ import annotations

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
