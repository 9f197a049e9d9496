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


def test_mpnet_is_unpacked_once_from_its_archive_parts_and_encodes_sentences(tmp_path, monkeypatch):
    """all-mpnet-base-v2 comes as a zip in five packages: joined, checked against the
    documented size, unpacked below its top folder once, and it encodes (paraphrases closer
    than unrelated sentences, in its own 768 dimensions)."""
    import numpy as np

    from raymer.models.text_encoder import TextEncoder

    monkeypatch.setenv("RAYMER_CACHE", str(tmp_path))
    folder = resolve_model("mpnet-base")
    done = tmp_path / "models" / "mpnet-base" / ".complete"
    assert folder == str(done.parent)
    assert int(done.read_text()) == REGISTRY["mpnet-base"].joined_size == 404_421_332
    files = {p.name for p in done.parent.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= files
    assert "desktop.ini" not in files and not list(tmp_path.glob("models/.mpnet-base.*tmp*"))
    mtime = done.stat().st_mtime_ns
    assert resolve_model("mpnet-base") == folder and done.stat().st_mtime_ns == mtime

    encoder = TextEncoder(folder)
    happy, glad, train = (
        f.embedding
        for f in encoder(
            [
                "I am so happy today!",
                "What a wonderful day, I feel great.",
                "The train leaves at nine.",
            ]
        )
    )
    assert encoder.dim == 768 == happy.shape[0]
    assert np.dot(happy, glad) > np.dot(happy, train) + 0.3
