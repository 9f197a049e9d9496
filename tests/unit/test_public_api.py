import subprocess
import sys

import raymer


def test_every_exported_name_resolves():
    for name in raymer.__all__:
        assert getattr(raymer, name) is not None, name


def test_import_is_light():
    code = "import sys, raymer.cli; print(any(m in sys.modules for m in ('ray', 'torch', 'faster_whisper')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
