"""The co-attention fusion model (pure torch): shapes, masking, the paper's equations."""

import pytest
import torch

from raymer.models.co_attention import AlternatingCoAttention, GuidedAttentionPool
from raymer.models.fusion import CoAttentionFusion


def _batch(b=3, ta=7, tt=5, da=12, dt=10):
    torch.manual_seed(0)
    audio, text = torch.randn(b, ta, da), torch.randn(b, tt, dt)
    audio_mask = torch.arange(ta)[None] < torch.tensor([7, 4, 1])[:, None]
    text_mask = torch.arange(tt)[None] < torch.tensor([5, 2, 3])[:, None]
    return audio, audio_mask, text, text_mask


def test_guided_pool_matches_the_equation():
    torch.manual_seed(1)
    pool = GuidedAttentionPool(4, 3, 6)
    x, g = torch.randn(2, 5, 4), torch.randn(2, 3)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    pooled, a = pool(x, mask, g)
    for i in range(2):
        n = int(mask[i].sum())
        h = torch.tanh(x[i, :n] @ pool.w_x.weight.T + (g[i] @ pool.w_g.weight.T + pool.w_g.bias))
        ref_a = torch.softmax(h @ pool.w_h.weight.T, dim=0).squeeze(-1)
        torch.testing.assert_close(a[i, :n], ref_a)
        torch.testing.assert_close(pooled[i], (ref_a[:, None] * x[i, :n]).sum(0))
    assert torch.all(a[0, 3:] == 0)


def test_padding_does_not_change_the_result():
    audio, audio_mask, text, text_mask = _batch()
    co = AlternatingCoAttention(12, 8)
    proj_t = torch.nn.Linear(10, 12)
    x_hat, y_hat, _ = co(audio, audio_mask, proj_t(text), text_mask)
    garbage = audio.clone()
    garbage[~audio_mask] = 1e3
    x2, y2, _ = co(garbage, audio_mask, proj_t(text), text_mask)
    torch.testing.assert_close(x_hat, x2)
    torch.testing.assert_close(y_hat, y2)


def test_text_is_guided_by_speech_and_speech_by_text():
    audio, audio_mask, text, text_mask = _batch()
    co = AlternatingCoAttention(12, 8)
    y = torch.randn(3, 5, 12)
    _, _, w1 = co(audio, audio_mask, y, text_mask)
    _, _, w2 = co(audio * 2, audio_mask, y, text_mask)  # other speech -> other text weights
    assert not torch.allclose(w1.text, w2.text)
    _, _, w3 = co(audio, audio_mask, y * 2, text_mask)  # other text -> other final speech weights
    torch.testing.assert_close(w1.speech_first, w3.speech_first)  # step 1 ignores the text
    assert not torch.allclose(w1.speech, w3.speech)


@pytest.mark.parametrize("modality", ["fusion", "audio", "text"])
@pytest.mark.parametrize("layers", [0, 1])
def test_fusion_model_shapes_and_weights(modality, layers):
    audio, audio_mask, text, text_mask = _batch()
    model = CoAttentionFusion(12, 10, 16, 4, num_layers=layers, modality=modality).eval()
    out = model(audio, audio_mask, text, text_mask)
    assert out.logits.shape == (3, 4) and out.embedding.shape == (3, 16)
    assert torch.isfinite(out.logits).all()
    weights = out.weights if modality != "fusion" else out.weights.speech
    expected_mask = text_mask if modality == "text" else audio_mask
    torch.testing.assert_close(weights.sum(-1), torch.ones(3))
    assert torch.all(weights[~expected_mask] == 0)


def test_empty_transcript_is_finite():
    audio, audio_mask, text, text_mask = _batch()
    text_mask[1] = False
    out = CoAttentionFusion(12, 10, 16, 4).eval()(audio, audio_mask, text, text_mask)
    assert torch.isfinite(out.logits).all()


def test_fusion_learns_a_task_that_needs_both_modalities():
    """Label = audio cue XOR text cue: neither modality alone can exceed chance."""
    torch.manual_seed(0)
    n = 256
    a_bit, t_bit = torch.randint(0, 2, (n,)), torch.randint(0, 2, (n,))
    audio = torch.randn(n, 6, 4) * 0.1
    audio[:, :, 0] += a_bit[:, None] * 2 - 1
    text = torch.randn(n, 5, 4) * 0.1
    text[:, :, 0] += t_bit[:, None] * 2 - 1
    labels = a_bit ^ t_bit
    masks = torch.ones(n, 6, dtype=torch.bool), torch.ones(n, 5, dtype=torch.bool)

    def train(modality):
        torch.manual_seed(0)
        model = CoAttentionFusion(4, 4, 16, 2, dropout=0.0, modality=modality)
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        for _ in range(150):
            loss = torch.nn.functional.cross_entropy(
                model(audio, masks[0], text, masks[1]).logits, labels
            )
            opt.zero_grad()
            loss.backward()
            opt.step()
        return (model(audio, masks[0], text, masks[1]).logits.argmax(-1) == labels).float().mean()

    assert train("fusion") > 0.95
    assert train("audio") < 0.7 and train("text") < 0.7


@pytest.mark.parametrize("modality", ["fusion", "audio", "text"])
def test_every_parameter_gets_a_gradient(modality):
    """DistributedDataParallel fails on parameters that take no part in the loss."""
    audio, audio_mask, text, text_mask = _batch()
    model = CoAttentionFusion(12, 10, 16, 4, num_layers=1, modality=modality)
    model(audio, audio_mask, text, text_mask).logits.sum().backward()
    unused = [n for n, p in model.named_parameters() if p.grad is None]
    assert unused == []


def test_recording_norm_takes_a_recording_s_level_and_channel_out():
    """``audio_norm: recording``: a recording's frames standardised over its own frames, in
    the model: a gain and an offset on every frame (a louder or other channel) leave the
    answer as it was, padding stays out of the statistics, and without it they do not."""
    from raymer.models.fusion import standardize

    torch.manual_seed(0)
    audio, text = torch.randn(2, 12, 16), torch.randn(2, 5, 8)
    a_mask = torch.ones(2, 12, dtype=torch.bool)
    a_mask[1, 9:] = False
    t_mask = torch.ones(2, 5, dtype=torch.bool)
    shifted = audio * 3.0 + torch.linspace(-2, 2, 16)  # per-dimension gain and offset
    normed = standardize(audio, a_mask)
    assert torch.allclose(normed[0].mean(0), torch.zeros(16), atol=1e-5)
    assert torch.allclose(normed[1, :9].std(0, unbiased=False), torch.ones(16), atol=1e-3)
    assert (normed[1, 9:] == 0).all()
    for norm, same in (("recording", True), ("none", False)):
        torch.manual_seed(1)
        model = CoAttentionFusion(16, 8, 32, 4, num_layers=1, audio_norm=norm).eval()
        a = model(audio, a_mask, text, t_mask).logits
        b = model(shifted, a_mask, text, t_mask).logits
        assert torch.allclose(a, b, atol=1e-4) == same, norm


def test_the_norm_is_recorded_in_the_spec_and_built_from_it():
    import json
    from pathlib import Path

    from raymer.config import TrainConfig
    from raymer.contract.spec import ModelSpec
    from raymer.models.builders import build_fusion_model

    old = json.loads((Path(__file__).parents[1] / "data/checkpoint-0.1.0/model.json").read_text())
    assert "audio_norm" not in old and ModelSpec(**old).audio_norm == "none"  # as before
    spec = ModelSpec(**old | {"audio_norm": "recording"})
    assert ModelSpec(**json.loads(spec.model_dump_json())).audio_norm == "recording"
    assert build_fusion_model(spec).audio_norm == "recording"
    with pytest.raises(ValueError, match="temporal embedding"):
        TrainConfig(model={"audio_norm": "recording", "audio_input": "temporal"})


def test_prosody_columns_are_standardised_with_the_spec_statistics():
    """``prosody_dim`` columns at the end of the frames: standardised with the training set's
    mean and deviation from the spec (not parameters, not in the state dict, so a checkpoint
    from before the option loads as it was); the Whisper columns are left as they are."""
    import json
    from pathlib import Path

    from raymer.contract.spec import ModelSpec
    from raymer.models.builders import build_fusion_model

    old = json.loads((Path(__file__).parents[1] / "data/checkpoint-0.1.0/model.json").read_text())
    assert ModelSpec(**old).prosody_dim == 0 and not ModelSpec(**old).extract.prosody
    p, d = 3, old["audio_dim"]
    mean, std = [10.0, -5.0, 200.0], [2.0, 1.0, 50.0]
    spec = ModelSpec(
        **old | {"audio_dim": d + p, "prosody_dim": p, "prosody_mean": mean, "prosody_std": std}
    )
    spec = ModelSpec(**json.loads(spec.model_dump_json()))  # as a checkpoint stores it
    model = build_fusion_model(spec).eval()
    assert not any("prosody" in k for k in model.state_dict())
    frames = torch.randn(2, 6, d + p)
    mask = torch.ones(2, 6, dtype=torch.bool)
    mask[1, 4:] = False
    adapted = model._adapt(frames, mask)
    torch.testing.assert_close(adapted[..., :d], frames[..., :d])
    expect = (frames[..., d:] - torch.tensor(mean)) / torch.tensor(std) * mask[..., None]
    torch.testing.assert_close(adapted[..., d:], expect)
    base = build_fusion_model(ModelSpec(**old))
    assert base.prosody_dim == 0 and base.audio_proj.in_features == d
    assert model.audio_proj.in_features == d + p


def test_prosody_is_refused_where_the_model_reads_no_frames():
    from raymer.config import TrainConfig

    for bad in (
        {"model": {"prosody": True, "modality": "text"}},
        {"model": {"prosody": True}, "mode": "finetune"},
        {"model": {"prosody": True, "audio_input": "temporal"}},
    ):
        with pytest.raises(ValueError, match="prosody"):
            TrainConfig(**bad)


def test_prosody_auto_is_read_where_the_features_carry_it_and_the_model_can_read_it():
    """The default, ``auto``: a model reads the prosody columns when its features hold them
    (extract's default) and it reads cached Whisper frames with an audio branch; a setting
    given is kept as given (true on features without them is refused by the run, by name)."""
    from raymer.config import TrainConfig

    auto = TrainConfig()
    assert auto.model.prosody == "auto"
    assert auto.with_prosody(True).model.prosody is True
    assert auto.with_prosody(False).model.prosody is False
    for cannot in (
        {"model": {"modality": "text"}},
        {"mode": "finetune"},
        {"model": {"audio_input": "temporal"}},
    ):
        assert TrainConfig(**cannot).with_prosody(True).model.prosody is False, cannot
    assert TrainConfig(model={"prosody": False}).with_prosody(True).model.prosody is False
    assert TrainConfig(model={"prosody": True}).with_prosody(False).model.prosody is True
