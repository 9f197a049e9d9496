"""``raymer compare``: fusion against audio-only and text-only, like the paper's Table 1.

Trains the three modalities with the same config and scores each on what none of them saw:
the held-out speakers (``test_speakers``) and, when ``holdout`` is set, the held-out groups
(e.g. unseen sentence templates). Writes ``comparison.json`` and ``comparison.md``.
"""

from __future__ import annotations

import json

from raymer import storage
from raymer.config import TrainConfig
from raymer.errors import UsageError
from raymer.trained.checkpoint import COMPARISON_FILE, write_card
from raymer.training.evaluate import evaluate
from raymer.training.report import card_facts
from raymer.training.results import ComparedModel, Comparison, Evaluation
from raymer.training.trainer import refuse_multi_label, train

MODALITIES = ("fusion", "audio", "text")


def compare(cfg: TrainConfig) -> Comparison:
    refuse_multi_label(cfg, "compare")
    if not cfg.data.test_speakers and not cfg.data.holdout:
        raise UsageError("compare needs test_speakers or holdout: something no model trains on")
    results: dict[str, ComparedModel] = {}
    for modality in MODALITIES:
        out = storage.join(cfg.output, modality)
        summary = train(
            cfg.updated(**cfg.model.as_modality(modality), **{"run.name": modality, "output": out})
        )
        row = ComparedModel(summary.best_checkpoint, summary.best_val_ua)
        facts = card_facts(cfg, summary)
        # What no model trained on: the held-out speakers, and the held-out groups.
        for key, speakers, where in (
            ("speakers", cfg.data.test_speakers, None),
            ("holdout", None, cfg.data.holdout),
        ):
            if speakers or where:
                eval_dir = storage.join(out, f"eval-{key}")
                m = evaluate(
                    summary.best_checkpoint,
                    cfg.features,
                    eval_dir,
                    speakers,
                    where,
                    cfg.data.report_by,
                )
                scores = _scores(m)
                setattr(row, key, scores)
                facts.metrics[f"test ({_set_name(key, cfg)})"] = scores
        write_card(summary.best_checkpoint, facts)
        results[modality] = row
    comparison = Comparison(results, "")
    comparison.markdown = comparison_markdown(comparison.to_json(), cfg)
    text = json.dumps(comparison.to_json(), indent=2)
    storage.write_bytes(storage.join(cfg.output, COMPARISON_FILE), text.encode())
    storage.write_bytes(storage.join(cfg.output, "comparison.md"), comparison.markdown.encode())
    return comparison


def _set_name(key: str, cfg: TrainConfig) -> str:
    if key == "speakers":
        return f"held-out speakers {', '.join(cfg.data.test_speakers)}"
    return "held-out " + ", ".join(f"{k}s" for k in cfg.data.holdout)


def _scores(m: Evaluation) -> dict:
    """What the comparison keeps of an evaluation: UA, WA, macro-F1, n, the dimensions and
    the scores per ``report_by`` value."""
    out = {"ua": m.ua, "wa": m.wa, "macro_f1": m.macro_f1, "n": m.n}
    out |= {"dimensions": m.dimensions} if m.dimensions else {}
    return out | ({"by": m.by} if m.by else {})


def _dimension_lines(results: dict, sets: list[str], names: dict) -> list[str]:
    """CCC / Pearson r / RMSE of each emotion dimension, per model and set (none: none)."""
    dims = list(results[MODALITIES[0]][sets[0]].get("dimensions", {})) if sets else []
    if not dims:
        return []
    lines = ["", "Dimensions, CCC / Pearson r / RMSE:", ""]
    lines.append("| model | " + " | ".join(f"{d}, {names[s]}" for s in sets for d in dims) + " |")
    lines.append("| --- |" + " --- |" * (len(sets) * len(dims)))
    for modality, row in results.items():
        cells = [
            "{ccc:.3f} / {pearson:.3f} / {rmse:.3f}".format(**row[s]["dimensions"][d])
            for s in sets
            for d in dims
        ]
        lines.append(f"| {modality} | " + " | ".join(cells) + " |")
    return lines


def comparison_markdown(results: dict, cfg: TrainConfig) -> str:
    sets = [k for k in ("speakers", "holdout") if k in results[MODALITIES[0]]]
    names = {
        "speakers": f"held-out speakers ({', '.join(cfg.data.test_speakers)})",
        "holdout": "held-out " + ", ".join(f"{k}s" for k in cfg.data.holdout),
    }
    header = "| model | " + " | ".join(f"{names[s]}: UA / WA / F1 (n)" for s in sets) + " |"
    lines = [header, "| --- |" + " --- |" * len(sets)]
    for modality, row in results.items():
        cells = [
            f"{row[s]['ua']:.3f} / {row[s]['wa']:.3f} / {row[s]['macro_f1']:.3f} ({row[s]['n']})"
            for s in sets
        ]
        lines.append(f"| {modality} | " + " | ".join(cells) + " |")
    lines += _dimension_lines(results, sets, names)
    for s in sets:
        for column, values in results[MODALITIES[0]][s].get("by", {}).items():
            lines += ["", f"UA per {column}, {names[s]}:", ""]
            lines.append("| model | " + " | ".join(f"{v}" for v in values) + " |")
            lines.append("| --- |" + " --- |" * len(values))
            for modality, row in results.items():
                by = row[s]["by"][column]
                cells = [f"{by[v]['ua']:.3f} ({by[v]['n']})" if v in by else "-" for v in values]
                lines.append(f"| {modality} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
