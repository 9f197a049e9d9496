"""The model card (``README.md``) of a checkpoint folder: what the model recognises, what it
was trained on, how well it did, and how its inputs must be made, for a person (Markdown)
and for tools (the YAML front matter, as Hugging Face model cards have)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import yaml

if TYPE_CHECKING:
    from raymer.contract.spec import ModelSpec

CARD_FILE = "README.md"
METRICS = (("ua", "UA"), ("wa", "WA"), ("macro_f1", "macro-F1"))


@dataclass
class CardFacts:
    """What a card says beyond the spec. ``metrics``: split name (``validation``,
    ``test: held-out speakers``...) -> {"ua", "wa", "macro_f1", "n"} (and for a model with
    emotion dimensions ``dimensions``: {name: {"ccc", ...}}, as evaluate writes them)."""

    features: str | None = None
    train_clips: int | None = None
    speakers: dict[str, list[str]] = field(default_factory=dict)
    split_by: str = "speaker"
    epochs: int | None = None
    metrics: dict[str, dict] = field(default_factory=dict)
    created: str = field(
        default_factory=lambda: dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()
    )


def render(spec: ModelSpec, facts: CardFacts, where: str = "PATH") -> str:
    """The card's Markdown; ``where``: the folder named in the usage lines."""
    columns = _columns(spec)
    scores = {
        split: {k: float(v) for k, _ in columns if (v := _value(m, k)) is not None}
        | ({"n": int(m["n"])} if m.get("n") is not None else {})
        for split, m in facts.metrics.items()
    }
    return "\n".join(
        [
            *_front(spec, facts, scores),
            *_about(spec),
            *_training(facts),
            *_metrics(scores, columns),
            *_inputs(spec),
            *_use(where),
        ]
    )


def _columns(spec: ModelSpec) -> list[tuple[str, str]]:
    """The scores a card shows: UA, WA, macro-F1, and the CCC of each dimension."""
    return [*METRICS, *((f"ccc_{d}", f"CCC {d}") for d in spec.dimensions)]


def _value(metrics: dict, key: str) -> float | None:
    if key.startswith("ccc_"):
        return metrics.get("dimensions", {}).get(key[4:], {}).get("ccc")
    return metrics.get(key)


def _front(spec: ModelSpec, facts: CardFacts, scores: dict) -> list[str]:
    from raymer import __version__

    front = {
        "library_name": "raymer",
        "raymer_version": __version__,
        "created": facts.created,
        "tags": ["speech-emotion-recognition", "multimodal", spec.modality],
        "modality": spec.modality,
        "mode": spec.mode,
        "labels": list(spec.labels),
        "targets": list(spec.targets),
        "multi_label": spec.multi_label,
        "metrics": {  # 4 decimals here; the table rounds the values themselves
            split: {k: v if k == "n" else round(v, 4) for k, v in m.items()}
            for split, m in scores.items()
        },
    }
    return ["---", yaml.safe_dump(front, sort_keys=False).rstrip(), "---", ""]


def _about(spec: ModelSpec) -> list[str]:
    inputs = {
        "fusion": "speech and its transcript (Whisper encoder frames and the transcript's "
        "token states, fused by alternating co-attention)",
        "audio": "speech alone (Whisper encoder frames)",
        "text": "text alone (the text encoder's token states)",
    }[spec.modality]
    rule = (
        "Multi-label: every label whose score passes 0.5."
        if spec.multi_label
        else "The label is the highest score."
    )
    scores = "sigmoid" if spec.loss == "bce" and spec.temperature is None else "softmax"
    if not spec.labels:  # a model of dimensions alone
        return [
            f"# raymer emotion model: {spec.modality} ({spec.mode})",
            "",
            f"Rates {', '.join(spec.dimensions)} from {inputs}; no labels.",
            "",
            *_dimensions(spec),
        ]
    return [
        f"# raymer emotion model: {spec.modality} ({spec.mode})",
        "",
        f"Recognises {', '.join(spec.labels)} from {inputs}.",
        "",
        "## Labels",
        "",
        f"{len(spec.labels)} labels, in output order: {', '.join(spec.labels)}. {rule} "
        f"Scores: {scores} of the logits{_temperature(spec)}.",
        "",
        *_dimensions(spec),
    ]


def _temperature(spec: ModelSpec) -> str:
    if spec.temperature is None:
        return ""
    return (
        f" (calibrated: a softmax of the logits divided by {spec.temperature:.3g}, the "
        "temperature fitted on the validation clips, so that a top score says how often such "
        "an answer is right)"
    )


def _dimensions(spec: ModelSpec) -> list[str]:
    if not spec.dimensions:
        return []
    return [
        "## Dimensions",
        "",
        f"Also answers {', '.join(spec.dimensions)} in -1..1 (a regression head on the same "
        "fusion body, trained with 1 - CCC); a long recording's are its segments' values "
        "weighted by their speech time.",
        "",
    ]


def _training(facts: CardFacts) -> list[str]:
    lines = ["## Training data", "", f"- features: `{facts.features or 'not recorded'}`"]
    if facts.train_clips is not None:
        lines.append(f"- training clips: {facts.train_clips:,}")
    for split, names in facts.speakers.items():
        if names:
            more = f" (+{len(names) - 12} more)" if len(names) > 12 else ""
            lines.append(
                f"- {split} {facts.split_by}s ({len(names)}): {', '.join(names[:12])}{more}"
            )
    if facts.epochs is not None:
        lines.append(f"- epochs: {facts.epochs}")
    return [*lines, ""]


def _metrics(scores: dict, columns: list[tuple[str, str]]) -> list[str]:
    lines = ["## Metrics", ""]
    if scores:
        lines += [
            "| split | " + " | ".join(name for _, name in columns) + " | clips |",
            "| --- |" + " --- |" * (len(columns) + 1),
        ]
        for split, m in scores.items():
            cells = [f"{m[k]:.3f}" if k in m else "-" for k, _ in columns]
            lines.append(f"| {split} | " + " | ".join(cells) + f" | {m.get('n', '-')} |")
    if not any(s.startswith("test") for s in scores):
        lines += ["", "No test score yet: `raymer evaluate --checkpoint PATH` on held-out data."]
    return [*lines, ""]


def _inputs(spec: ModelSpec) -> list[str]:
    lines = [
        "## How its inputs are made",
        "",
        "Serving and recognition make their inputs with these settings, as extraction did:",
        "",
        "| setting | value |",
        "| --- | --- |",
        *(f"| {k} | `{v}` |" for k, v in spec.extract.model_dump().items()),
    ]
    if spec.finetune:
        lines.append(f"| fine-tuned encoders | `{spec.asr_model}`, `{spec.text_model}` |")
    return [*lines, ""]


def _use(where: str) -> list[str]:
    return [
        "## Use",
        "",
        "```python",
        "import raymer",
        "",
        f'recognizer = raymer.Recognizer.from_checkpoint("{where}")',
        'print(recognizer.predict("clip.wav"))',
        "```",
        "",
        f"`raymer serve --checkpoint {where}` serves it over HTTP; `raymer recognize CORPUS "
        f"--checkpoint {where} --output OUT` runs it on a corpus.",
        "",
    ]
