"""The registered models' packages: their files resolve to folders (whisper-base joined from
its parts once)."""

import pytest

from raymer.models.registry import REGISTRY, resolve_model


def test_whisper_base_is_joined_once_to_the_documented_size(tmp_path, monkeypatch):
    monkeypatch.setenv("RAYMER_CACHE", str(tmp_path))
    folder = resolve_model("whisper-base")
    model_bin = tmp_path / "models" / "whisper-base" / "model.bin"
    assert folder == str(model_bin.parent)
    assert model_bin.stat().st_size == REGISTRY["whisper-base"].joined_size == 145_217_607
    for name in ("config.json", "tokenizer.json", "vocabulary.json"):
        assert (model_bin.parent / name).is_file()
    mtime = model_bin.stat().st_mtime_ns
    assert resolve_model("whisper-base") == folder
    assert model_bin.stat().st_mtime_ns == mtime  # not joined again


@pytest.mark.parametrize(
    "name,needed", [("whisper-tiny.en", "model.bin"), ("minilm-l6", "model.safetensors")]
)
def test_packaged_models_resolve_to_folders(name, needed):
    from pathlib import Path

    assert (Path(resolve_model(name)) / needed).is_file()
