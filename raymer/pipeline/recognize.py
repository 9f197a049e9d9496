"""``raymer recognize``: a corpus of any size and any recording length -> emotions, in one
streaming Ray Data job.

    read -> one row per id -> not yet committed (resume, by recording id, before any
    decoding) -> decode and segment (tasks) -> Whisper (actors) -> text encoder and the
    checkpoint's model (actors) -> write (``recognize_writes``: each recording committed
    whole, predictions then its recordings row; one whose segments the tasks got apart is
    joined by the task that writes its last part)

The input rows (one per id, not yet committed) are held in the object store before the
actors start: two Ray Data executions per run. The driver never holds the corpus: inputs
are read by Ray Data's readers (or listed a folder at a time), the resume is an anti-join
by Ray Data, and the summary is summed from the recordings files' footers. Layout of the
output root:

    predictions/    one row per segment (``recognize_stages.prediction_schema``)
    recordings/     one row per recording: length, segments, speech, label, share_<label>
                    (RUN-TASK.parquet beside the predictions file of the same name)
    errors/         errors.parquet: id, path, stage, error of every recording that failed
    features/       the model's inputs per segment (``keep_features: true``)
    plots/          <id>.png per recording of more than one segment, summary.png
    exports/        <id>.vtt, .srt, .TextGrid, .csv per recording (``formats``)
    config.yaml     the resolved config (a run with other settings is refused, or with
                    ``redo`` replaces the output);  summary.json  the last run's counts
    _SUCCESS.json   written when a run ends;  _lease.json  while one runs
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import asdict, dataclass, field

from raymer import storage
from raymer.config import dump_config, require_paths
from raymer.config.command import flat
from raymer.config.recognize import RecognizeConfig
from raymer.errors import UsageError
from raymer.extras import can_plot
from raymer.pipeline.lease import Lease
from raymer.pipeline.outputs import (
    RECOGNIZE_FOLDERS,
    STATE,
    RecognizeOutput,
    check_settings,
    claim,
    clear_done,
    finished_state,
    publish,
    save_settings,
    up_to_date,
)
from raymer.pipeline.packed import Source, source
from raymer.runtime import init_ray, shuffle_by_sort
from raymer.trained import checkpoint


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
    # seconds of this run's steps: prepare (settings, repair), ray (start or connect),
    # stream (the inputs and the streaming job), summary
    phases_s: dict[str, float] = field(default_factory=dict)
    input_kind: str | None = None  # a packed input's kind ("20 Parquet shards"), else None

    def line(self) -> str:
        return (
            f"recognize: {self.recordings} recordings ({self.new_recordings} new, "
            f"{self.failed} failed), {self.segments} segments | {self.audio_hours:.3f} h of "
            f"audio ({self.speech_hours:.3f} h speech) | {self.wall_s:.1f} s, "
            f"{self.audio_s_per_s:.1f} audio s/s"
            + (f" | from {self.input_kind}" if self.input_kind else "")
        )


def recognize(cfg: RecognizeConfig) -> RecognizeSummary:
    """Run the recognition ``cfg`` describes (``input``, ``checkpoint`` and ``output`` set)."""
    require_paths(cfg, "recognize")
    keys = ("input", "output", "checkpoint")
    cfg = cfg.model_copy(update={k: storage.absolute(getattr(cfg, k)) for k in keys})
    spec = checkpoint.load_spec(cfg.checkpoint)  # fails here, before Ray, when it is not one
    src = source(cfg.input, files=True)  # before Ray starts: a wrong path fails at once
    claim(cfg.output, "recognize", RECOGNIZE_FOLDERS, cfg.input)  # a user's folder is never written
    with Lease(cfg.output) as lease:  # one run at a time per output
        return _run(cfg, spec, src, lease)


# Settings that make the predictions: rows made with others are never mixed with new ones.
SETTINGS = (
    "model_sha256",  # the checkpoint's content, not its path: retrained in place, it differs
    "layout",  # how the output is written: one from before recordings were committed whole
    "segment.segment_over_s",
    "segment.max_segment_s",
    "segment.min_silence_s",
    "segment.speech_pad_s",
    "segment.channels",  # parties: a speaker per segment, the rows in time order
    "segment.channel_names",
    "turns",
    "speech.vad_threshold",
    "speech.min_speech_s",
    "speech.no_speech_prob",
    "speech.logprob_threshold",
    "min_confidence",  # the labels written (none: 0, as before the option)
)
LAYOUT = 3  # 2: recordings committed whole by the write tasks (``recognize_writes``); 3: a long
# recording's segments transcribed together in packed windows (``audio.segment.windows_of``)


def _run(
    cfg: RecognizeConfig, spec: checkpoint.ModelSpec, src: Source, lease: Lease
) -> RecognizeSummary:
    started, run_id, out = (
        time.perf_counter(),
        uuid.uuid4().hex[:12],
        RecognizeOutput.at(cfg.output),
    )
    settings = _checked_settings(cfg, spec, out)
    done = up_to_date(cfg.output, src.kind, cfg.input) if cfg.resume else None
    if done:  # nothing left to do and nothing changed: no Ray at all
        return _unchanged(cfg, spec, src, out, started, lease, done[STATE])
    plots = _prepare(cfg, spec, out, settings)
    phases, mark = {}, [started]

    def lap(name: str) -> None:
        now = time.perf_counter()
        phases[name] = round(now - mark[0], 2)
        mark[0] = now

    lap("prepare")
    init_ray()
    lap("ray")
    _stream(cfg, spec, src, out, run_id, plots)
    lap("stream")
    lease.check()  # still this run's output
    failed = _merge_errors(out)
    storage.delete_dir(out.scratch)  # the listing, and parts of recordings never whole
    summary = _summarize(cfg, spec, out, run_id, failed, plots, time.perf_counter() - started)
    lap("summary")
    summary.phases_s = phases
    summary.input_kind = src.describe()
    state = None if failed else finished_state(cfg.output, src.kind, cfg.input)
    publish(cfg.output, lease, asdict(summary), state)
    return summary


def _unchanged(cfg, spec, src: Source, out: RecognizeOutput, started, lease: Lease, state):
    """A re-run of an output that its last run finished and nothing changed since
    (``outputs.up_to_date``): the output's totals, nothing new; ``state`` recorded again."""
    summary = _summarize(cfg, spec, out, "", 0, False, time.perf_counter() - started)
    summary.input_kind = src.describe()
    publish(cfg.output, lease, asdict(summary), state)
    return summary


def _checked_settings(cfg: RecognizeConfig, spec, out: RecognizeOutput) -> dict:
    """The run's settings, checked against the output's (``check_settings``: refused, or the
    output cleared for ``redo`` or a run that does not resume)."""
    written = bool(storage.list_files(out.predictions, (".parquet",)))
    settings = flat(cfg.model_dump(mode="json")) | {
        "model_sha256": checkpoint.digest(spec.checkpoint),
        "layout": LAYOUT,
        "min_confidence": cfg.min_confidence or None,
    }
    if check_settings(
        cfg.output, settings, SETTINGS, written, cfg.redo, cfg.resume, always=("layout",)
    ):
        for name in RECOGNIZE_FOLDERS:
            storage.delete_dir(out.folder(name))
    return settings


def _prepare(cfg: RecognizeConfig, spec, out: RecognizeOutput, settings: dict) -> bool:
    """Before Ray: the settings saved, what a crash left taken apart, this run's folders
    made, earlier failures cleared (tried again). Returns whether to plot."""
    from raymer.pipeline.recognize_writes import repair

    clear_done(cfg.output)
    storage.delete_dir(out.scratch)  # a dead run's listing and pending rows: redone
    repair(out.predictions, out.recordings)  # a crash's half-written recordings: redone
    for name in ("predictions", "errors", "recordings"):
        storage.makedirs(out.folder(name))
    for uri in storage.list_files(out.errors, (".parquet",)):  # failures are tried again
        storage.delete_file(uri)
    save_settings(cfg.output, settings, _config_yaml(cfg, spec))
    plots = cfg.plots and can_plot()
    if plots:
        storage.makedirs(out.plots)
    if cfg.formats:
        storage.makedirs(out.exports)
    return plots


def _summarize(
    cfg, spec, out: RecognizeOutput, run_id: str, failed: int, plots: bool, wall_s: float
):
    """The output's totals and this run's share (the files it committed), from the
    recordings files' footers; with ``plots``, ``summary.png``."""
    from raymer.pipeline.recognize_writes import output_totals

    totals, new = output_totals(out.recordings, spec.labels, run_id)
    if plots and totals.labels:
        from raymer.pipeline.plots import shares_png

        seconds = {lab: totals.seconds.get(lab, 0.0) for lab in spec.labels}
        storage.write_bytes(storage.join(out.plots, "summary.png"), shares_png(seconds))
    return RecognizeSummary(
        recordings=totals.recordings,
        segments=totals.segments,
        audio_hours=totals.duration_s / 3600,
        speech_hours=totals.speech_s / 3600,
        new_recordings=new.recordings,
        failed=failed,
        wall_s=wall_s,
        audio_s_per_s=new.duration_s / wall_s if wall_s > 0 else 0.0,
        labels={lab: totals.labels[lab] for lab in spec.labels if totals.labels.get(lab)},
        output=cfg.output,
        error_examples=_error_examples(out) if failed else [],
    )


def _config_yaml(cfg: RecognizeConfig, spec: checkpoint.ModelSpec) -> str:
    """The run's config, and (commented) the checkpoint and extraction settings it used."""
    settings = json.dumps(spec.extract.model_dump())
    return (
        dump_config(cfg)
        + f"# checkpoint used: {spec.checkpoint}\n# its extraction settings: {settings}\n"
    )


def _stream(cfg: RecognizeConfig, spec, src: Source, out: RecognizeOutput, run_id: str, plots):
    """Inputs -> one per id -> not committed (one Ray Data execution, rows kept in the object
    store), then the streaming job: segments -> Whisper -> model -> committed by the write
    tasks."""

    from raymer.console import Progress
    from raymer.pipeline import recognize_writes as writes
    from raymer.pipeline.faults import new_ledger, watched
    from raymer.pipeline.inputs import anti_join, manifest_columns, read_inputs, unique_ids
    from raymer.pipeline.recognize_stages import OUTPUT_COLUMNS, PARTY_COLUMNS, staged_schema
    from raymer.pipeline.recognize_writes import Layout
    from raymer.pipeline.segmenting import segment_batch

    _check_room(cfg)
    ledger = new_ledger()  # a clip that kills its worker max_attempts times is an error row
    reserved = OUTPUT_COLUMNS | {f"score_{lab}" for lab in spec.labels} | set(spec.dimensions)
    # heard as parties, a segment has its own `speaker` (a manifest's is kept as manifest_speaker)
    parties = cfg.has_parties(manifest_columns(src))
    reserved |= {name for name, _ in PARTY_COLUMNS} if parties else set()
    inputs = read_inputs(src, out.inputs, frozenset(reserved))
    layout = Layout(
        predictions=out.predictions,
        recordings=out.recordings,
        errors=out.errors,
        pending=out.pending,
        run_id=run_id,
        plots=out.plots if plots else None,
        exports=out.exports,
        formats=tuple(cfg.formats),
        labels=tuple(spec.labels),
        dimensions=tuple(spec.dimensions),
        staged=staged_schema(spec, inputs.carried, parties),
        parties=parties,
    )
    storage.makedirs(layout.pending)
    sink = writes.sink(layout, cfg.segments_per_file)
    parts = max(4, 2 * cfg.resources.asr.actors)
    # hash shuffles of the input rows alone, over `parts` partitions (not Ray's default 200)
    with shuffle_by_sort():
        ds = unique_ids(inputs.dataset, out.errors, parts, cfg.resources.decode_num_cpus, "text")
        if cfg.resume:  # by recording id, before anything is decoded
            ds = anti_join(ds, out.recordings, ("id",), partitions=parts)
        ds = _held(ds, cfg, inputs.sharded)
    if ds.count() == 0:  # nothing left to do (a finished re-run): no actor, no model loaded
        return
    if inputs.sharded:  # given their audio a row group (or a tar's range) at a time
        from raymer.pipeline.shards import fetched

        ds = fetched(ds, cfg.resources.decode_num_cpus)
    ds = ds.map_batches(
        segment_batch,
        fn_kwargs={"cfg": cfg, "errors_uri": out.errors, "ledger": ledger},
        batch_size=cfg.recordings_per_task,  # streams out batch_size segments at a time
        num_cpus=cfg.resources.decode_num_cpus,
        batch_format="numpy",
    )
    ds = _listen_and_judge(ds, cfg, spec, out, run_id, ledger, inputs.carried, parties)
    with watched(ledger, Progress("recognize", None, "segments")):
        ds.write_datasink(sink, ray_remote_args={"num_cpus": cfg.resources.decode_num_cpus})


def _held(ds, cfg: RecognizeConfig, sharded: bool):
    """The recordings left to do, held in the object store before the actors start (a
    shuffle task asks a whole CPU of one node, which actors spread over small nodes may
    never leave: a 2 x 1-CPU cluster waited for ever): in small blocks (the decode tasks run
    in parallel), or for shards in shard order (``shards.in_shard_order``)."""
    if sharded:
        from raymer.pipeline.shards import in_shard_order

        return in_shard_order(ds).materialize()
    return ds.repartition(target_num_rows_per_block=cfg.recordings_per_task).materialize()


def _listen_and_judge(
    ds, cfg, spec, out: RecognizeOutput, run_id: str, ledger, carried: list[str], parties: bool
):
    """Segments -> Whisper (actors) -> text encoder and model (actors)."""
    from ray.data import ActorPoolStrategy

    from raymer.drills import armed
    from raymer.pipeline.recognize_stages import EmotionStage, SpeechStage

    ds = ds.map_batches(
        SpeechStage,
        fn_constructor_args=(cfg, spec, ledger, armed()),
        batch_size=cfg.batch_size,
        compute=ActorPoolStrategy(size=cfg.resources.asr.actors),
        num_cpus=cfg.resources.asr.num_cpus,
        num_gpus=cfg.resources.gpus(cfg.resources.asr),
        batch_format="numpy",
    )
    ds = ds.map_batches(
        EmotionStage,
        fn_constructor_args=(cfg, spec.checkpoint, out, carried, run_id, ledger, parties),
        batch_size=cfg.batch_size,
        compute=ActorPoolStrategy(size=cfg.resources.model.actors),
        num_cpus=cfg.resources.model.num_cpus,
        num_gpus=cfg.resources.gpus(cfg.resources.model),
        batch_format="numpy",
    )
    return ds


def _check_room(cfg: RecognizeConfig) -> None:
    """The model actors must leave a whole CPU: Ray Data's file listing and the resume join's
    shuffle tasks ask for one each, and would otherwise wait for ever beside the actors."""
    import ray

    cpus = ray.cluster_resources().get("CPU", 0)
    res = cfg.resources
    actors = res.asr.actors * res.asr.num_cpus + res.model.actors * res.model.num_cpus
    if cpus - actors < 1:
        raise UsageError(
            f"the model actors reserve {actors:g} of the cluster's {cpus:g} CPUs: Ray Data's "
            "read and shuffle tasks need one CPU beside them. Lower resources.asr.actors or "
            ".num_cpus, or resources.model.actors or .num_cpus"
        )


def _merge_errors(out: RecognizeOutput) -> int:
    """Every error part of this run -> ``errors/errors.parquet`` (streamed); the count."""
    from raymer.pipeline.rows import summarize_errors

    merged = storage.join(out.errors, "errors.parquet")
    parts = [u for u in storage.list_files(out.errors, (".parquet",)) if u != merged]
    failed = summarize_errors(parts, merged)
    for uri in parts:
        storage.delete_file(uri)
    return failed


def _error_examples(out: RecognizeOutput) -> list[str]:
    """Up to five errors, read from the first row group of ``errors.parquet``."""
    import pyarrow.parquet as pq

    fs, path = storage.filesystem(storage.join(out.errors, "errors.parquet"))
    with fs.open_input_file(path) as f:
        first = next(pq.ParquetFile(f).iter_batches(batch_size=5), None)
    return [f"{r['id']}: {r['error']}" for r in (first.to_pylist() if first else [])]
