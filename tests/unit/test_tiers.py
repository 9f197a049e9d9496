"""The tiers and the time budget (tests/tiers.py) on suites of their own (pytester): a phase
or a shared fixture over its tier's budget fails, a drill has none, markers select tiers,
tiers run in order."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

HEAD = "import time\n\nimport pytest\n\n\n"
SLOW_CALL = "def test_slow_call():\n    time.sleep(0.3)\n\n\ndef test_quick():\n    pass\n"
SLOW_FIXTURES = """
@pytest.fixture
def slow_fixture():
    time.sleep(0.3)


@pytest.fixture(scope="module")
def slow_shared():
    time.sleep(0.3)


@pytest.fixture(scope="module")
def shared():
    time.sleep(0.15)


@pytest.fixture
def own():
    time.sleep(0.15)


def test_slow_setup(slow_fixture):
    pass


def test_slow_shared(slow_shared):
    pass


def test_within(shared, own):  # 0.3 s of setup, each part within the budget
    pass
"""
QUICK = "def test_one():\n    pass\n\n\ndef test_two():\n    pass\n"
MARKED = "import pytest\n\n\n@pytest.mark.drill\ndef test_drill():\n    pass\n"


def _suite(pytester, unit: str, integration: str, drill: str):
    for tier, code in (("unit", unit), ("integration", integration), ("drill", drill)):
        pytester.mkdir(tier)
        (pytester.path / tier / f"test_{tier}.py").write_text(HEAD + code)
    (pytester.path / "integration" / "test_marked.py").write_text(MARKED)
    return pytester


def _run(suite, *args):
    return suite.runpytest("-p", "tiers", "-o", "budget_unit_s=0.2", "-o", "budget_s=0.2", *args)


def test_a_phase_or_a_shared_fixture_over_the_budget_fails_and_a_drill_has_none(pytester):
    suite = _suite(pytester, SLOW_CALL, SLOW_CALL + SLOW_FIXTURES, SLOW_CALL)
    result = _run(suite, "unit", "integration", "drill")
    # unit: the slow call fails; integration: the slow call fails, the slow setup and the
    # slow shared fixture err, the test within the budget passes; drill: the slow call passes
    result.assert_outcomes(passed=1 + 2 + 1 + 2, failed=2, errors=2)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at setup of test_slow_setup*",
            "*its setup took 0.? s, and a test phase in the integration tier may take 0.2 s.*",
            "*ERROR at setup of test_slow_shared*",
            "*slow_shared took 0.? s to set up, and a shared fixture in the integration tier*",
            "*test_slow_call*",
            "*its call took 0.? s, and a test phase in the unit tier may take 0.2 s.*",
        ],
        consecutive=False,
    )
    assert "test_within" not in result.stdout.str().split("short test summary")[1]
    result.stdout.fnmatch_lines(
        ["time per tier: unit 0.* s (2 tests), integration 1.* s (5 tests), drill 0.* s (3 tests)"]
    )


def test_markers_select_a_tier_and_tiers_run_in_order(pytester):
    suite = _suite(pytester, QUICK, QUICK, QUICK)
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
