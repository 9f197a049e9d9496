"""Fine-tune mode's model: masked pooling, progressive unfreezing, the collate."""

import numpy as np
import torch

from raymer.audio.frames import pool_frames
from raymer.models.finetune import masked_pool, stage_at


def test_masked_pool_is_the_feature_pooling_on_valid_frames():
    rng = np.random.default_rng(0)
    frames = rng.standard_normal((2, 23, 4)).astype(np.float32)
    mask = np.zeros((2, 23), dtype=bool)
    mask[0, :23], mask[1, :12] = True, True
    pooled, pooled_mask = masked_pool(torch.from_numpy(frames), torch.from_numpy(mask), 5)
    assert pooled.shape == (2, 5, 4) and pooled_mask.tolist() == [
        [True] * 5,
        [True] * 3 + [False] * 2,
    ]
    np.testing.assert_allclose(pooled[0].numpy(), pool_frames(frames[0], 5), rtol=1e-6)
    np.testing.assert_allclose(pooled[1, :3].numpy(), pool_frames(frames[1, :12], 5), rtol=1e-6)
    assert torch.all(pooled[1, 3:] == 0)


def test_stage_schedule():
    assert [stage_at(e, 1, 3) for e in range(5)] == ["head", "top", "top", "all", "all"]
    assert [stage_at(e, 0, 0) for e in range(2)] == ["all", "all"]
