"""The per-worker training loop run by Ray Train's TorchTrainer.

Every epoch: train on this worker's shard, validate on the gathered validation predictions of
all workers, report the metrics, and (rank 0) write a checkpoint. A restarted or re-run trial
resumes from the latest checkpoint, early-stopping state included.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import yaml

from raymer import storage
from raymer.models.builders import build_model
from raymer.training.data import collate
from raymer.training.metrics import ON_SCORE, classification_metrics, multilabel_metrics

MODEL_FILE, STATE_FILE, SPEC_FILE = "model.pt", "state.json", "model.json"


def loss_fn(kind: str, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``target``: label indices (B,), or multi-hot (B, L) for multi-label (bce only)."""
    if kind == "ce":
        return torch.nn.functional.cross_entropy(logits, target)
    if target.dim() == 1:
        target = torch.nn.functional.one_hot(target, logits.shape[-1])
    return torch.nn.functional.binary_cross_entropy_with_logits(logits, target.to(logits.dtype))


def _gather(values: list) -> list:
    if not dist.is_available() or not dist.is_initialized():
        return values
    out: list = [None] * dist.get_world_size()
    dist.all_gather_object(out, values)
    return [v for part in out for v in part]


def make_collate(spec: dict):
    """The batch collate of a model: padded cached features, or log-mel and token ids."""
    if spec.get("mode", "features") == "finetune":
        from raymer.models.registry import resolve_model
        from raymer.training.finetune_data import FinetuneCollate

        return FinetuneCollate(
            spec["labels"],
            resolve_model(spec["text_model"]),
            spec["n_mels"],
            spec["max_text_tokens"],
            multi_label=spec.get("multi_label", False),
        )
    return partial(collate, labels=spec["labels"], multi_label=spec.get("multi_label", False))


def score_name(spec: dict) -> str:
    """The metric that chooses checkpoints and stops early: UA, or macro-F1 for multi-label
    (``spec``: a model spec or a TrainConfig dump, both say ``multi_label``)."""
    return "macro_f1" if spec.get("multi_label") else "ua"


def _evaluate(model, shard, cfg: dict, spec: dict, device) -> dict:
    labels, multi = spec["labels"], spec.get("multi_label", False)
    model.eval()
    y_true, y_pred, losses = [], [], []
    with torch.no_grad():
        for batch in shard.iter_torch_batches(
            batch_size=cfg["batch_size"], collate_fn=make_collate(spec)
        ):
            out = model(
                *(batch[k].to(device) for k in ("audio", "audio_mask", "text", "text_mask"))
            )
            target = batch["label"].to(device)
            losses.append(float(loss_fn(cfg["loss"], out.logits, target)) * len(target))
            y_true += target.bool().tolist() if multi else target.tolist()
            y_pred += (
                (out.logits.sigmoid() > ON_SCORE).tolist()
                if multi
                else out.logits.argmax(-1).tolist()
            )
    y_true, y_pred, losses = _gather(y_true), _gather(y_pred), _gather(losses)
    if multi:
        shape = (len(y_true), len(labels))
        metrics = multilabel_metrics(np.reshape(y_true, shape), np.reshape(y_pred, shape), labels)
    else:
        metrics = classification_metrics(y_true, y_pred, labels)
    metrics["loss"] = sum(losses) / max(1, len(y_true))
    return metrics


def _save(directory: Path, model, optimizer, spec: dict, state: dict, cfg: dict) -> None:
    torch.save(_unwrap(model).state_dict(), directory / MODEL_FILE)
    torch.save(optimizer.state_dict(), directory / "optimizer.pt")
    (directory / STATE_FILE).write_text(json.dumps(state))
    (directory / SPEC_FILE).write_text(json.dumps(spec))
    (directory / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))


def history_uri(cfg: dict) -> str:
    """Every epoch's metrics, rewritten each epoch by rank 0 (checkpoints keep only the best)."""
    return storage.join(cfg["output"], cfg["name"], "history.json")


def nan_marker(cfg: dict) -> str:
    """Where a run that met a NaN loss says so (the driver turns it into a TrainingError)."""
    return storage.join(cfg["output"], cfg["name"], "nan_loss.json")


def _any_rank(flag: bool) -> bool:
    """True on every rank when ``flag`` is true on any: all ranks take the same branch."""
    if not dist.is_available() or not dist.is_initialized():
        return flag
    t = torch.tensor([float(flag)])
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def _failure_drill(config: dict, epoch: int, rank: int) -> None:
    """RAYMER_FAILURE_DRILL=EPOCH:MARKER: once (while MARKER is absent), worker rank 1 (or 0
    alone) dies in the middle of the epoch after EPOCH, after one optimizer step, so a run
    proves that it survives a lost worker. It waits a few seconds first: Ray Train registers
    a checkpoint when it polls the workers (every 2 s), and the drill is about the restart."""
    drill = config.get("failure_drill")
    if not drill:
        return
    at, _, marker = drill.partition(":")
    victim = min(1, config["world_size"] - 1)
    if epoch == int(at) and rank == victim and not os.path.exists(marker):
        time.sleep(6)
        Path(marker).write_text(f"worker {rank} killed in epoch {epoch + 1}\n")
        os._exit(1)


def _unwrap(model):
    return model.module if hasattr(model, "module") else model


def _drop_modality(batch: dict, p: float, generator: torch.Generator) -> dict:
    """Modality dropout: each clip loses its audio (probability p/2) or its text (p/2) for
    this step; its mask is emptied, so co-attention pools that modality to zero and the head
    learns to use either one alone instead of leaning on one."""
    n = len(batch["label"])
    draw = torch.rand(n, generator=generator)
    batch = dict(batch)
    no_audio, no_text = draw < p / 2, (draw >= p / 2) & (draw < p)
    batch["audio_mask"] = batch["audio_mask"] & ~no_audio[:, None]
    batch["text_mask"] = batch["text_mask"] & ~no_text[:, None]
    return batch


def _optimizer(model, cfg: dict, spec: dict) -> torch.optim.Optimizer:
    """AdamW; in fine-tune mode the encoders get their own (lower) learning rate. Frozen
    parameters have no gradient, and AdamW leaves them alone until they are unfrozen."""
    if spec.get("mode", "features") != "finetune":
        return torch.optim.AdamW(model.parameters(), lr=cfg["lr"], weight_decay=cfg["weight_decay"])
    encoder = {id(p) for p in model.encoder_parameters()}
    groups = [
        {"params": [p for p in model.parameters() if id(p) not in encoder], "lr": cfg["lr"]},
        {"params": model.encoder_parameters(), "lr": cfg["finetune"]["encoder_lr"]},
    ]
    return torch.optim.AdamW(groups, weight_decay=cfg["weight_decay"])


def _stage(cfg: dict, spec: dict, epoch: int) -> str | None:
    """The progressive-unfreezing stage of an epoch in fine-tune mode (None otherwise)."""
    if spec.get("mode", "features") != "finetune":
        return None
    from raymer.models.finetune import stage_at

    ft = cfg["finetune"]
    return stage_at(epoch, ft["unfreeze_top_at"], ft["unfreeze_all_at"])


def train_loop(config: dict) -> None:
    """``config``: ``cfg`` (TrainConfig as a dict) and ``spec`` (the model's hyperparameters)."""
    import ray.train
    import ray.train.torch

    cfg, spec = config["cfg"], config["spec"]
    torch.manual_seed(cfg["seed"])
    model = build_model(spec)
    if config.get("adapter_state"):  # the temporal embedding, trained before this run
        model.audio_adapter.load_state_dict(config["adapter_state"])
    if spec.get("init_text"):  # a text branch trained before (e.g. on GoEmotions)
        from raymer.models.transfer import load_text_branch
        from raymer.training.evaluate import load_spec, read_state

        source = load_spec(spec["init_text"])  # the checkpoint the driver resolved
        load_text_branch(model, read_state(source["checkpoint"]), source, spec)
    optimizer = _optimizer(model, cfg, spec)
    state = {"epoch": 0, "best_score": -1.0, "bad_epochs": 0}
    checkpoint = ray.train.get_checkpoint()
    if checkpoint:  # a restarted worker group or a re-run of the same run name
        with checkpoint.as_directory() as d:
            model.load_state_dict(torch.load(Path(d) / MODEL_FILE, map_location="cpu"))
            optimizer.load_state_dict(torch.load(Path(d) / "optimizer.pt", map_location="cpu"))
            state = json.loads((Path(d) / STATE_FILE).read_text())
        state["resumed_at"] = [*state.get("resumed_at", []), state["epoch"]]
    stage = _stage(cfg, spec, state["epoch"])
    if stage:
        model.set_stage(stage, cfg["finetune"]["top_layers"])
    model = ray.train.torch.prepare_model(model)
    device = ray.train.torch.get_device()
    collate_fn = make_collate(spec)
    train_shard = ray.train.get_dataset_shard("train")
    val_shard = ray.train.get_dataset_shard("val")
    rank = ray.train.get_context().get_world_rank()
    generator = torch.Generator().manual_seed(cfg["seed"] * 1000 + rank + 7919 * state["epoch"])
    config["world_size"] = ray.train.get_context().get_world_size()

    while state["epoch"] < cfg["epochs"] and state["bad_epochs"] < cfg["patience"]:
        if _stage(cfg, spec, state["epoch"]) != stage:  # progressive unfreezing
            stage = _stage(cfg, spec, state["epoch"])
            _unwrap(model).set_stage(stage, cfg["finetune"]["top_layers"])
            # DDP syncs the parameters that required grad when it was built: wrap again.
            model = ray.train.torch.prepare_model(_unwrap(model))
        started = time.perf_counter()
        model.train()
        total, count, bad_loss = 0.0, 0, None
        for step, batch in enumerate(
            train_shard.iter_torch_batches(
                batch_size=cfg["batch_size"],
                collate_fn=collate_fn,
                local_shuffle_buffer_size=4 * cfg["batch_size"],
                local_shuffle_seed=cfg["seed"] + state["epoch"],
            )
        ):
            if cfg.get("modality_dropout", 0) > 0 and spec["modality"] == "fusion":
                batch = _drop_modality(batch, cfg["modality_dropout"], generator)
            out = model(
                *(batch[k].to(device) for k in ("audio", "audio_mask", "text", "text_mask"))
            )
            loss = loss_fn(cfg["loss"], out.logits, batch["label"].to(device))
            if _any_rank(not torch.isfinite(loss).item()):
                bad_loss = (float(loss), step)
                break
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if step == 0:
                _failure_drill(config, state["epoch"], rank)
            total, count = total + float(loss) * len(batch["id"]), count + len(batch["id"])
        if bad_loss is not None:  # every rank stops here; no checkpoint of this epoch
            if rank == 0:
                record = {
                    "epoch": state["epoch"] + 1,
                    "step": bad_loss[1],
                    "loss": str(bad_loss[0]),
                }
                storage.write_bytes(nan_marker(cfg), json.dumps(record).encode())
            return
        val = _evaluate(model, val_shard, cfg, spec, device)
        state["epoch"] += 1
        score = val[score_name(spec)]
        improved = score > state["best_score"]
        state["best_score"] = max(state["best_score"], score)
        state["bad_epochs"] = 0 if improved else state["bad_epochs"] + 1
        clips = sum(_gather([count]))
        train_loss = sum(_gather([total])) / max(1, clips)
        metrics = {
            "epoch": state["epoch"],
            "train_clips": clips,  # every worker's shard, this epoch
            "val_clips": val["n"],
            "train_loss": train_loss,
            "val_loss": val["loss"],
            "val_ua": val["ua"],
            "val_wa": val["wa"],
            "val_macro_f1": val["macro_f1"],
            "val_score": score,  # what chooses the checkpoint (score_name)
            "epoch_s": time.perf_counter() - started,  # training and validation, this worker
        }
        if stage:
            metrics["trainable_params"] = sum(
                p.numel() for p in _unwrap(model).parameters() if p.requires_grad
            )
        state["history"] = [*state.get("history", []), metrics]
        if rank == 0:
            storage.write_bytes(history_uri(cfg), json.dumps(state["history"]).encode())
        with tempfile.TemporaryDirectory() as tmp:
            if rank == 0:
                _save(Path(tmp), model, optimizer, spec, state, cfg)
                (Path(tmp) / "val_metrics.json").write_text(json.dumps(val))
            ckpt = ray.train.Checkpoint.from_directory(tmp) if rank == 0 else None
            ray.train.report(metrics, checkpoint=ckpt)
