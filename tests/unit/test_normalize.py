"""audio_norm: speaker: each speaker's frame statistics, summed in pieces as Ray Data sums
them, and the standardisation Collate applies (per speaker where known, else per recording,
as the model's per-recording rule)."""

import numpy as np
import pyarrow as pa
import torch

from raymer.audio.normalize import add, combine, partial_sums, standardize
from raymer.contract.spec import ModelSpec
from raymer.models.fusion import standardize as model_standardize
from raymer.trained.batches import Collate


def _rows(seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for i, (speaker, copy) in enumerate([("a", None), ("a", None), ("b", None), ("a", "gain")]):
        frames = rng.normal(3.0 * i, 1.0 + i, size=(4 + i, 3)).astype(np.float32)
        frames = np.concatenate([frames, np.full((len(frames), 2), 99.0, np.float32)], 1)
        rows.append({"speaker": speaker, "augment": copy, "audio_frames": frames.tolist()})
    return rows


def test_the_sums_in_pieces_give_each_speakers_statistics():
    rows = _rows()
    parts = [partial_sums(pa.Table.from_pylist(rows[:2]), 3)]
    parts.append(partial_sums(pa.Table.from_pylist(rows[2:]), 3))
    per_speaker = [
        combine(
            pa.concat_tables(parts).filter(pa.compute.equal(pa.concat_tables(parts)["speaker"], s))
        )
        for s in ("a", "b")
    ]
    stats = add(pa.concat_tables(per_speaker).to_pylist())
    a = np.concatenate([np.asarray(r["audio_frames"])[:, :3] for r in rows[:2]])  # no copy
    mean, std = stats.mean_std("a")
    np.testing.assert_allclose(mean, a.mean(0), rtol=1e-5)
    np.testing.assert_allclose(std, a.std(0), rtol=1e-4)
    assert stats.count == {"a": 9.0, "b": 6.0} and stats.mean_std("nobody") is None


def test_collate_standardises_by_speaker_where_known_else_with_the_pooled_statistics():
    rows = _rows()
    stats = add(partial_sums(pa.Table.from_pylist(rows), 3).to_pylist())
    spec = ModelSpec(
        audio_dim=3,
        text_dim=2,
        labels=["x"],
        hidden_dim=8,
        num_layers=0,
        num_heads=1,
        dropout=0.0,
        modality="fusion",
        audio_norm="speaker",
    )
    pooled = stats.pooled(["a", "b"])
    clips = np.concatenate([np.asarray(r["audio_frames"])[:, :3] for r in rows[:3]])
    np.testing.assert_allclose(pooled[0], clips.mean(0), rtol=1e-5)
    table = pa.table(
        {
            "id": ["0", "2"],
            "speaker": ["a", "b"],
            "audio_frames": [rows[0]["audio_frames"], rows[2]["audio_frames"]],
            "text_tokens": [[[0.0, 1.0]], [[1.0, 0.0]]],
        }
    )
    out = Collate(spec, stats).from_table(table)["audio"].numpy()
    mean, std = stats.mean_std("a")
    first = (np.asarray(rows[0]["audio_frames"])[:, :3] - mean) / std
    np.testing.assert_allclose(out[0, :4], first, rtol=1e-4, atol=1e-5)
    assert out.shape[-1] == 3 and (out[0, 4:] == 0).all()  # its columns; padding stays 0
    frames = np.asarray(rows[0]["audio_frames"], np.float32)
    # a checkpoint from a run keeps the training speakers' pooled statistics: every path
    # without a speaker's (live inputs, an unknown speaker) standardises with them
    kept = spec.model_copy(update={"frame_mean": pooled[0], "frame_std": pooled[1]})
    live = Collate(kept, stats).live(frames=[frames], tokens=[np.ones((1, 2))])["audio"]
    expect = (frames[:, :3] - np.asarray(pooled[0])) / np.asarray(pooled[1])
    np.testing.assert_allclose(live[0].numpy(), expect, rtol=1e-4, atol=1e-4)
    stored = Collate(kept).from_table(table)["audio"].numpy()  # no speaker statistics given
    np.testing.assert_allclose(stored[0, :4], expect, rtol=1e-4, atol=1e-4)
    # without pooled statistics (none kept): the recording's own, as the model's rule
    own = Collate(spec).live(frames=[frames], tokens=[np.ones((1, 2))])["audio"]
    mask = torch.ones(1, 4, dtype=torch.bool)
    expect = model_standardize(torch.tensor(frames)[None, :, :3], mask)
    torch.testing.assert_close(own, expect, rtol=1e-4, atol=1e-4)
    unknown = standardize(out[:1] * 0 + 1, np.ones((1, 6), bool), ["nobody"], stats, None)
    assert np.allclose(unknown, 0)
