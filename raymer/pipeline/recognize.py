"""``raymer recognize``: a corpus of any size and any recording length -> emotions, in one
streaming Ray Data job.

    read -> decode and segment (tasks) -> Whisper (actors) -> text encoder and the
    checkpoint's model (actors) -> OUTPUT/predictions/ (Parquet)

then, aggregated by Ray Data over the predictions, one row per recording. The driver never
holds the corpus: inputs are read by Ray Data's readers (or listed a folder at a time),
resume is an anti-join against the segments already written, and the summary is computed by
Ray Data. Layout of the output root:

    predictions/    one row per segment (``recognize_stages.prediction_schema``)
    recordings/     one row per recording: length, segments, speech, label, share_<label>
    errors/         errors.parquet: id, path, stage, error of every recording that failed
    features/       the model's inputs per segment (``keep_features: true``)
    plots/          <id>.png per recording of more than one segment, summary.png
    config.yaml     the resolved config (a run with other settings is refused, or with
                    ``redo`` replaces the output);  summary.json  the last run's counts
    _SUCCESS.json   written when a run ends;  _lease.json  while one runs
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import asdict, dataclass

from raymer import checkpoint, storage
from raymer.config import dump_config
from raymer.config.recognize import RecognizeConfig
from raymer.corpora.manifest import check_input
from raymer.errors import UsageError
from raymer.extras import can_plot
from raymer.pipeline.outputs import (
    SCRATCH,
    Lease,
    check_settings,
    claim,
    clear_done,
    drop_truncated,
    mark_done,
    save_settings,
)
from raymer.runtime import READ_ARGS, init_ray, shuffle_by_sort

# Rows per Parquet file: the model stage's batches are small, its files must not be.
STAGED_ROWS = 1_000  # what a crash can lose (it is redone on resume)
PUBLISHED_ROWS = 20_000


@dataclass
class RecognizeSummary:
    """What the output holds after a run, and what this run did."""

    recordings: int  # in the output
    segments: int
    audio_hours: float
    speech_hours: float
    new_recordings: int  # whose segments this run wrote
    failed: int  # recordings (or segments) that failed in this run
    wall_s: float
    audio_s_per_s: float  # audio of this run's recordings per wall second
    labels: dict[str, int]  # recordings per label (the one with the most speech time)
    output: str
    error_examples: list[str]

    def line(self) -> str:
        return (
            f"recognize: {self.recordings} recordings ({self.new_recordings} new, "
            f"{self.failed} failed), {self.segments} segments | {self.audio_hours:.3f} h of "
            f"audio ({self.speech_hours:.3f} h speech) | {self.wall_s:.1f} s, "
            f"{self.audio_s_per_s:.1f} audio s/s"
        )


OUTPUT_NAMES = ("predictions", "recordings", "errors", "features", "plots")


def outputs(root: str) -> dict[str, str]:
    """The output's folders; the input listing and the staged rows are scratch space, under
    ``outputs.SCRATCH`` (a name no user folder has)."""
    out = {name: storage.join(root, name) for name in OUTPUT_NAMES}
    scratch = storage.join(root, SCRATCH)
    return out | {"scratch": scratch} | {n: storage.join(scratch, n) for n in ("inputs", "staged")}


def recognize(cfg: RecognizeConfig) -> RecognizeSummary:
    """Run the recognition ``cfg`` describes (``input``, ``checkpoint`` and ``output`` set)."""
    if not cfg.input or not cfg.output or not cfg.checkpoint:
        raise UsageError("recognize needs input, checkpoint and output")
    keys = ("input", "output", "checkpoint")
    cfg = cfg.model_copy(update={k: storage.absolute(getattr(cfg, k)) for k in keys})
    spec = checkpoint.load_spec(cfg.checkpoint)  # fails here, before Ray, when it is not one
    check_input(cfg.input, files=True)
    claim(cfg.output, "recognize", OUTPUT_NAMES, cfg.input)  # a user's folder is never written
    with Lease(cfg.output) as lease:  # one run at a time per output
        return _run(cfg, spec, lease)


# Settings that make the predictions: rows made with others are never mixed with new ones.
SETTINGS = (
    "model_sha256",  # the checkpoint's content, not its path: retrained in place, it differs
    "segment_over_s",
    "max_segment_s",
    "min_silence_s",
    "speech_pad_s",
    "vad_threshold",
    "min_speech_s",
    "no_speech_prob",
    "logprob_threshold",
)


def _run(cfg: RecognizeConfig, spec: checkpoint.ModelSpec, lease: Lease) -> RecognizeSummary:
    started, run_id, out = time.perf_counter(), uuid.uuid4().hex[:12], outputs(cfg.output)
    written = bool(storage.list_files(out["predictions"], (".parquet",)))
    settings = cfg.model_dump(mode="json") | {"model_sha256": checkpoint.digest(spec.checkpoint)}
    if check_settings(cfg.output, settings, SETTINGS, written, cfg.redo, cfg.resume):
        for name in OUTPUT_NAMES:
            storage.delete_dir(out[name])
    drop_truncated(out["predictions"])  # a file a crash cut short: its segments are redone
    clear_done(cfg.output)
    for name in ("predictions", "errors", "recordings"):
        storage.makedirs(out[name])
    for uri in storage.list_files(out["errors"], (".parquet",)):  # failures are tried again
        storage.delete_file(uri)
    storage.delete_dir(out["staged"])  # a dead run's rows, never published: redone
    save_settings(cfg.output, settings, _config_yaml(cfg, spec))
    init_ray()
    _predict(cfg, spec, out, run_id)
    lease.check()  # still this run's output: publish
    failed = _publish(out, run_id)
    storage.delete_dir(out["scratch"])
    with shuffle_by_sort():
        _recordings(cfg, spec, out)
        summary = _summarize(cfg, spec, out, run_id, failed, time.perf_counter() - started)
    record = json.dumps(asdict(summary), indent=2).encode()
    lease.check()
    storage.write_bytes(storage.join(cfg.output, "summary.json"), record)
    mark_done(cfg.output, asdict(summary))
    return summary


def _config_yaml(cfg: RecognizeConfig, spec: checkpoint.ModelSpec) -> str:
    """The run's config, and (commented) the checkpoint and extraction settings it used."""
    settings = json.dumps(spec.extract.model_dump())
    return (
        dump_config(cfg)
        + f"# checkpoint used: {spec.checkpoint}\n# its extraction settings: {settings}\n"
    )


def _predict(cfg: RecognizeConfig, spec: checkpoint.ModelSpec, out: dict, run_id: str) -> None:
    """The streaming job: inputs -> segments -> (not yet written) -> Whisper -> model."""
    from ray.data import ActorPoolStrategy

    from raymer.console import Progress
    from raymer.pipeline.faults import new_ledger, poison_clip, watched
    from raymer.pipeline.inputs import input_dataset, warn_renamed
    from raymer.pipeline.recognize_stages import OUTPUT_COLUMNS, EmotionStage, SpeechStage
    from raymer.pipeline.segmenting import segment_batch

    _check_room(cfg)
    ledger = new_ledger()  # a clip that kills its worker max_attempts times is an error row

    reserved = OUTPUT_COLUMNS | {f"score_{lab}" for lab in spec.labels}
    ds = input_dataset(cfg.input, out["inputs"], frozenset(reserved))
    manifest_columns = [c for c in _column_names(ds) if c not in ("id", "path")]
    renamed = {c.removeprefix("manifest_") for c in manifest_columns} & reserved
    warn_renamed(cfg.input, {c: f"manifest_{c}" for c in sorted(renamed)})
    # A manifest file is one block as read: small blocks make the decode tasks parallel.
    # The input rows are then held in the object store (not the driver) before the model
    # actors start: Ray Data's repartition asks a whole CPU per task, which two Whisper
    # actors and the model actor on 2 CPUs would never leave it.
    ds = ds.repartition(target_num_rows_per_block=cfg.recordings_per_task).materialize()
    ds = ds.map_batches(
        segment_batch,
        fn_kwargs={"cfg": cfg, "errors_uri": out["errors"], "ledger": ledger},
        batch_size=cfg.recordings_per_task,  # streams out batch_size segments at a time
        num_cpus=cfg.decode_num_cpus,
        batch_format="numpy",
    )
    if cfg.resume:
        ds = _not_written(ds, out["predictions"])
    gpu = 1 if cfg.use_gpu else 0
    ds = ds.map_batches(
        SpeechStage,
        fn_constructor_args=(cfg, spec, ledger, poison_clip()),
        batch_size=cfg.batch_size,
        compute=ActorPoolStrategy(size=cfg.asr_actors),
        num_cpus=cfg.asr_num_cpus,
        num_gpus=gpu * cfg.asr_num_gpus,
        batch_format="numpy",
    )
    ds = ds.map_batches(
        EmotionStage,
        fn_constructor_args=(cfg, spec.checkpoint, out, manifest_columns, run_id, ledger),
        batch_size=cfg.batch_size,
        compute=ActorPoolStrategy(size=cfg.model_actors),
        num_cpus=cfg.model_num_cpus,
        num_gpus=gpu * cfg.model_num_gpus,
        batch_format="numpy",
    )
    fs, path = storage.filesystem(storage.join(out["staged"], run_id))
    with watched(ledger, Progress("recognize", None, "segments")):
        ds.write_parquet(
            path,
            filesystem=fs,
            min_rows_per_file=STAGED_ROWS,
            ray_remote_args={"num_cpus": cfg.decode_num_cpus},
        )


def _check_room(cfg: RecognizeConfig) -> None:
    """The model actors must leave a whole CPU: Ray Data's file listing and the resume join's
    shuffle tasks ask for one each, and would otherwise wait for ever beside the actors."""
    import ray

    cpus = ray.cluster_resources().get("CPU", 0)
    actors = cfg.asr_actors * cfg.asr_num_cpus + cfg.model_actors * cfg.model_num_cpus
    if cpus - actors < 1:
        raise UsageError(
            f"the model actors reserve {actors:g} of the cluster's {cpus:g} CPUs: Ray Data's "
            "read and shuffle tasks need one CPU beside them. Lower asr_actors, asr_num_cpus, "
            "model_actors or model_num_cpus"
        )


def _publish(out: dict, run_id: str) -> int:
    """This run's rows, sorted by Ray Data: predictions into ``predictions/``, failures into
    ``errors/errors.parquet``; returns the failures."""
    import ray.data

    from raymer.pipeline.recognize_stages import failures, successes

    staged = storage.join(out["staged"], run_id)
    files = storage.list_files(staged, (".parquet",))
    decoded = storage.list_files(out["errors"], (".parquet",))  # the decode tasks' failures
    if not files:
        return _merge_errors(out, decoded)
    fs, path = storage.filesystem(staged)
    rows = ray.data.read_parquet(path, filesystem=fs, **READ_ARGS)
    pfs, ppath = storage.filesystem(out["predictions"])
    rows.map_batches(successes, batch_format="pyarrow", **READ_ARGS).write_parquet(
        ppath, filesystem=pfs, min_rows_per_file=PUBLISHED_ROWS
    )
    efs, epath = storage.filesystem(storage.join(out["staged"], run_id + "-errors"))
    rows.map_batches(failures, batch_format="pyarrow", **READ_ARGS).write_parquet(
        epath, filesystem=efs
    )
    parts = storage.list_files(storage.join(out["staged"], run_id + "-errors"), (".parquet",))
    for uri in files:
        storage.delete_file(uri)
    return _merge_errors(out, decoded + parts)


def _merge_errors(out: dict, parts: list[str]) -> int:
    """Every error part of this run -> ``errors/errors.parquet`` (streamed); the count."""
    from raymer.pipeline.stages import summarize_errors

    failed = summarize_errors(parts, storage.join(out["errors"], "errors.parquet"))
    for uri in parts:
        storage.delete_file(uri)
    return failed


def _column_names(ds) -> list[str]:
    """The input rows' columns (from the first block: a manifest's columns are fixed)."""
    schema = ds.schema()
    return list(schema.names) if schema is not None else ["id", "path"]


def _not_written(ds, predictions: str):
    """Segments not yet in ``predictions``: an anti-join on (id, segment), by Ray Data."""
    from raymer.pipeline.inputs import anti_join

    return anti_join(ds, predictions, ("id", "segment"), cast=_typed_keys)


def _typed_keys(table):
    """The join keys typed as the predictions store them (string id, int32 segment)."""
    import pyarrow as pa

    index = table.schema.get_field_index("segment")
    return table.set_column(index, "segment", table.column("segment").cast(pa.int32()))


def _recordings(cfg: RecognizeConfig, spec: checkpoint.ModelSpec, out: dict) -> None:
    """One row per recording, aggregated by Ray Data over every prediction in the output."""
    import ray.data

    from raymer.pipeline.recognize_stages import recording_row

    for uri in storage.list_files(out["recordings"], (".parquet",)):
        storage.delete_file(uri)
    if not storage.list_files(out["predictions"], (".parquet",)):
        return
    fs, path = storage.filesystem(out["predictions"])
    ds = ray.data.read_parquet(path, filesystem=fs, **READ_ARGS)
    plots = cfg.plots and can_plot()
    if plots:
        storage.makedirs(out["plots"])
    grouped = ds.groupby("id").map_groups(
        recording_row,
        fn_kwargs={"labels": spec.labels, "plots_uri": out["plots"] if plots else None},
        batch_format="pyarrow",
        num_cpus=cfg.decode_num_cpus,
    )
    rfs, rpath = storage.filesystem(out["recordings"])
    grouped.write_parquet(rpath, filesystem=rfs)


def _summarize(
    cfg: RecognizeConfig,
    spec: checkpoint.ModelSpec,
    out: dict,
    run_id: str,
    failed: int,
    wall_s: float,
) -> RecognizeSummary:
    """Counts and hours of the output, in one Ray Data aggregation over the recordings;
    this run's share by its ``run_id``."""
    totals = _totals(out, spec.labels, run_id)
    labels = {lab: int(totals[f"is_{lab}"]) for lab in spec.labels if totals[f"is_{lab}"]}
    if cfg.plots and labels and can_plot():
        from raymer.pipeline.plots import shares_png

        seconds = {lab: float(totals[f"seconds_{lab}"]) for lab in spec.labels}
        storage.makedirs(out["plots"])
        storage.write_bytes(storage.join(out["plots"], "summary.png"), shares_png(seconds))
    return RecognizeSummary(
        recordings=int(totals["count"]),
        segments=int(totals["segments"]),
        audio_hours=totals["duration_s"] / 3600,
        speech_hours=totals["speech_s"] / 3600,
        new_recordings=int(totals["new"]),
        failed=failed,
        wall_s=wall_s,
        audio_s_per_s=totals["new_s"] / wall_s if wall_s > 0 else 0.0,
        labels=labels,
        output=cfg.output,
        error_examples=_error_examples(out) if failed else [],
    )


def _totals(out: dict, labels: list[str], run_id: str) -> dict[str, float]:
    import ray.data
    from ray.data.aggregate import Count, Sum

    from raymer.pipeline.recognize_stages import summary_columns

    names = ["segments", "duration_s", "speech_s", "new", "new_s"]
    names += [f"{kind}_{lab}" for lab in labels for kind in ("is", "seconds")]
    totals = dict.fromkeys(["count", *names], 0.0)
    if not storage.list_files(out["recordings"], (".parquet",)):
        return totals
    fs, path = storage.filesystem(out["recordings"])
    ds = ray.data.read_parquet(path, filesystem=fs, **READ_ARGS).map_batches(
        summary_columns,
        fn_kwargs={"labels": labels, "run_id": run_id},
        batch_format="pyarrow",
        **READ_ARGS,
    )
    found = ds.aggregate(Count(), *[Sum(name) for name in names])
    totals["count"] = found["count()"]
    totals |= {name: found[f"sum({name})"] or 0.0 for name in names}
    return totals


def _error_examples(out: dict) -> list[str]:
    import ray.data

    fs, path = storage.filesystem(storage.join(out["errors"], "errors.parquet"))
    rows = ray.data.read_parquet(path, filesystem=fs, **READ_ARGS).take(5)
    return [f"{row['id']}: {row['error']}" for row in rows]
