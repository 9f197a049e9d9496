"""init_text: a text branch trained elsewhere (e.g. on GoEmotions) starts a fusion model."""

import pytest
import torch

from raymer.checkpoint import ModelSpec
from raymer.models.builders import build_model
from raymer.models.transfer import check_text_branch, load_text_branch


def _spec(**changes):
    spec = {
        "audio_dim": 12,
        "text_dim": 8,
        "labels": ["anger", "joy", "neutral", "sadness"],
        "loss": "bce",
        "hidden_dim": 16,
        "num_layers": 1,
        "num_heads": 2,
        "dropout": 0.0,
        "modality": "fusion",
        "audio_input": "frames",
        "temporal_dim": 8,
        "extract": {"text_model": "minilm-l6"},
    }
    return ModelSpec(**(spec | changes))


def _same(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_text_branch_moves_and_the_rest_stays():
    torch.manual_seed(0)
    source_spec = _spec(modality="text", labels=["anger", "disgust", "fear", "joy", "neutral"])
    source = build_model(source_spec)
    target_spec = _spec()
    target = build_model(target_spec)
    before = {k: v.clone() for k, v in target.state_dict().items()}
    loaded = load_text_branch(target, source.state_dict(), source_spec, target_spec)
    assert loaded and all(
        k.startswith(("text_proj.", "text_encoder.", "out_text.")) for k in loaded
    )
    for name in ("text_proj", "text_encoder", "out_text"):
        assert _same(getattr(target, name), getattr(source, name))
    after = target.state_dict()
    untouched = [k for k in after if k not in loaded]
    assert any(k.startswith("head.") for k in untouched)  # the label head starts anew
    assert all(torch.equal(after[k], before[k]) for k in untouched)


@pytest.mark.parametrize(
    ("source", "target", "message"),
    [
        (_spec(modality="audio"), _spec(), "audio-only model"),
        (_spec(modality="text", hidden_dim=32), _spec(), "hidden_dim 32 vs 16"),
        (_spec(modality="text", num_layers=0), _spec(), "num_layers 0 vs 1"),
        (
            _spec(modality="text", extract={"text_model": "other-encoder"}),
            _spec(),
            "read the tokens of 'other-encoder'",
        ),
        (
            _spec(modality="text", mode="finetune", text_model="minilm-l6"),
            _spec(),
            "train with mode=finetune",
        ),
    ],
)
def test_a_branch_that_does_not_fit_is_refused_with_the_reason(source, target, message):
    with pytest.raises(ValueError, match=message):
        check_text_branch(source, target)


def test_a_fine_tuned_text_encoder_comes_along_into_fine_tune_mode():
    """A text run fine-tuned on GoEmotions starts both the text encoder and the head's text
    branch of a fine-tune fusion model; the Whisper encoder stays as pretrained."""
    common = {
        "mode": "finetune",
        "asr_model": "whisper-tiny.en",
        "text_model": "minilm-l6",
        "audio_dim": 384,
        "text_dim": 384,
        "n_mels": 80,
        "pool": 5,
        "max_text_tokens": 32,
        "num_layers": 0,
    }
    source_spec = _spec(modality="text", **common)
    source = build_model(source_spec)
    with torch.no_grad():  # as if fine-tuned: differs from the pretrained encoder
        for p in source.text_encoder.parameters():
            p.add_(0.01)
    target_spec = _spec(**common)
    target = build_model(target_spec)
    whisper = {k: v.clone() for k, v in target.audio_encoder.state_dict().items()}
    loaded = load_text_branch(target, source.state_dict(), source_spec, target_spec)
    assert any(k.startswith("text_encoder.") for k in loaded)
    assert any(k.startswith("head.text_proj.") for k in loaded)
    assert _same(target.text_encoder, source.text_encoder)
    assert _same(target.head.text_proj, source.head.text_proj)
    assert all(torch.equal(v, whisper[k]) for k, v in target.audio_encoder.state_dict().items())
