"""Importing raymer changes nothing in its importer's environment (every module imported in a
clean process, after Ray, torch, transformers and faster-whisper: seconds of imports, so not
in the unit tier)."""

import os
import subprocess
import sys


def test_importing_raymer_changes_no_environment_variable():
    """Every raymer module imported (and the libraries they pull in imported first, whose
    own settings are theirs): the environment is what it was."""
    code = """
import importlib, os, pkgutil
import ray, ray.data, torch, transformers, faster_whisper  # their own import-time settings
before = dict(os.environ)
import raymer
for m in pkgutil.walk_packages(raymer.__path__, "raymer."):
    if not m.name.endswith("__main__"):
        importlib.import_module(m.name)
for name in raymer.__all__:
    getattr(raymer, name)
after = dict(os.environ)
print(sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k)))
"""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "HF_", "TOKENIZERS"))}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=clean
    )
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout
