"""What ``make setup`` leaves behind: a venv that starts processes fast."""

import importlib.util
from pathlib import Path

import pytest


@pytest.mark.parametrize("package", ["torch", "ray", "transformers", "pyarrow"])
def test_the_installed_packages_are_byte_compiled(package):
    """Every Ray worker, actor and command imports torch, Ray and transformers. Where the
    environment says PYTHONDONTWRITEBYTECODE (CI's does), a venv installed without bytecode
    compiles them again in every process: twice the import time (``make setup`` installs with
    ``uv pip install --compile-bytecode``, as pip compiles by default)."""
    source = importlib.util.find_spec(package).origin
    cached = Path(importlib.util.cache_from_source(source))
    assert cached.exists(), f"{package} is not byte-compiled: {cached} missing"
