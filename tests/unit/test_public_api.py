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


def test_the_package_is_typed_licensed_and_declares_ranges_and_extras():
    import importlib.metadata as md
    from pathlib import Path

    root = Path(raymer.__file__).parent
    assert (root / "py.typed").is_file()
    assert "Apache License" in (root.parent / "LICENSE").read_text()
    requires = md.requires("raymer")
    core = [r for r in requires if "extra ==" not in r]
    assert not [r for r in core if "==" in r], core  # ranges, not pins
    assert any(r.startswith("ray[") for r in core)
    extras = {r.split("extra == ")[1].strip('"') for r in requires if "extra ==" in r}
    assert {"synth", "plots", "test"} <= extras
    assert not [r for r in core if r.startswith(("piper", "matplotlib"))]


def test_the_readme_documents_what_the_package_exports():
    from pathlib import Path

    readme = (Path(raymer.__file__).parents[1] / "README.md").read_text()
    for name in ("Recognizer", "extract", "recognize", "train", "evaluate", "infer"):
        assert name in raymer.__all__ and f"raymer.{name}" in readme, name
