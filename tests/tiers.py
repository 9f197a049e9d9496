"""Test tiers and the time budget the suite keeps by itself (a pytest plugin; tests/conftest.py
loads it).

Every test belongs to one tier: the folder it lives in (``tests/unit``, ``tests/integration``,
``tests/drill``), or a tier marker on the test (``@pytest.mark.drill`` beside the integration
tests it shares fixtures and helpers with):

- ``unit``: no Ray, no model weights (no Whisper, MiniLM, VAD or piper voice); the whole
  tier runs in under two minutes (``make test-quick``);
- ``integration``: the session's local Ray, the session's tiny models and shared fixtures;
- ``drill``: process kills, decompression bombs, soak and load, a two-node cluster.

The folder's tier is added as a marker (``pytest -m unit``, ``-m "not drill"``) and the tests
run tier by tier, in that order (file order within a tier), so the cheap failures come first.
A drill marked inside an integration module runs after every integration test: the module's
fixtures are set up again for it (a deployed service a drill kills is not the one the other
tests share).

The budget: every phase of a test (setup, call, teardown, as pytest's own ``--durations``
reports them) must stay under its tier's limit: ``budget_unit_s`` (5 s) in the unit tier,
``budget_s`` (120 s) in every tier but ``drill``. A shared fixture (module or session scope)
is set up once, inside the setup of the first test that uses it: ``--durations`` shows it
there, and the budget holds it to the same limit on its own (its time is taken out of that
test's). A phase or a shared fixture over the limit turns the test's report into a failure
that says what took how long.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

TIERS = {
    "unit": "no Ray and no model weights; each test under budget_unit_s",
    "integration": "the session's local Ray and tiny models; each phase under budget_s",
    "drill": "process kills, bombs, soak, a two-node cluster; no time budget",
}


def pytest_addoption(parser):
    parser.addini("budget_unit_s", "seconds a unit-tier test phase may take", default="5")
    parser.addini("budget_s", "seconds a test phase outside the drill tier may take", default="120")


def pytest_configure(config):
    for name, text in TIERS.items():
        config.addinivalue_line("markers", f"{name}: {text}")
    # A conftest's hooks see only the fixtures of its folder: a session fixture belongs to
    # the root, so the timer is registered as a plugin of its own, which sees them all.
    if not config.pluginmanager.has_plugin(FixtureTimer.name):
        config.pluginmanager.register(FixtureTimer(), FixtureTimer.name)


def tier_of(item) -> str:
    """The tier of a test: its tier marker, else the nearest folder above its file named
    like a tier."""
    marked = [name for name in TIERS if item.get_closest_marker(name)]
    if len(marked) > 1:
        raise pytest.UsageError(f"{item.nodeid}: marked with two tiers, {marked}")
    if marked:
        return marked[0]
    for part in reversed(Path(str(item.path)).parent.parts):
        if part in TIERS:
            return part
    raise pytest.UsageError(
        f"{item.nodeid}: every test lives under a tier folder ({', '.join(TIERS)})"
    )


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    order = list(TIERS)
    tiers = {item.nodeid: tier_of(item) for item in items}
    for item in items:
        if not item.get_closest_marker(tiers[item.nodeid]):
            item.add_marker(tiers[item.nodeid])
    items.sort(key=lambda item: order.index(tiers[item.nodeid]))  # stable: file order kept


def budget_of(item) -> float | None:
    """Seconds each phase of ``item`` may take; None in the drill tier."""
    tier = tier_of(item)
    if tier == "drill":
        return None
    name = "budget_unit_s" if tier == "unit" else "budget_s"
    return float(item.config.getini(name))


# Per session (a pytester run inside a test is a session of its own):
SHARED = pytest.StashKey[dict]()  # shared fixtures set up in the phase now running: seconds
SPENT = pytest.StashKey[dict]()  # tier -> [seconds, tests], for the summary


class FixtureTimer:
    name = "raymer-fixture-timer"

    @pytest.hookimpl(hookwrapper=True)
    def pytest_fixture_setup(self, fixturedef, request):
        """Times each shared fixture's own setup (the fixtures it needs are set up before)."""
        started = time.perf_counter()
        yield
        if fixturedef.scope != "function":
            shared = request.config.stash.setdefault(SHARED, {})
            shared[fixturedef.argname] = time.perf_counter() - started


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    shared = item.config.stash.get(SHARED, {})
    item.config.stash[SHARED] = {}
    spent = item.config.stash.setdefault(SPENT, {}).setdefault(tier_of(item), [0.0, 0])
    spent[0] += report.duration
    spent[1] += report.when == "setup"
    limit = budget_of(item)
    if limit is None or not report.passed:
        return
    own = report.duration - sum(shared.values())
    over = {name: s for name, s in shared.items() if s > limit}
    tier = f"the {tier_of(item)} tier may take {limit:g} s"
    if own > limit:
        why = f"its {report.when} took {own:.1f} s"
        if shared:
            why += f" (besides {_listed(shared)}: shared fixtures it was the first to use)"
        why += f", and a test phase in {tier}"
    elif over:
        why = f"{_listed(over)} to set up, and a shared fixture in {tier}"
    else:
        return
    report.outcome = "failed"
    report.longrepr = (
        f"over the time budget: {why}. CONTRIBUTING.md, 'A slow test', says how to find "
        "where the time goes and fix it."
    )


def _listed(fixtures: dict[str, float]) -> str:
    return ", ".join(f"{name} took {s:.1f} s" for name, s in fixtures.items())


def pytest_terminal_summary(terminalreporter):
    """One line: where the session's time went, tier by tier."""
    spent = terminalreporter.config.stash.get(SPENT, {})
    if spent:
        parts = [
            f"{tier} {_clock(spent[tier][0])} ({spent[tier][1]} tests)"
            for tier in TIERS
            if tier in spent
        ]
        terminalreporter.write_line("time per tier: " + ", ".join(parts))


def _clock(seconds: float) -> str:
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes)} min {rest:.0f} s" if minutes else f"{rest:.1f} s"
