"""``raymer crossval``: leave-one-speaker-out (or leave-one-session-out) folds.

Each fold holds one group (a value of ``split_by``) out as its test set, picks validation
groups from the rest (``val_fraction``, seeded; the checkpoint is chosen on them, never on the
test fold), trains, and scores the best checkpoint on the held-out group. The report gives
every fold, the mean and standard deviation over folds, and the metrics of all folds'
predictions pooled. Several modalities give the paper's comparison with a spread. A model
with emotion dimensions (``targets``) reports each one's CCC the same way (``ccc_<name>``),
and its pooled CCC, Pearson's r and RMSE.

Output::

    OUTPUT/MODALITY/fold-GROUP/   the run (checkpoints, train_summary.json) and eval/
    OUTPUT/crossval.json, OUTPUT/crossval.md
"""

from __future__ import annotations

import json
import statistics

import pyarrow as pa
import pyarrow.parquet as pq

from raymer import storage
from raymer.config import TrainConfig
from raymer.errors import UsageError
from raymer.training.data import read_index
from raymer.training.evaluate import dimension_scores, evaluate
from raymer.training.metrics import classification_metrics
from raymer.training.results import CrossvalReport
from raymer.training.trainer import refuse_multi_label, train

KEYS = ("ua", "wa", "macro_f1")


def crossval(
    cfg: TrainConfig, modalities: list[str] | None = None, folds: list[str] | None = None
) -> CrossvalReport:
    refuse_multi_label(cfg, "crossval")
    modalities = modalities or [cfg.model.modality]
    groups = sorted(set(read_index(cfg.features, cfg.data.split_by).speakers))
    folds = folds or groups
    unknown = sorted(set(folds) - set(groups))
    if unknown:
        raise UsageError(f"folds {unknown} are not {cfg.data.split_by}s of the features ({groups})")
    if len(groups) < 3:
        raise UsageError(
            f"crossval needs at least 3 {cfg.data.split_by}s (test, validation, training); "
            f"the features have {groups}"
        )
    dims = cfg.model.dimensions
    keys = (*KEYS, *(f"ccc_{d}" for d in dims))
    results: dict[str, dict] = {}
    for modality in modalities:
        per_fold, predictions = {}, []
        for group in folds:
            out = storage.join(cfg.output, modality, f"fold-{group}")
            fold_cfg = cfg.updated(
                **cfg.model.as_modality(modality),
                **{
                    "run.name": modality,
                    "output": out,
                    "data.test_speakers": [group],
                    "data.val_speakers": [],
                },
            )
            summary = train(fold_cfg)
            eval_dir = storage.join(out, "eval")
            m = evaluate(
                summary.best_checkpoint, cfg.features, eval_dir, None, {cfg.data.split_by: [group]}
            )
            per_fold[group] = {k: m.scores[k] for k in KEYS} | {"n": m.n}
            per_fold[group] |= {f"ccc_{d}": m.dimensions[d]["ccc"] for d in dims}
            per_fold[group] |= {"val": summary.val_speakers, "val_ua": summary.best_val_ua}
            fs, path = storage.filesystem(storage.join(eval_dir, "predictions.parquet"))
            read = ["label", "predicted", *dims, *(f"predicted_{d}" for d in dims)]
            predictions.append(pq.read_table(path, filesystem=fs, columns=read))
        results[modality] = {
            "folds": per_fold,
            "mean": {k: statistics.fmean(f[k] for f in per_fold.values()) for k in keys},
            "std": {k: _std([f[k] for f in per_fold.values()]) for k in keys},
            "pooled": _pooled(pa.concat_tables(predictions, promote_options="permissive"), dims),
        }
    report = CrossvalReport(cfg.data.split_by, folds, results)
    report.markdown = crossval_markdown(report.to_json())
    text = json.dumps(report.to_json(), indent=2)
    storage.write_bytes(storage.join(cfg.output, "crossval.json"), text.encode())
    storage.write_bytes(storage.join(cfg.output, "crossval.md"), report.markdown.encode())
    return report


def _std(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


def _pooled(table: pa.Table, dims: list[str] = ()) -> dict:
    true, pred = table.column("label").to_pylist(), table.column("predicted").to_pylist()
    labels = sorted(set(true) | set(pred))
    index = {lab: i for i, lab in enumerate(labels)}
    y_true, y_pred = [index[x] for x in true], [index[x] for x in pred]
    m = classification_metrics(y_true, y_pred, labels)
    out = {k: m[k] for k in (*KEYS, "n")}
    if dims:
        out["dimensions"] = dimension_scores(table, dims)
    return out


def crossval_markdown(report: dict) -> str:
    split = report["split_by"]
    lines = [
        f"Leave-one-{split}-out, {len(report['folds'])} folds: mean ± std over folds "
        "(pooled: all folds' predictions together).",
        "",
    ]
    first = next(iter(report["results"].values()))
    keys = list(first["mean"])  # UA, WA, macro-F1, then each dimension's CCC
    names = [{"ua": "UA", "wa": "WA", "macro_f1": "macro-F1"}.get(k, k) for k in keys]
    lines += ["| model | " + " | ".join(names) + " | pooled UA |"]
    lines += ["| --- |" + " --- |" * (len(keys) + 1)]
    for modality, r in report["results"].items():
        cells = [f"{r['mean'][k]:.3f} ± {r['std'][k]:.3f}" for k in keys]
        lines.append(f"| {modality} | " + " | ".join(cells) + f" | {r['pooled']['ua']:.3f} |")
    lines += ["", f"| {split} (test fold) | " + " | ".join(report["results"]) + " |"]
    lines.append("| --- |" + " --- |" * len(report["results"]))
    for group in report["folds"]:
        cells = [
            f"{r['folds'][group]['ua']:.3f} ({r['folds'][group]['n']})"
            for r in report["results"].values()
        ]
        lines.append(f"| {group} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
