"""init_text: a text branch trained elsewhere (e.g. on GoEmotions) starts a fusion model."""

import pytest
import torch

from raymer.models.builders import build_model
from raymer.models.transfer import check_text_branch, load_text_branch
from raymer.trained.checkpoint import ModelSpec


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
