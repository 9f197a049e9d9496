"""Epoch time of ``raymer train`` on cached features with 1 and 2 Ray Train workers.

    python benchmarks/train_scaling.py [--features runs/sample/extract] [--epochs 6]
                                       [--mode features|finetune] [--gpu]

Both runs train the same model on the same features (gloo on CPU, or ``--gpu``), in this
process's local Ray. The first epoch (worker start, dataset warm-up) is left out; the median
of the others is the epoch time. Prints both and the speed-up (1-worker time / 2-worker time).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time

from raymer.config import TrainConfig, load_config
from raymer.runtime import init_ray


def run(features: str, workers: int, args: argparse.Namespace, out: str) -> dict:
    from raymer.training.trainer import train

    cfg = load_config(
        TrainConfig,
        args.config,
        [
            f"resources.model.actors={workers}",
            f"optim.epochs={args.epochs}",
            f"optim.patience={args.epochs}",
            f"resources.use_gpu={str(args.gpu).lower()}",
            f"mode={args.mode}",
            f"resources.model.num_cpus={args.cpus_per_worker}",
            "data.test_speakers=[]",
            "data.holdout={}",
        ],
        features=features,
        output=out,
    )
    start = time.perf_counter()
    summary = train(cfg)
    wall = time.perf_counter() - start
    epochs = [h["epoch_s"] for h in summary.history]
    return {
        "epoch_s": statistics.median(epochs[1:] or epochs),
        "first_epoch_s": epochs[0],
        "wall_s": wall,
        "val_ua": summary.best_val_ua,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--features", default="runs/sample/extract")
    parser.add_argument("--config", default="configs/train/sample.yaml")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--cpus-per-worker", type=float, default=0.5)
    parser.add_argument("--gpu", action="store_true", help="one GPU per worker (nccl)")
    parser.add_argument("--mode", choices=["features", "finetune"], default="features")
    args = parser.parse_args()
    if not os.path.isdir(args.features) and not args.features.startswith("s3://"):
        parser.error(f"{args.features} does not exist: run `make demo` (or raymer extract) first")

    import ray

    init_ray(include_dashboard=False)
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; "
        f"Ray resources {ray.cluster_resources()}"
    )
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for workers in (1, 2):
            results[workers] = run(args.features, workers, args, f"{tmp}/w{workers}")
            r = results[workers]
            print(
                f"{workers} worker(s): epoch {r['epoch_s']:.2f} s (first {r['first_epoch_s']:.2f} s), "
                f"fit {r['wall_s']:.1f} s, best val UA {r['val_ua']:.3f}"
            )
    ratio = results[1]["epoch_s"] / results[2]["epoch_s"]
    print(f"speed-up 2 workers vs 1 (epoch time): {ratio:.2f}x")


if __name__ == "__main__":
    main()
