"""The tiers and the time budget (tests/tiers.py) on suites of their own (pytester): a phase
over its tier's budget fails, a drill has none, markers select tiers, tiers run in order."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

SLOW = """
import time

import pytest


@pytest.fixture
def slow_fixture():
    time.sleep(0.15)


def test_slow_call():
    time.sleep(0.15)


def test_slow_setup(slow_fixture):
    pass


def test_quick():
    pass
"""
QUICK = "def test_one():\n    pass\n\n\ndef test_two():\n    pass\n"
MARKED = "import pytest\n\n\n@pytest.mark.drill\ndef test_drill():\n    pass\n"


def _suite(pytester, code: str):
    for tier in ("unit", "integration", "drill"):
        pytester.mkdir(tier)
        (pytester.path / tier / f"test_{tier}.py").write_text(code)
    (pytester.path / "integration" / "test_marked.py").write_text(MARKED)
    return pytester


def _run(suite, *args):
    return suite.runpytest("-p", "tiers", "-o", "budget_unit_s=0.05", "-o", "budget_s=0.1", *args)


def test_a_phase_over_its_tiers_budget_fails_and_a_drill_has_none(pytester):
    result = _run(_suite(pytester, SLOW), "unit", "integration", "drill")
    # unit and integration: the slow call fails, the slow setup errs; drill: all pass
    result.assert_outcomes(passed=1 + 1 + 3 + 1, failed=2, errors=2)
    result.stdout.fnmatch_lines(
        [
            "*its setup took 0.? s, and a test phase in the unit tier may take 0.05 s (its "
            "setup holds the shared fixtures it is the first to use)*",
            "*its call took 0.? s, and a test phase in the integration tier may take 0.1 s.*",
        ],
        consecutive=False,
    )


def test_markers_select_a_tier_and_tiers_run_in_order(pytester):
    suite = _suite(pytester, QUICK)
    result = _run(suite, "-m", "drill")
    result.assert_outcomes(passed=3)  # the drill folder's two and the marked one
    result = _run(suite, "-v", "drill", "integration", "unit")
    ran = [line.split("::")[0] for line in result.stdout.lines if "::test_" in line]
    tiers = [path.split("/")[0] for path in ran]
    assert tiers == ["unit"] * 2 + ["integration"] * 2 + ["drill"] * 2 + ["integration"]
    assert ran[-1] == "integration/test_marked.py"  # a marked drill runs with the drills


def test_a_test_outside_the_tiers_is_refused(pytester):
    pytester.makepyfile(test_loose="def test_loose():\n    pass\n")
    result = pytester.runpytest("-p", "tiers")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "every test lives under a tier folder" in result.stderr.str()
