"""The per-worker training recipe run by Ray Train's TorchTrainer.

Every epoch: train on this worker's shard, validate on the gathered validation predictions of
all workers, report the metrics, and (rank 0) write a checkpoint. A restarted or re-run trial
resumes from the latest checkpoint, early-stopping state included. The steps (set-up, resume,
one epoch, validation, checkpoint) are the methods of ``Recipe``, in the order ``run`` calls
them; the worker receives its settings typed, as a ``WorkerConfig``.
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.distributed as dist

from raymer import storage
from raymer.audio.normalize import FrameStats
from raymer.config import TrainConfig, dump_config
from raymer.contract.card import CardFacts
from raymer.models.builders import build_model
from raymer.trained import checkpoint
from raymer.trained.batches import Collate, forward
from raymer.trained.checkpoint import ON_SCORE, ModelSpec, score_name, top_index
from raymer.training.batching import buckets, drop_modality
from raymer.training.losses import ccc_loss, loss_fn
from raymer.training.metrics import (
    classification_metrics,
    dimension_metrics,
    multilabel_metrics,
)

if TYPE_CHECKING:
    from raymer.drills import Drill

VAL_METRICS_FILE = "val_metrics.json"
BUCKET = 8  # batches whose clips are sorted by length together (padding per length bucket)


@dataclass
class WorkerConfig:
    """What every training worker receives (Ray Train carries it as ``{"run": ...}``)."""

    cfg: TrainConfig  # the run's resolved settings (absolute local paths)
    spec: ModelSpec  # the model to build and to save with each checkpoint
    adapter_state: dict | None = None  # the temporal embedding, trained before this run
    frame_stats: FrameStats | None = None  # audio_norm speaker: each speaker's statistics
    drill: Drill | None = None  # a fault drill (raymer.drills), None but in tests


@dataclass
class EpochResult:
    """One epoch's training pass on this worker: loss sum and clip count, or a bad loss."""

    total: float = 0.0
    count: int = 0
    bad_loss: tuple[float, int] | None = None  # (loss, step) of a NaN or infinite loss


def history_uri(cfg: TrainConfig) -> str:
    """Every epoch's metrics, rewritten each epoch by rank 0 (checkpoints keep only the best)."""
    return storage.join(cfg.output, cfg.run.name, "history.json")


def nan_marker(cfg: TrainConfig) -> str:
    """Where a run that met a NaN loss says so (the driver turns it into a TrainingError)."""
    return storage.join(cfg.output, cfg.run.name, "nan_loss.json")


def _gather(values: list) -> list:
    if not dist.is_available() or not dist.is_initialized():
        return values
    out: list = [None] * dist.get_world_size()
    dist.all_gather_object(out, values)
    return [v for part in out for v in part]


def _any_rank(flag: bool) -> bool:
    """True on every rank when ``flag`` is true on any: all ranks take the same branch."""
    if not dist.is_available() or not dist.is_initialized():
        return flag
    t = torch.tensor([float(flag)])
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def _unwrap(model):
    return model.module if hasattr(model, "module") else model


def _optimizer(model, cfg: TrainConfig, spec: ModelSpec) -> torch.optim.Optimizer:
    """AdamW; in fine-tune mode the encoders get their own (lower) learning rate. Frozen
    parameters have no gradient, and AdamW leaves them alone until they are unfrozen."""
    if not spec.finetune:
        return torch.optim.AdamW(
            model.parameters(), lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay
        )
    encoder = {id(p) for p in model.encoder_parameters()}
    groups = [
        {"params": [p for p in model.parameters() if id(p) not in encoder], "lr": cfg.optim.lr},
        {"params": model.encoder_parameters(), "lr": cfg.finetune.encoder_lr},
    ]
    return torch.optim.AdamW(groups, weight_decay=cfg.optim.weight_decay)


def _stage(cfg: TrainConfig, spec: ModelSpec, epoch: int) -> str | None:
    """The progressive-unfreezing stage of an epoch in fine-tune mode (None otherwise)."""
    if not spec.finetune:
        return None
    from raymer.models.finetune import stage_at

    return stage_at(epoch, cfg.finetune.unfreeze_top_at, cfg.finetune.unfreeze_all_at)


class Recipe:
    """One worker's part of a training run, in named steps."""

    def __init__(self, run: WorkerConfig) -> None:
        self.worker, self.cfg, self.spec = run, run.cfg, run.spec
        self.collate = Collate(run.spec, run.frame_stats)
        self.state = {"epoch": 0, "best_score": -1.0, "bad_epochs": 0}
        self.stage: str | None = None

    def setup(self) -> None:
        """The model (with any pretrained parts) and its optimizer."""
        torch.manual_seed(self.cfg.run.seed)
        if self.cfg.resources.model.threads:  # 0: what Ray Train set (OMP_NUM_THREADS)
            torch.set_num_threads(self.cfg.resources.model.threads)
        self.model = build_model(self.spec)
        if self.worker.adapter_state:  # the temporal embedding, trained before this run
            self.model.audio_adapter.load_state_dict(self.worker.adapter_state)
        if self.spec.init_text:  # a text branch trained before (e.g. on GoEmotions)
            from raymer.models.transfer import load_text_branch

            source = checkpoint.load_spec(self.spec.init_text)  # what the driver resolved
            state = checkpoint.read_state(source.checkpoint)
            load_text_branch(self.model, state, source, self.spec)
        self.optimizer = _optimizer(self.model, self.cfg, self.spec)

    def resume(self) -> None:
        """A restarted worker group, or a re-run of the same run name, goes on from the
        latest checkpoint: weights, optimizer and early-stopping state."""
        import ray.train

        latest = ray.train.get_checkpoint()
        if not latest:
            return
        with latest.as_directory() as d:
            load = lambda name: torch.load(Path(d) / name, map_location="cpu", weights_only=True)  # noqa: E731
            self.model.load_state_dict(load(checkpoint.MODEL_FILE))
            self.optimizer.load_state_dict(load(checkpoint.OPTIMIZER_FILE))
            self.state = json.loads((Path(d) / checkpoint.STATE_FILE).read_text())
        self.state["resumed_at"] = [*self.state.get("resumed_at", []), self.state["epoch"]]

    def distribute(self) -> None:
        """DDP, the device, this worker's shards, rank and random generator."""
        import ray.train
        import ray.train.torch

        self.stage = _stage(self.cfg, self.spec, self.state["epoch"])
        if self.stage:
            self.model.set_stage(self.stage, self.cfg.finetune.top_layers)
        self.model = ray.train.torch.prepare_model(self.model)
        self.device = ray.train.torch.get_device()
        self.train_shard = ray.train.get_dataset_shard("train")
        self.val_shard = ray.train.get_dataset_shard("val")
        context = ray.train.get_context()
        self.rank, self.world_size = context.get_world_rank(), context.get_world_size()
        seed = self.cfg.run.seed * 1000 + self.rank + 7919 * self.state["epoch"]
        self.generator = torch.Generator().manual_seed(seed)

    def unfreeze(self) -> None:
        """Progressive unfreezing: a new stage's parameters start training."""
        import ray.train.torch

        stage = _stage(self.cfg, self.spec, self.state["epoch"])
        if stage == self.stage:
            return
        self.stage = stage
        _unwrap(self.model).set_stage(stage, self.cfg.finetune.top_layers)
        # DDP syncs the parameters that required grad when it was built: wrap again.
        self.model = ray.train.torch.prepare_model(_unwrap(self.model))

    def train_epoch(self) -> EpochResult:
        """One pass over this worker's shard; stops (on every rank) at a NaN loss."""
        cfg, result = self.cfg, EpochResult()
        self.model.train()
        batches = self.batches(self.train_shard, shuffle=True)
        for step, batch in enumerate(batches):
            if cfg.optim.modality_dropout > 0 and self.spec.modality == "fusion":
                batch = drop_modality(batch, cfg.optim.modality_dropout, self.generator)
            loss = self.loss(forward(self.model, batch, self.device), batch)
            if _any_rank(not torch.isfinite(loss).item()):
                result.bad_loss = (float(loss), step)
                return result
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
            if step == 0 and self.worker.drill is not None:
                self.worker.drill.after_step(self.state["epoch"], self.rank, self.world_size)
            result.total += float(loss) * len(batch["id"])
            result.count += len(batch["id"])
        return result

    def loss(self, out, batch: dict) -> torch.Tensor:
        """The objective on a batch: the label's loss, plus ``dimension_weight`` times the
        dimensions' 1 - CCC (a model of dimensions alone: that alone)."""
        loss = out.logits.sum() * 0.0
        if self.spec.has_labels:
            loss = loss_fn(self.cfg.model.loss, out.logits, batch["label"].to(self.device))
        if out.dims is not None:  # the dimensions beside (or instead of) the label
            dims = batch["dims"].to(self.device)
            loss = loss + self.cfg.optim.dimension_weight * ccc_loss(out.dims, dims)
        return loss

    def batches(self, shard, shuffle: bool):
        """Model batches of a shard, in Arrow from Ray Data to the padded tensors (no Python
        object per row), padded per length bucket: ``BUCKET`` batches' worth of clips are
        sorted by length and cut into batches (random ties, batches in a random order when
        ``shuffle``), so a batch pads its clips to a length close to their own."""
        size, epoch = self.cfg.optim.batch_size, self.state["epoch"]
        chunks = shard.iter_batches(
            batch_size=size * BUCKET,
            batch_format="pyarrow",
            local_shuffle_buffer_size=2 * size * BUCKET if shuffle else None,
            local_shuffle_seed=self.cfg.run.seed + epoch if shuffle else None,
        )
        for chunk in chunks:
            for rows in buckets(chunk, size, self.generator if shuffle else None):
                yield self.collate.from_table(chunk.take(rows))

    def validate(self) -> dict:
        """Metrics of every worker's validation predictions together, and the mean loss: the
        label's (UA, ...) and each dimension's (CCC, ...; ``ccc``: their mean)."""
        labels, multi = self.spec.labels, self.spec.multi_label
        self.model.eval()
        y_true, y_pred, losses, dims_true, dims_pred, n = [], [], [], [], [], []
        with torch.no_grad():
            for batch in self.batches(self.val_shard, shuffle=False):
                out = forward(self.model, batch, self.device)
                losses.append(float(self.loss(out, batch)) * len(batch["id"]))
                n.append(len(batch["id"]))
                if out.dims is not None:
                    dims_true += batch["dims"].tolist()
                    dims_pred += out.dims.cpu().tolist()
                if not self.spec.has_labels:
                    continue
                target, logits = batch["label"], out.logits.cpu()
                y_true += target.bool().tolist() if multi else target.tolist()
                y_pred += (
                    (logits.sigmoid() > ON_SCORE).tolist() if multi else top_index(logits).tolist()
                )
        y_true, y_pred, losses, n = _gather(y_true), _gather(y_pred), _gather(losses), _gather(n)
        metrics: dict = {"n": sum(n)}
        if self.spec.has_labels and multi:
            shape = (len(y_true), len(labels))
            metrics = multilabel_metrics(
                np.reshape(y_true, shape), np.reshape(y_pred, shape), labels
            )
        elif self.spec.has_labels:
            metrics = classification_metrics(y_true, y_pred, labels)
        metrics["loss"] = sum(losses) / max(1, sum(n))
        if self.spec.dimensions:  # CCC, Pearson, RMSE of each (on every worker's clips)
            dims_true, dims_pred = _gather(dims_true), _gather(dims_pred)
            dims = dimension_metrics(dims_true, dims_pred, self.spec.dimensions)
            metrics["dimensions"] = dims
            metrics["ccc"] = float(np.mean([m["ccc"] for m in dims.values()]))
        return metrics

    def record(self, epoch: EpochResult, val: dict, started: float) -> dict:
        """The epoch's metrics; updates the best score and early-stopping count."""
        state = self.state
        state["epoch"] += 1
        score = val[score_name(self.spec.multi_label, self.spec.has_labels)]
        improved = score > state["best_score"]
        state["best_score"] = max(state["best_score"], score)
        state["bad_epochs"] = 0 if improved else state["bad_epochs"] + 1
        clips = sum(_gather([epoch.count]))
        metrics = {
            "epoch": state["epoch"],
            "train_clips": clips,  # every worker's shard, this epoch
            "val_clips": val["n"],
            "train_loss": sum(_gather([epoch.total])) / max(1, clips),
            "val_loss": val["loss"],
            "val_ua": val.get("ua"),  # None: a model of dimensions alone
            "val_wa": val.get("wa"),
            "val_macro_f1": val.get("macro_f1"),
            "val_score": score,  # what chooses the checkpoint (score_name)
            "epoch_s": time.perf_counter() - started,  # training and validation, this worker
        }
        for name, m in val.get("dimensions", {}).items():
            metrics[f"val_ccc_{name}"] = m["ccc"]
        if "ccc" in val:
            metrics["val_ccc"] = val["ccc"]
        if self.stage:
            params = _unwrap(self.model).parameters()
            metrics["trainable_params"] = sum(p.numel() for p in params if p.requires_grad)
        state["history"] = [*state.get("history", []), metrics]
        if self.rank == 0:
            storage.write_bytes(history_uri(self.cfg), json.dumps(state["history"]).encode())
        return metrics

    def checkpoint(self, metrics: dict, val: dict) -> None:
        """Report the epoch to Ray Train, with rank 0's checkpoint folder."""
        import ray.train

        with tempfile.TemporaryDirectory() as tmp:
            ckpt = None
            if self.rank == 0:
                checkpoint.save(
                    Path(tmp),
                    self.spec,
                    _unwrap(self.model).state_dict(),
                    optimizer=self.optimizer.state_dict(),
                    state=self.state,
                    config=dump_config(self.cfg),
                    card=CardFacts(
                        features=self.cfg.features,
                        train_clips=metrics["train_clips"],
                        split_by=self.cfg.data.split_by,
                        epochs=self.state["epoch"],
                        metrics={"validation": val},
                    ),
                )
                (Path(tmp) / VAL_METRICS_FILE).write_text(json.dumps(val))
                ckpt = ray.train.Checkpoint.from_directory(tmp)
            ray.train.report(metrics, checkpoint=ckpt)

    def stop_on_nan(self, bad_loss: tuple[float, int]) -> None:
        """Every rank stops here; rank 0 leaves the marker the driver reports."""
        if self.rank == 0:
            record = {
                "epoch": self.state["epoch"] + 1,
                "step": bad_loss[1],
                "loss": str(bad_loss[0]),
            }
            storage.write_bytes(nan_marker(self.cfg), json.dumps(record).encode())

    def run(self) -> None:
        self.setup()
        self.resume()
        self.distribute()
        state = self.state
        while (
            state["epoch"] < self.cfg.optim.epochs and state["bad_epochs"] < self.cfg.optim.patience
        ):
            self.unfreeze()
            started = time.perf_counter()
            epoch = self.train_epoch()
            if epoch.bad_loss is not None:  # no checkpoint of this epoch
                self.stop_on_nan(epoch.bad_loss)
                return
            val = self.validate()
            self.checkpoint(self.record(epoch, val, started), val)


def train_loop(config: dict) -> None:
    """Ray Train's entry point on each worker: ``config["run"]`` is a ``WorkerConfig``."""
    Recipe(config["run"]).run()
