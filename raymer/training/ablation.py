"""``raymer compare --ablation``: what augmentation, audio normalisation (per recording or per
speaker), prosody, modality dropout and emotion dimensions as extra targets each do for
voices the model never heard.

The baseline (none of them), each option alone, and all together, trained ``runs`` times
each (seeds ``seed``, ``seed + 1``, ...: another initialisation and validation split) on the
same features, and scored on the held-out speakers (``test_speakers``) and on each
``heldout`` feature set (voices and sentences of their own, e.g. ``corpus synth --heldout``):
UA over all their clips and, with ``report_by``, per value of those columns (the sample
corpus's ``clip_type``: ``audio_cue`` clips carry their emotion in the voice only,
``text_cue`` clips in the words only). ``chosen``: the rule the defaults follow (``choose``).
The features must hold what the options read: augmented copies (extract's
``augment.copies``) and prosody (``prosody: true``).

Output::

    OUTPUT/ablation/VARIANT/run-K/   the run and its eval/
    OUTPUT/ablation.json, OUTPUT/ablation.md
"""

from __future__ import annotations

import json
import statistics

from raymer import storage
from raymer.config import TrainConfig
from raymer.contract.schema import AUGMENT
from raymer.errors import UsageError
from raymer.training.data import feature_columns
from raymer.training.evaluate import evaluate
from raymer.training.model_spec import extraction_settings
from raymer.training.trainer import refuse_multi_label, train

# a variant's settings, by dotted key (TrainConfig.updated)
OFF = {
    "data.use_augmented": False,
    "model.audio_norm": "none",
    "model.prosody": False,
    "optim.modality_dropout": 0.0,
    "model.targets": ["label"],
}
OPTIONS = {
    "augment": {"data.use_augmented": True},
    "recording_norm": {"model.audio_norm": "recording"},
    "speaker_norm": {"model.audio_norm": "speaker"},
    "prosody": {"model.prosody": True},
    "dropout": {"optim.modality_dropout": 0.3},
    "dimensions": {"model.targets": ["label", "arousal", "valence"]},
}
MARGIN = (
    0.02  # how much worse than the baseline on voice-only or words-only clips ``choose`` allows
)
DEFAULT_VARIANTS = ["baseline", *OPTIONS, "all"]
ALL = "augment+speaker_norm+prosody"


def settings_of(variant: str) -> dict:
    """A variant's settings: ``baseline`` (none), an option, ``all`` (augment, speaker_norm and
    prosody) or options joined by ``+`` (e.g. ``prosody+speaker_norm``)."""
    if variant == "baseline":
        return dict(OFF)
    names = (ALL if variant == "all" else variant).split("+")
    unknown = [n for n in names if n not in OPTIONS]
    norms = [n for n in names if n.endswith("_norm")]
    if unknown or len(norms) > 1:
        raise UsageError(
            f"ablation variant {variant!r}: "
            + (f"unknown {unknown}; " if unknown else "one norm at a time; ")
            + f"use baseline, all, or options joined by + from {list(OPTIONS)}"
        )
    out = dict(OFF)
    for n in names:
        out |= OPTIONS[n]
    return out


def ablation(
    cfg: TrainConfig,
    runs: int = 3,
    variants: list[str] | None = None,
    heldout: list[str] | None = None,
) -> dict:
    """Train and score every variant ``runs`` times (module docstring); ``heldout``: feature
    sets every run's checkpoint is scored on too."""
    refuse_multi_label(cfg, "the ablation")
    variants = variants or DEFAULT_VARIANTS
    heldout = list(heldout or [])
    _check(cfg, runs, variants)
    results: dict[str, list[dict]] = {}
    for name in variants:
        results[name] = []
        for k in range(runs):
            out = storage.join(cfg.output, "ablation", name, f"run-{k}")
            run = {"run.seed": cfg.run.seed + k, "run.name": name, "output": out}
            run_cfg = cfg.updated(**settings_of(name), **run)
            summary = train(run_cfg)
            m = _scores(cfg, summary.best_checkpoint, storage.join(out, "eval"))
            result = {"seed": cfg.run.seed + k, "ua": m["ua"], "n": m["n"], "by": m.get("by", {})}
            if run_cfg.model.audio_norm == "speaker":  # each test speaker's own statistics
                path = storage.join(out, "eval-speaker-stats")
                adaptive = _scores(cfg, summary.best_checkpoint, path, speaker_stats=True)
                result["adaptive"] = {"ua": adaptive["ua"], "by": adaptive.get("by", {})}
            result["heldout"] = {}
            for i, features in enumerate(heldout, 1):
                at = storage.join(out, f"eval-heldout-{i}")
                m = evaluate(summary.best_checkpoint, features, at, None, None, cfg.data.report_by)
                m = m.to_json()
                result["heldout"][features] = {"ua": m["ua"], "n": m["n"], "by": m.get("by", {})}
            results[name].append(result)
    summary = {n: summarise(r) for n, r in results.items()}
    report = {
        "test_speakers": cfg.data.test_speakers,
        "heldout": heldout,
        "modality": cfg.model.modality,
        "runs": runs,
        "variants": {n: settings_of(n) for n in variants},
        "results": results,
        "summary": summary,
        "chosen": {
            where: choose(summary, where)
            for where in ["test_speakers", *heldout]
            if "baseline" in summary
        },
    }
    table = ablation_markdown(report)
    storage.write_bytes(
        storage.join(cfg.output, "ablation.json"), json.dumps(report, indent=2).encode()
    )
    storage.write_bytes(storage.join(cfg.output, "ablation.md"), table.encode())
    return report | {"markdown": table}


def _scores(cfg: TrainConfig, checkpoint: str, out: str, speaker_stats: bool = False) -> dict:
    """A run's scores on the held-out speakers (and per ``report_by`` value)."""
    return evaluate(
        checkpoint,
        cfg.features,
        out,
        cfg.data.test_speakers,
        None,
        cfg.data.report_by,
        speaker_stats=speaker_stats,
    ).to_json()


def _check(cfg: TrainConfig, runs: int, variants: list[str]) -> None:
    settings = [settings_of(v) for v in variants]  # refuses an unknown one, by name
    if runs < 1:
        raise UsageError(f"--runs must be at least 1, got {runs}")
    if not cfg.data.test_speakers:
        raise UsageError("the ablation scores held-out speakers: set test_speakers")
    if any(s["data.use_augmented"] for s in settings) and AUGMENT not in feature_columns(
        cfg.features
    ):
        raise UsageError(
            f"the augment variants need augmented copies; the features under {cfg.features} "
            "have none: extract with augment.copies=1 (or more)"
        )
    if any(s["model.prosody"] for s in settings) and not extraction_settings(cfg.features).prosody:
        raise UsageError(
            f"the prosody variants need prosody; the features under {cfg.features} were "
            "extracted without it: extract with prosody: true"
        )


def summarise(runs: list[dict]) -> dict:
    """Mean and standard deviation over runs: UA, and UA per value of each ``by`` column;
    the same on each held-out set (``heldout``)."""
    out = {"ua": _spread([r["ua"] for r in runs]), "by": {}}
    for column, values in runs[0]["by"].items():
        out["by"][column] = {v: _spread([r["by"][column][v]["ua"] for r in runs]) for v in values}
    if "adaptive" in runs[0]:  # audio_norm speaker, with each test speaker's statistics
        out["adaptive"] = summarise([r["adaptive"] for r in runs])
    if runs[0].get("heldout"):
        out["heldout"] = {h: summarise([r["heldout"][h] for r in runs]) for h in runs[0]["heldout"]}
    return out


def choose(summary: dict, where: str = "test_speakers") -> str:
    """The variant the defaults follow, on the clips of ``where`` (``test_speakers`` or a
    held-out set): the best mean UA among those whose voice-only (``clip_type=audio_cue``)
    and words-only (``text_cue``) UA are each no more than ``MARGIN`` under the
    baseline's (every variant where the features have no clip types)."""

    def scores(name: str) -> dict:
        s = summary[name]
        return s if where == "test_speakers" else s["heldout"][where]

    base = scores("baseline")["by"].get("clip_type", {})
    fair = []
    for name in summary:
        types = scores(name)["by"].get("clip_type", {})
        worse = [
            t
            for t in ("audio_cue", "text_cue")
            if t in base and types[t]["mean"] < base[t]["mean"] - MARGIN
        ]
        if not worse:
            fair.append(name)
    return max(fair, key=lambda n: scores(n)["ua"]["mean"])


def _spread(values: list[float]) -> dict:
    return {
        "mean": statistics.fmean(values),
        "std": statistics.stdev(values) if len(values) > 1 else 0.0,
        "values": values,
    }


def ablation_markdown(report: dict) -> str:
    title = (
        f"Held-out speakers {', '.join(report['test_speakers'])}, {report['modality']} model: "
        f"mean ± std over {report['runs']} runs (seeds)."
    )
    lines = _table(title, report["summary"], report.get("chosen", {}).get("test_speakers"))
    for where in report.get("heldout", []):
        summary = {n: s["heldout"][where] for n, s in report["summary"].items()}
        title = f"Held-out set {where}: the same checkpoints."
        lines += ["", *_table(title, summary, report.get("chosen", {}).get(where))]
    return "\n".join(lines) + "\n"


def _table(title: str, summary: dict, chosen: str | None) -> list[str]:
    first = next(iter(summary.values()))
    by = [(c, v) for c, values in first["by"].items() for v in values]
    header = "| variant | UA (all clips) | " + " | ".join(f"UA {c}={v}" for c, v in by) + " |"
    lines = [title, "", header, "| --- | --- |" + " --- |" * len(by)]
    for name, s in summary.items():
        cells = [_cell(s["ua"])] + [_cell(s["by"][c][v]) for c, v in by]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
        if "adaptive" in s:
            adaptive = s["adaptive"]
            cells = [_cell(adaptive["ua"])] + [_cell(adaptive["by"][c][v]) for c, v in by]
            lines.append(f"| {name}, speaker-adaptive | " + " | ".join(cells) + " |")
    if any("adaptive" in s for s in summary.values()):
        lines += [
            "",
            "An audio_norm speaker model is scored as every path scores it (the training "
            "speakers' pooled statistics); *speaker-adaptive*: with each test speaker's own "
            "statistics over all its clips (`evaluate --speaker-stats`).",
        ]
    if chosen:
        lines += [
            "",
            f"Chosen by the rule (the best UA; voice-only and words-only UA each no more than "
            f"{MARGIN} under the baseline's): **{chosen}**.",
        ]
    return lines


def _cell(spread: dict) -> str:
    return f"{spread['mean']:.3f} ± {spread['std']:.3f}"
