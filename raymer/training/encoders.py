"""``raymer compare --encoders``: which pretrained encoders to extract with, measured.

The config's features and each ``--encoders`` feature set are the same corpus extracted with
other encoders (``asr_model``, ``text_model``). The config's model is trained ``runs`` times
on each (seeds ``seed``, ``seed + 1``, ...) and scored on the held-out speakers
(``test_speakers``: voices no run trained on; per ``report_by`` value too); each row also
says what its extraction cost, read from the extraction's own ``summary.json``: the word
error rate of its transcripts and the rows it wrote per second, and the memory its encoders
hold (``encoder_memory``: the peak resident memory of a fresh process that loads both and
runs one clip through them, over that of one that only imports them).

Output::

    OUTPUT/encoders/K/run-J/   set K's runs and their eval/
    OUTPUT/encoders.json, OUTPUT/encoders.md
"""

from __future__ import annotations

import json
import statistics
from dataclasses import asdict, dataclass

from raymer import storage
from raymer.config import ExtractSettings, TrainConfig
from raymer.errors import UsageError
from raymer.training.evaluate import evaluate
from raymer.training.model_spec import extraction_settings
from raymer.training.trainer import refuse_multi_label, train


@dataclass
class EncoderSet:
    """One feature set's row: its encoders, what extracting it cost, and its runs' scores."""

    features: str
    asr_model: str
    text_model: str
    wer: float | None  # of the extraction's transcripts (None: no reference text)
    rows_per_s: float | None  # rows written (clips and copies) per second of the extraction
    memory_mb: float  # encoder_memory
    ua: list[float]  # per run, on the held-out speakers
    by: dict  # report_by column -> value -> UA per run

    @property
    def name(self) -> str:
        return f"{self.asr_model} + {self.text_model}"


def compare_encoders(cfg: TrainConfig, feature_sets: list[str], runs: int = 3) -> dict:
    """Train and score the config's model on ``cfg.features`` and each of ``feature_sets``
    (module docstring); writes ``encoders.json`` and ``encoders.md``."""
    refuse_multi_label(cfg, "the encoder comparison")
    if runs < 1:
        raise UsageError(f"--runs must be at least 1, got {runs}")
    if not cfg.data.test_speakers:
        raise UsageError("the encoder comparison scores held-out speakers: set test_speakers")
    sets = [cfg.features, *feature_sets]
    settings = [extraction_settings(f) for f in sets]  # each set readable, before any run
    rows = []
    for k, (features, extract) in enumerate(zip(sets, settings, strict=True)):
        scores = []
        for j in range(runs):
            out = storage.join(cfg.output, "encoders", str(k), f"run-{j}")
            seed = cfg.run.seed + j
            run_cfg = cfg.updated(
                features=storage.absolute(features),
                output=out,
                **{"run.seed": seed, "run.name": f"encoders-{k}"},
            )
            summary = train(run_cfg)
            m = evaluate(
                summary.best_checkpoint,
                run_cfg.features,
                storage.join(out, "eval"),
                cfg.data.test_speakers,
                None,
                cfg.data.report_by,
            ).to_json()
            scores.append(m)
        rows.append(_row(features, extract, scores))
    report = {
        "test_speakers": cfg.data.test_speakers,
        "modality": cfg.model.modality,
        "runs": runs,
        "sets": [asdict(r) | {"name": r.name} for r in rows],
    }
    table = encoders_markdown(report)
    storage.write_bytes(
        storage.join(cfg.output, "encoders.json"), json.dumps(report, indent=2).encode()
    )
    storage.write_bytes(storage.join(cfg.output, "encoders.md"), table.encode())
    return report | {"markdown": table}


def _row(features: str, extract: ExtractSettings, scores: list[dict]) -> EncoderSet:
    made = _extraction_summary(features)
    rows = made.get("clips_ok", 0) + made.get("copies", 0)
    wall = made.get("wall_s") or 0
    by: dict = {}
    for m in scores:
        for column, values in m.get("by", {}).items():
            for value, s in values.items():
                by.setdefault(column, {}).setdefault(value, []).append(s["ua"])
    return EncoderSet(
        features=features,
        asr_model=extract.asr_model,
        text_model=extract.text_model,
        wer=made.get("wer"),
        rows_per_s=rows / wall if rows and wall > 0 else None,
        memory_mb=encoder_memory(extract.asr_model, extract.text_model, extract.compute_type),
        ua=[m["ua"] for m in scores],
        by=by,
    )


def _extraction_summary(features: str) -> dict:
    """The ``summary.json`` of the extraction that made ``features`` (an extraction output
    or its features/ folder); empty where there is none (features made elsewhere)."""
    from raymer.training.data import features_path

    root = features if features_path(features) != features else storage.parent(features)
    uri = storage.join(root, "summary.json")
    return json.loads(storage.read_bytes(uri)) if storage.exists(uri) else {}


def encoder_memory(asr_model: str, text_model: str, compute_type: str = "default") -> float:
    """MB the two encoders hold on CPU: the peak resident memory of a fresh process that
    loads both and runs one 5 s clip and its sentence through them, less the peak of the same
    process after its imports (a spawned process: nothing else of this one is counted)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=spawn) as pool:
        before, after = pool.submit(_load_and_run, asr_model, text_model, compute_type).result()
    return (after - before) / 1024


def _peak_kib() -> int:
    """This process's peak resident memory in KiB: ``VmHWM`` where Linux gives it (its own
    since it started; ``ru_maxrss`` also counts the parent it was forked from), else
    ``ru_maxrss``."""
    import resource

    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _load_and_run(asr_model: str, text_model: str, compute_type: str) -> tuple[int, int]:

    import faster_whisper  # noqa: F401  the libraries' own memory is not the encoders'
    import numpy as np
    import torch  # noqa: F401
    import transformers  # noqa: F401

    from raymer.models.registry import resolve_model
    from raymer.models.text_encoder import TextEncoder
    from raymer.models.whisper import WhisperFeaturizer

    before = _peak_kib()
    asr = WhisperFeaturizer(resolve_model(asr_model), compute_type=compute_type, cpu_threads=1)
    text = TextEncoder(resolve_model(text_model), threads=1)
    clip = np.random.default_rng(0).normal(0, 0.01, 16_000 * 5).astype(np.float32)
    text([asr([clip])[0].transcript or "a sentence of ordinary length to encode"])
    return before, _peak_kib()


def encoders_markdown(report: dict) -> str:
    """The comparison table: one row per feature set, mean ± std over the runs."""
    sets = report["sets"]
    by = [(c, v) for c, values in (sets[0]["by"] if sets else {}).items() for v in values]
    lines = [
        f"Held-out speakers {', '.join(report['test_speakers'])}, {report['modality']} model: "
        f"UA mean ± std over {report['runs']} runs (seeds); WER and rows per second of each "
        "set's extraction (its summary.json); memory the encoders hold on CPU.",
        "",
        "| encoders | UA (all clips) | "
        + "".join(f"UA {c}={v} | " for c, v in by)
        + "WER | rows/s | memory |",
        "| --- | --- |" + " --- |" * len(by) + " --- | --- | --- |",
    ]
    for s in sets:
        cells = [_spread(s["ua"])] + [_spread(s["by"][c][v]) for c, v in by]
        wer = "-" if s["wer"] is None else f"{100 * s['wer']:.1f}%"
        rate = "-" if s["rows_per_s"] is None else f"{s['rows_per_s']:.2f}"
        cells += [wer, rate, f"{s['memory_mb']:.0f} MB"]
        lines.append(f"| {s['name']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _spread(values: list[float]) -> str:
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):.3f} ± {std:.3f}"
