"""The paper's temporal embedding: triplets from time, and what training does to distances."""

import numpy as np
import torch

from raymer.models.builders import build_fusion_model
from raymer.models.temporal import fit_temporal_embedding, sample_triplets
from raymer.trained.checkpoint import ModelSpec


def test_triplets_respect_time():
    rng = np.random.default_rng(0)
    lengths = [30, 5, 40]
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    clip_of = np.repeat(np.arange(3), lengths)
    triplets = sample_triplets(lengths, 500, k=2, far=10, rng=rng)
    for a, p, n in triplets:
        assert clip_of[a] == clip_of[p] and 0 < abs(a - p) <= 2
        same_clip = clip_of[n] == clip_of[a]
        assert not same_clip or abs((n - offsets[clip_of[n]]) - (a - offsets[clip_of[a]])) > 10
    assert (clip_of[triplets[:, 2]] != clip_of[triplets[:, 0]]).any()


def _smooth_clips(n=20, t=60, d=24, seed=0):
    rng = np.random.default_rng(seed)
    return [np.cumsum(rng.normal(size=(t, d)), axis=0).astype(np.float32) / 5 for _ in range(n)]


def test_training_brings_near_frames_closer_than_far_ones():
    clips = _smooth_clips()
    g, losses = fit_temporal_embedding(clips, out_dim=16, k=2, far=10, steps=200, batch=128)
    assert np.mean(losses[-20:]) < np.mean(losses[:20])
    with torch.no_grad():
        emb = g(torch.from_numpy(clips[0]))
    near = (emb[2:] - emb[:-2]).norm(dim=-1).mean()
    far = (emb[20:] - emb[:-20]).norm(dim=-1).mean()
    assert near < 0.5 * far
    assert not any(p.requires_grad for p in g.parameters())


def test_fusion_model_with_the_temporal_embedding_keeps_it_frozen():
    spec = {
        "audio_dim": 24,
        "text_dim": 10,
        "labels": ["a", "b"],
        "hidden_dim": 16,
        "num_layers": 0,
        "num_heads": 4,
        "dropout": 0.0,
        "modality": "fusion",
        "audio_input": "temporal",
        "temporal_dim": 8,
    }
    model = build_fusion_model(ModelSpec(**spec))
    audio, text = torch.randn(2, 7, 24), torch.randn(2, 5, 10)
    masks = torch.ones(2, 7, dtype=torch.bool), torch.ones(2, 5, dtype=torch.bool)
    model(audio, masks[0], text, masks[1]).logits.sum().backward()
    assert all(p.grad is None for p in model.audio_adapter.parameters())
    assert model.audio_proj.weight.shape == (16, 8)
