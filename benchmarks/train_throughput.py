"""Training throughput in features mode: ``raymer train`` against a plain in-process loop.

    python benchmarks/train_throughput.py [--features runs/sample/extract] [--clips 5000]
                                          [--epochs 4] [--workers 1 2]

The features are the extraction output's clips copied under new ids until there are at
least ``--clips`` (same speakers, so the split is the same). Both sides train the model of
``configs/train/sample.yaml`` (same width and layers) on the same training split, in
batches of its ``batch_size``:

(a) baseline: a plain PyTorch loop in this process: the split read once with pyarrow, the
    frames and tokens turned into padded arrays from Arrow without Python lists, shuffled
    batches, forward, backward and an optimizer step, then a forward pass over the
    validation split (``raymer train`` validates every epoch too);
(b) ``raymer train`` with 1 and 2 Ray Train workers (gloo on CPU).

Prints clips per second of an epoch for each (the first epoch, worker start and warm-up,
left out; the median of the others) and the ratio b/a, with the validation score of each.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

from raymer.config import TrainConfig, load_config


def copy_features(source: str, clips: int, out: Path) -> int:
    """The source clips copied under new ids (``<id>~<k>``) until there are ``clips``."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from raymer.training.data import feature_files

    table = pa.concat_tables(pq.read_table(f) for f in feature_files(source))
    copies = -(-clips // table.num_rows)
    out.mkdir(parents=True, exist_ok=True)
    for k in range(copies):
        ids = pc.binary_join_element_wise(table.column("id"), pa.scalar(str(k)), "~")
        column = table.schema.get_field_index("id")
        pq.write_table(table.set_column(column, "id", ids), out / f"part-{k:04d}.parquet")
    return copies * table.num_rows


def plain_loop(cfg: TrainConfig, epochs: int) -> dict:
    """The same model and split, trained in this process (see the module's docstring)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq
    import torch

    from raymer.models.builders import build_model
    from raymer.trained.batches import Collate, forward
    from raymer.training.data import InSpeakers, feature_files, read_index, split_speakers
    from raymer.training.losses import loss_fn
    from raymer.training.model_spec import model_spec

    index = read_index(cfg.features, cfg.data.split_by)
    train_s, val_s, _ = split_speakers(
        index.speakers,
        cfg.data.test_speakers,
        cfg.data.val_speakers,
        cfg.data.val_fraction,
        cfg.run.seed,
    )
    columns = ["id", "label", "speaker", "audio_frames", "text_tokens"]
    table = pa.concat_tables(pq.read_table(f, columns=columns) for f in feature_files(cfg.features))
    train = InSpeakers(train_s).table(table)
    val = InSpeakers(val_s).table(table)
    spec = model_spec(cfg, index, index.label_set())
    torch.manual_seed(0)
    model = build_model(spec)
    collate = Collate(spec)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay
    )
    rng = np.random.default_rng(0)
    times, ua = [], 0.0
    for _ in range(epochs):
        start = time.perf_counter()
        model.train()
        order = rng.permutation(train.num_rows)
        for i in range(0, len(order), cfg.optim.batch_size):
            batch = collate.from_table(train.take(order[i : i + cfg.optim.batch_size]))
            loss = loss_fn(cfg.model.loss, forward(model, batch).logits, batch["label"])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        model.eval()
        right = []
        with torch.no_grad():
            for i in range(0, val.num_rows, cfg.optim.batch_size):
                batch = collate.from_table(val.slice(i, cfg.optim.batch_size))
                right += (forward(model, batch).logits.argmax(-1) == batch["label"]).tolist()
        times.append(time.perf_counter() - start)
        ua = sum(right) / max(1, len(right))
    epoch_s = statistics.median(times[1:] or times)
    return {"epoch_s": epoch_s, "clips_s": train.num_rows / epoch_s, "val_acc": ua}


def raymer_train(cfg: TrainConfig, workers: int, out: str) -> dict:
    from raymer.training.trainer import train

    resources = cfg.resources.model_copy(
        update={"model": cfg.resources.model.model_copy(update={"actors": workers})}
    )
    run = cfg.model_copy(update={"resources": resources, "output": out})
    summary = train(run)
    history = summary.history
    epoch_s = statistics.median([h["epoch_s"] for h in history[1:]] or [history[0]["epoch_s"]])
    clips = history[-1]["train_clips"]
    return {"epoch_s": epoch_s, "clips_s": clips / epoch_s, "val_ua": summary.best_val_ua}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--features", default="runs/sample/extract")
    parser.add_argument("--config", default="configs/train/sample.yaml")
    parser.add_argument("--clips", type=int, default=5000)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        features = Path(tmp) / "features"
        n = copy_features(args.features, args.clips, features)
        cfg = load_config(
            TrainConfig,
            args.config,
            [
                f"optim.epochs={args.epochs}",
                f"optim.patience={args.epochs}",
                "data.test_speakers=[]",
                "data.holdout={}",
            ],
            features=str(features),
            output=str(Path(tmp) / "runs"),
        )
        print(
            f"machine: {platform.platform()}, {os.cpu_count()} CPUs; {n} clips; batch "
            f"{cfg.optim.batch_size}, hidden {cfg.model.hidden_dim}, {args.epochs} epochs"
        )
        base = plain_loop(cfg, args.epochs)
        print(
            f"plain loop (in process): {base['clips_s']:.0f} clips/s "
            f"(epoch {base['epoch_s']:.1f} s, val acc {base['val_acc']:.3f})"
        )
        for workers in args.workers:
            got = raymer_train(cfg, workers, str(Path(tmp) / f"runs-{workers}"))
            print(
                f"raymer train, {workers} worker(s): {got['clips_s']:.0f} clips/s "
                f"(epoch {got['epoch_s']:.1f} s, val UA {got['val_ua']:.3f}) -> "
                f"{got['clips_s'] / base['clips_s']:.2f}x the plain loop"
            )


if __name__ == "__main__":
    main()
