"""``raymer extract``: a speech corpus -> transcripts and embeddings in Parquet, on Ray Data.

Layout of the output root:
    features/   Parquet dataset, one row per good clip (``raymer.contract.schema.FEATURES_SCHEMA``)
    errors/     errors.parquet, one row per failed clip: id, path, stage, error
    config.yaml the resolved config of the last run (a run with other extraction settings
                is refused, or with ``redo`` replaces the features)
    summary.json the last run's counts and timings
    _SUCCESS.json written when a run ends (the summary); _lease.json while one runs
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import asdict, dataclass, field

import pyarrow.parquet as pq

from raymer import storage
from raymer.config import ExtractConfig, dump_config, require_paths
from raymer.config.extract import CLIP_CHANNELS, ExtractSettings
from raymer.pipeline.feature_sink import Written, feature_sink
from raymer.pipeline.lease import Lease
from raymer.pipeline.outputs import (
    SCRATCH,
    STATE,
    check_settings,
    claim,
    clear_done,
    drop_truncated,
    finished_state,
    publish,
    save_settings,
    up_to_date,
)
from raymer.runtime import READ_ARGS, init_ray, shuffle_by_sort

FEATURE_ROWS = 2_000  # rows per features file at least (the model stages' batches are small)
OUTPUT_NAMES = ("features", "errors")  # what a run writes beside outputs.RUN_FILES

logger = logging.getLogger(__name__)


@dataclass
class ExtractSummary:
    """What one run did. ``clips_*`` count this run; ``skipped`` were already written."""

    clips_ok: int
    clips_failed: int
    skipped: int
    audio_hours: float
    wall_s: float
    audio_s_per_s: float
    wer: float | None
    features_uri: str
    errors_uri: str
    error_examples: list[str] = field(default_factory=list)
    text_only: bool = False  # a text corpus: texts embedded, no audio
    copies: int = 0  # augmented copies written beside the clips (augment.copies)
    input_kind: str | None = None  # a packed input's kind ("20 Parquet shards"), else None

    def line(self) -> str:
        if self.text_only:
            return (
                f"extract: {self.clips_ok} texts ok, {self.clips_failed} failed, "
                f"{self.skipped} already done | text only, {self.wall_s:.1f} s"
            )
        wer = f" | WER {100 * self.wer:.1f}%" if self.wer is not None else ""
        copies = f" (+{self.copies} augmented copies)" if self.copies else ""
        return (
            f"extract: {self.clips_ok} clips ok{copies}, {self.clips_failed} failed, "
            f"{self.skipped} already done"
            f" | {self.audio_hours:.3f} h of audio{' (copies included)' * bool(self.copies)}"
            f" in {self.wall_s:.1f} s"
            f" | {self.audio_s_per_s:.1f} audio s/s{wer}"
            + (f" | from {self.input_kind}" if self.input_kind else "")
        )


def extract(cfg: ExtractConfig) -> ExtractSummary:
    """Run the extraction described by ``cfg`` (``input`` and ``output`` must be set).

    read -> resume -> stream -> finish, as ``recognize``: the inputs are read by Ray Data's
    readers (or listed a folder at a time), one row is kept per id, ids already written are
    left out by an anti-join before anything is decoded, all in one streaming Ray Data
    execution that writes the features; then one aggregation over this run's files sums its
    counts, hours and WER. The driver never holds the corpus."""
    require_paths(cfg, "extract")
    from raymer.pipeline.packed import source

    src = source(cfg.input, cfg.inputs)  # before Ray starts: a wrong path fails at once
    claim(cfg.output, "extract", OUTPUT_NAMES, cfg.input)  # a user's folder is never written
    with Lease(cfg.output) as lease:  # one run at a time per output
        summary = _run(cfg, src, lease)
    return summary


def _run(cfg: ExtractConfig, src, lease: Lease) -> ExtractSummary:
    from ray.data.datasource.filename_provider import FilenameProvider

    from raymer.pipeline.inputs import extract_dataset

    start, run_id = time.perf_counter(), uuid.uuid4().hex[:12]
    features_uri = storage.join(cfg.output, "features")
    errors_uri = storage.join(cfg.output, "errors")
    scratch = storage.join(cfg.output, SCRATCH)  # the run's own: removed at the end
    listing_uri = storage.join(scratch, "inputs")
    written = bool(storage.list_files(features_uri, (".parquet",)))
    settings, keys = _settings(cfg)
    split = cfg.segment.channels == "split"
    if check_settings(cfg.output, settings, keys, written, cfg.redo, cfg.resume):
        storage.delete_dir(features_uri)
        storage.delete_dir(errors_uri)
    if cfg.resume and (done := up_to_date(cfg.output, src.kind, cfg.input)):
        return _unchanged(cfg, done, start, lease)  # nothing left to do: no Ray at all
    clear_done(cfg.output)
    init_ray()
    ds, text_only, extra_columns = extract_dataset(src, listing_uri, cfg.inputs, split)
    sharded = src.sharded
    _clear_errors(errors_uri)
    storage.makedirs(features_uri)
    storage.makedirs(errors_uri)
    save_settings(cfg.output, settings, dump_config(cfg))
    from raymer.console import Progress
    from raymer.pipeline.faults import new_ledger, watched

    ledger = new_ledger()
    with shuffle_by_sort():  # the inputs' grouping and resume: no aggregator actors to start
        todo = _todo(cfg, ds, features_uri, errors_uri, ledger, sharded)
    wrote = Written()
    if todo.count():  # else nothing left to do (a finished re-run): no actor, no model loaded
        fs, path = storage.filesystem(features_uri)
        ds = build_dataset(cfg, todo, extra_columns, errors_uri, text_only, ledger, sharded)
        progress = Progress("extract", None, "texts" if text_only else "clips")
        provider = FilenameProvider(f"run-{run_id}", "parquet")
        sink = feature_sink(path, fs, provider, FEATURE_ROWS)  # its tasks sum what they wrote
        with watched(ledger, progress, total="todo" if cfg.resume else "inputs"):
            ds.write_datasink(  # the stream: one Ray Data execution
                sink, ray_remote_args={"num_cpus": cfg.resources.decode_num_cpus}
            )
        wrote = sink.totals or wrote
    lease.check()  # still this run's output
    skipped = _skipped(ledger) if cfg.resume else 0
    failed = _collect_errors(errors_uri)
    summary = _summarize(features_uri, wrote, failed, skipped, time.perf_counter() - start)
    storage.delete_dir(scratch)
    summary.errors_uri = errors_uri
    summary.text_only = text_only
    summary.input_kind = src.describe()
    state = None if summary.clips_failed else finished_state(cfg.output, src.kind, cfg.input)
    publish(cfg.output, lease, asdict(summary), state)
    return summary


def _settings(cfg: ExtractConfig) -> tuple[dict, list[str]]:
    """What ``check_settings`` compares: the config, with copies and split channels (what
    they change in the rows written) as None when off, as before the options, so older
    outputs resume."""
    settings = cfg.model_dump(mode="json")
    settings["augment"] = settings["augment"] if cfg.augment.copies else None
    split = cfg.segment.channels == "split"
    settings["segment"] = {k: settings["segment"][k] for k in CLIP_CHANNELS} if split else None
    return settings, [*ExtractSettings.model_fields, "augment", "segment"]


def _unchanged(cfg: ExtractConfig, done: dict, start: float, lease: Lease) -> ExtractSummary:
    """A re-run of an output that its last run finished and nothing changed since
    (``outputs.up_to_date``): every input already done, the summary a resume would give."""
    summary = ExtractSummary(
        clips_ok=0,
        clips_failed=0,
        skipped=done["clips_ok"] + done["skipped"],
        audio_hours=0.0,
        wall_s=time.perf_counter() - start,
        audio_s_per_s=0.0,
        wer=None,
        features_uri=done["features_uri"],
        errors_uri=done["errors_uri"],
        text_only=done.get("text_only", False),
        input_kind=done.get("input_kind"),
    )
    publish(cfg.output, lease, asdict(summary), done[STATE])  # as found: unchanged
    return summary


def _todo(cfg: ExtractConfig, ds, features_uri: str, errors_uri: str, ledger, sharded=False):
    """The rows to extract (read -> resume, before anything is decoded): one row per id (a
    duplicate is an error row), less the ids already in ``features/``, in one execution
    whose rows stay in the object store (a sharded input's without their audio, in shard
    order: ``shards.in_shard_order``). The rows before and after the resume are tallied
    in the ``ledger`` (``_skipped``)."""
    from raymer.pipeline.faults import tallied
    from raymer.pipeline.inputs import anti_join, unique_ids

    # the grouping's partitions are the decode tasks: enough for every model actor
    parts = max(4, 2 * cfg.resources.asr.actors, 2 * cfg.resources.model.actors)
    unique = unique_ids(ds, errors_uri, parts, cfg.resources.decode_num_cpus, "reference_text")
    tally = {"batch_format": "pyarrow", **READ_ARGS}
    unique = unique.map_batches(tallied, fn_kwargs={"ledger": ledger, "name": "inputs"}, **tally)
    if cfg.resume:
        drop_truncated(features_uri)
        todo = anti_join(unique, features_uri, ("id",), partitions=parts)
        unique = todo.map_batches(tallied, fn_kwargs={"ledger": ledger, "name": "todo"}, **tally)
    if sharded:
        from raymer.pipeline.shards import in_shard_order

        unique = in_shard_order(unique)
    # held in the object store before the actors start: a shuffle task asks a whole CPU of
    # one node, which actors spread over small nodes may never leave (2 x 1 CPU: a hang)
    return unique.materialize()


def _skipped(ledger) -> int:
    """Inputs already in ``features/``: the rows the resume left out."""
    import ray

    inputs, todo = ray.get([ledger.total.remote("inputs"), ledger.total.remote("todo")])
    return max(0, inputs - todo)


def build_dataset(
    cfg: ExtractConfig,
    ds,
    extra_columns: list[str],
    errors_uri: str,
    text_only=False,
    ledger=None,
    sharded=False,
):
    """The lazy Ray Dataset: decode (tasks) -> Whisper (actors) -> text encoder (actors);
    a text corpus (``text_only``) goes straight to the text encoder; a sharded input's rows
    are given their audio first (``shards.fetched``). The run's crash ledger turns a clip
    that kills its worker ``max_attempts`` times into an error row."""
    from ray.data import ActorPoolStrategy

    from raymer.drills import armed
    from raymer.pipeline.faults import new_ledger
    from raymer.pipeline.stages import TextStage, WhisperStage, decode_batch

    ledger = ledger or new_ledger()
    text_stage = dict(
        fn_constructor_args=(cfg, errors_uri, extra_columns, text_only, ledger),
        batch_size=cfg.batch_size * 4,
        compute=ActorPoolStrategy(size=cfg.resources.model.actors),
        num_cpus=cfg.resources.model.num_cpus,
        num_gpus=cfg.resources.gpus(cfg.resources.model),
        batch_format="numpy",
    )
    if text_only:
        return ds.map_batches(TextStage, **text_stage)
    if sharded:
        from raymer.pipeline.shards import fetched

        ds = fetched(ds, cfg.resources.decode_num_cpus)
    ds = ds.map_batches(
        decode_batch,
        fn_kwargs={
            "limits": cfg.decode,
            "ledger": ledger,
            "max_attempts": cfg.max_attempts,
            "augment": cfg.augment if cfg.augment.copies else None,
            "cutting": cfg.segment if cfg.segment.channels == "split" else None,
        },
        batch_size=cfg.batch_size,
        num_cpus=cfg.resources.decode_num_cpus,
        batch_format="numpy",
    )
    ds = ds.map_batches(
        WhisperStage,
        fn_constructor_args=(cfg, ledger, armed()),
        batch_size=cfg.batch_size,
        compute=ActorPoolStrategy(size=cfg.resources.asr.actors),
        num_cpus=cfg.resources.asr.num_cpus,
        num_gpus=cfg.resources.gpus(cfg.resources.asr),
        batch_format="numpy",
    )
    return ds.map_batches(TextStage, **text_stage)


def _clear_errors(errors_uri: str) -> None:
    """Clips that failed before are retried (their file may have been fixed)."""
    for uri in storage.list_files(errors_uri, (".parquet",)):
        storage.delete_file(uri)


def _collect_errors(errors_uri: str) -> tuple[int, list[str]]:
    """Merge the stages' error parts into errors/errors.parquet, a row group at a time;
    returns (failed clips, up to five examples)."""
    from raymer.pipeline.rows import summarize_errors

    parts = storage.list_files(errors_uri, (".parquet",))
    merged = storage.join(errors_uri, "errors.parquet")
    failed = summarize_errors(parts, merged)
    for uri in parts:
        storage.delete_file(uri)
    if not failed:
        return 0, []
    fs, path = storage.filesystem(merged)
    first = next(pq.ParquetFile(fs.open_input_file(path)).iter_batches(batch_size=5))
    return failed, [f"{r['id']}: {r['error']}" for r in first.to_pylist()]


def _summarize(features_uri: str, wrote: Written, failed, skipped, wall_s) -> ExtractSummary:
    """This run's counts, hours and WER: what its write tasks wrote (``feature_sink``)."""
    return ExtractSummary(
        copies=wrote.copies,
        clips_ok=wrote.clips,
        clips_failed=failed[0],
        skipped=skipped,
        audio_hours=wrote.seconds / 3600,
        wall_s=wall_s,
        audio_s_per_s=wrote.seconds / wall_s if wall_s > 0 else 0.0,
        error_examples=failed[1],
        wer=wrote.wer,
        features_uri=features_uri,
        errors_uri="",
    )
