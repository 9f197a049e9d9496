"""The optional parts (``pip install 'raymer[plots]'``, ``'raymer[synth]'``): used when
installed, skipped with a warning (plots) or refused with the install line (synthesis)."""

from __future__ import annotations

import importlib.util
import logging

from raymer.errors import UsageError

logger = logging.getLogger(__name__)
_warned: set[str] = set()


def installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def can_plot() -> bool:
    """matplotlib is there; else one warning per process, and the PNGs are left out."""
    if installed("matplotlib"):
        return True
    if "plots" not in _warned:
        _warned.add("plots")
        logger.warning("matplotlib is not installed: no plots (pip install 'raymer[plots]')")
    return False


def require(module: str, extra: str, what: str) -> None:
    if not installed(module):
        raise UsageError(f"{what} needs {module}: pip install 'raymer[{extra}]'")
