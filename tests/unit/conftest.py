"""The unit tier: no Ray and no model weights (see tests/tiers.py). Both are checked: a unit
test that loads a registered model or the piper voice, or leaves Ray started, fails."""

from __future__ import annotations

import sys

import pytest


def _refuse(what: str):
    def refuse(*args, **kwargs):
        raise AssertionError(f"a unit test may not load {what}: move it to tests/integration")

    return refuse


@pytest.fixture(autouse=True)
def no_model_weights(monkeypatch):
    """For each unit test only: the other tiers of the session load models."""
    from raymer.corpora import synth
    from raymer.models import registry

    monkeypatch.setattr(registry, "_resolve_registered", _refuse("model weights"))
    monkeypatch.setattr(synth, "_load_piper", _refuse("the piper voice"))


@pytest.fixture(autouse=True)
def no_ray():
    yield
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        ray.shutdown()
        pytest.fail("this unit test started Ray: move it to tests/integration")
