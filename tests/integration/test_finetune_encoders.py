"""Fine-tune mode's model with its real encoders (whisper tiny.en, MiniLM): progressive
unfreezing, the collate, a fine-tuned text encoder carried into a fusion model."""

import numpy as np
import pytest
import torch

from raymer.models.builders import build_model
from raymer.models.transfer import load_text_branch
from raymer.trained.checkpoint import ModelSpec

FINETUNE = {
    "mode": "finetune",
    "asr_model": "whisper-tiny.en",
    "text_model": "minilm-l6",
    "audio_dim": 384,
    "text_dim": 384,
    "n_mels": 80,
    "pool": 5,
    "max_text_tokens": 64,
    "labels": ["angry", "happy", "neutral", "sad"],
    "loss": "bce",
    "hidden_dim": 32,
    "num_layers": 0,
    "num_heads": 4,
    "dropout": 0.0,
    "modality": "fusion",
    "audio_input": "frames",
    "temporal_dim": 128,
}


@pytest.fixture(scope="module")
def recognizer():
    spec = ModelSpec(**FINETUNE)
    return build_model(spec), spec


def _trainable(model, prefix: str) -> set[str]:
    return {n for n, p in model.named_parameters() if p.requires_grad and n.startswith(prefix)}


def test_progressive_unfreezing_stages(recognizer):
    model, _ = recognizer
    model.set_stage("head")
    assert _trainable(model, "audio_encoder") == _trainable(model, "text_encoder") == set()
    assert _trainable(model, "head") == {n for n, _ in model.head.named_parameters(prefix="head")}

    model.set_stage("top", top_layers=2)
    audio = _trainable(model, "audio_encoder")
    assert {n.split(".")[2] for n in audio if n.startswith("audio_encoder.layers.")} == {"2", "3"}
    assert "audio_encoder.layer_norm.weight" in audio and "audio_encoder.conv1.weight" not in audio
    text = _trainable(model, "text_encoder")
    assert {n.split(".")[3] for n in text} == {"4", "5"}  # MiniLM-L6: the last two of six

    model.set_stage("all")
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert frozen == {"audio_encoder.embed_positions.weight"}  # Whisper's fixed sinusoids
    with pytest.raises(ValueError, match="unknown stage"):
        model.set_stage("encoders")


def test_collate_and_forward(recognizer, piper_corpus):
    import soundfile

    from raymer.trained.batches import Collate

    model, spec = recognizer
    clips = [
        soundfile.read(piper_corpus.parent / "joe" / f"joe_0000{i}.wav", dtype="float32")[0]
        for i in (0, 1)
    ]
    batch = {
        "audio": np.array([c.tobytes() for c in clips], dtype=object),
        "text_source": np.array(["asr", "reference"], dtype=object),
        "transcript": np.array(["I am so happy today", "ignored"], dtype=object),
        "reference_text": np.array(["ignored", "This is the worst day"], dtype=object),
        "label": np.array(["happy", "sad"], dtype=object),
        "id": np.array(["a", "b"], dtype=object),
    }
    collate = Collate(spec)
    out = collate(batch)
    longest = max(len(c) for c in clips) / 16_000
    assert out["audio"].shape[:2] == (2, 80) and out["audio"].shape[2] >= 800  # >= 8 s window
    assert out["audio"].shape[2] >= longest * 100
    assert out["audio_mask"].shape == (2, out["audio"].shape[2] // 2)
    assert out["audio_mask"].sum(1).tolist() == [int(np.ceil(len(c) / 320)) for c in clips]
    assert out["label"].tolist() == [1, 3]
    words = collate._tokenizer.batch_decode(out["text"], skip_special_tokens=True)
    assert words == ["i am so happy today", "this is the worst day"]
    model.eval()
    with torch.no_grad():
        result = model(out["audio"], out["audio_mask"], out["text"], out["text_mask"])
    assert result.logits.shape == (2, 4) and torch.isfinite(result.logits).all()
    for w in (result.weights.speech_first, result.weights.text, result.weights.speech):
        assert torch.allclose(w.sum(-1), torch.ones(2), atol=1e-5)


def test_a_fine_tuned_text_encoder_comes_along_into_fine_tune_mode():
    """A text run fine-tuned on GoEmotions starts both the text encoder and the head's text
    branch of a fine-tune fusion model; the Whisper encoder stays as pretrained."""
    source_spec = ModelSpec(**FINETUNE | {"modality": "text", "max_text_tokens": 32})
    source = build_model(source_spec)
    with torch.no_grad():  # as if fine-tuned: differs from the pretrained encoder
        for p in source.text_encoder.parameters():
            p.add_(0.01)
    target_spec = ModelSpec(**FINETUNE | {"max_text_tokens": 32})
    target = build_model(target_spec)
    whisper = {k: v.clone() for k, v in target.audio_encoder.state_dict().items()}
    loaded = load_text_branch(target, source.state_dict(), source_spec, target_spec)
    assert any(k.startswith("text_encoder.") for k in loaded)
    assert any(k.startswith("head.text_proj.") for k in loaded)
    assert _same(target.text_encoder, source.text_encoder)
    assert _same(target.head.text_proj, source.head.text_proj)
    assert all(torch.equal(v, whisper[k]) for k, v in target.audio_encoder.state_dict().items())


def _same(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
