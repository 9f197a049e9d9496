"""``raymer extract``: a speech corpus -> transcripts and embeddings in Parquet, on Ray Data.

Layout of the output root:
    features/   Parquet dataset, one row per good clip (``raymer.schema.FEATURES_SCHEMA``)
    errors/     errors.parquet, one row per failed clip: id, path, stage, error
    config.yaml the resolved config of the last run
    summary.json the last run's counts and timings
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict, dataclass, field

import pyarrow as pa
import pyarrow.parquet as pq

from raymer import storage
from raymer.config import ExtractConfig, dump_config
from raymer.corpora.manifest import read_inputs
from raymer.runtime import init_ray
from raymer.schema import ERRORS_SCHEMA
from raymer.wer import normalize_words

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

    def line(self) -> str:
        if self.text_only:
            return (
                f"extract: {self.clips_ok} texts ok, {self.clips_failed} failed, "
                f"{self.skipped} already done | text only, {self.wall_s:.1f} s"
            )
        wer = f" | WER {100 * self.wer:.1f}%" if self.wer is not None else ""
        return (
            f"extract: {self.clips_ok} clips ok, {self.clips_failed} failed, {self.skipped} already done"
            f" | {self.audio_hours:.3f} h of audio in {self.wall_s:.1f} s"
            f" | {self.audio_s_per_s:.1f} audio s/s{wer}"
        )


def extract(cfg: ExtractConfig) -> ExtractSummary:
    """Run the extraction described by ``cfg`` (``input`` and ``output`` must be set)."""
    if not cfg.input or not cfg.output:
        raise ValueError("extract needs both input and output")
    start = time.perf_counter()
    features_uri = storage.join(cfg.output, "features")
    errors_uri = storage.join(cfg.output, "errors")
    inputs = read_inputs(cfg.input, cfg.inputs)
    done = existing_ids(features_uri) if cfg.resume else set()
    todo = [r for r in inputs.rows if r["id"] not in done]
    skipped = len(inputs.rows) - len(todo)
    _clear_errors(errors_uri)
    storage.makedirs(features_uri)
    storage.makedirs(errors_uri)
    storage.write_bytes(storage.join(cfg.output, "config.yaml"), dump_config(cfg).encode())
    if todo:
        init_ray()
        build_dataset(cfg, todo, inputs.extra_columns, errors_uri, inputs.text_only).write_parquet(
            storage.filesystem(features_uri)[1],
            filesystem=storage.filesystem(features_uri)[0],
            ray_remote_args={"num_cpus": cfg.decode_num_cpus},
        )
    failed = _collect_errors(errors_uri, inputs.problems)
    summary = _summarize(
        features_uri, errors_uri, done, failed, skipped, time.perf_counter() - start
    )
    summary.text_only = inputs.text_only
    storage.write_bytes(
        storage.join(cfg.output, "summary.json"), json.dumps(asdict(summary), indent=2).encode()
    )
    return summary


def build_dataset(
    cfg: ExtractConfig,
    rows: list[dict],
    extra_columns: list[str],
    errors_uri: str,
    text_only: bool = False,
):
    """The lazy Ray Dataset: decode (tasks) -> Whisper (actors) -> text encoder (actors);
    a text corpus (``text_only``) goes straight to the text encoder."""
    import ray.data
    from ray.data import ActorPoolStrategy

    from raymer.pipeline.stages import TextStage, WhisperStage, decode_batch

    gpu = 1 if cfg.use_gpu else 0
    text_stage = dict(
        fn_constructor_args=(cfg, errors_uri, extra_columns, text_only),
        batch_size=cfg.batch_size * 4,
        compute=ActorPoolStrategy(size=cfg.text_actors),
        num_cpus=cfg.text_num_cpus,
        num_gpus=gpu * cfg.text_num_gpus,
        batch_format="numpy",
    )
    if text_only:
        blocks = _blocks(len(rows), cfg.text_actors, cfg.batch_size * 4)
        return ray.data.from_items(rows, override_num_blocks=blocks).map_batches(
            TextStage, **text_stage
        )
    blocks = _blocks(len(rows), cfg.asr_actors, cfg.batch_size)
    ds = ray.data.from_items(rows, override_num_blocks=blocks)
    ds = ds.map_batches(
        decode_batch,
        fn_kwargs={"max_duration_s": cfg.max_duration_s},
        batch_size=cfg.batch_size,
        num_cpus=cfg.decode_num_cpus,
        batch_format="numpy",
    )
    ds = ds.map_batches(
        WhisperStage,
        fn_constructor_args=(cfg,),
        batch_size=cfg.batch_size,
        compute=ActorPoolStrategy(size=cfg.asr_actors),
        num_cpus=cfg.asr_num_cpus,
        num_gpus=gpu * cfg.asr_num_gpus,
        batch_format="numpy",
    )
    return ds.map_batches(TextStage, **text_stage)


def _blocks(rows: int, actors: int, batch_size: int) -> int:
    """Enough blocks that every actor of the first model stage has work, few enough that each
    fills a batch."""
    return min(rows, max(2 * actors, math.ceil(rows / batch_size)), 2000)


def existing_ids(features_uri: str) -> set[str]:
    """Ids already written. A file cut short by a crash is removed, so its clips are redone."""
    ids: set[str] = set()
    for uri in storage.list_files(features_uri, (".parquet",)):
        fs, path = storage.filesystem(uri)
        try:
            ids.update(pq.read_table(path, columns=["id"], filesystem=fs).column("id").to_pylist())
        except (pa.ArrowInvalid, OSError) as err:
            logger.warning(
                "removing unreadable partial output %s (%s); its clips are redone", uri, err
            )
            storage.delete_file(uri)
    return ids


def _clear_errors(errors_uri: str) -> None:
    """Clips that failed before are retried (their file may have been fixed)."""
    for uri in storage.list_files(errors_uri, (".parquet",)):
        storage.delete_file(uri)


def _collect_errors(errors_uri: str, problems: list[tuple[str, str, str]]) -> pa.Table:
    """Merge the stages' error parts and the manifest's problems into errors/errors.parquet."""
    parts = storage.list_files(errors_uri, (".parquet",))
    tables = [
        pa.table(
            {
                "id": [p[0] for p in problems],
                "path": [p[1] for p in problems],
                "stage": ["manifest"] * len(problems),
                "error": [p[2] for p in problems],
            },
            schema=ERRORS_SCHEMA,
        )
    ]
    for uri in parts:
        fs, path = storage.filesystem(uri)
        tables.append(pq.read_table(path, filesystem=fs, schema=ERRORS_SCHEMA))
    merged = pa.concat_tables(tables)
    # A retried task may have written the same failure twice: keep one row per id and error.
    seen, keep = set(), []
    for i, (rid, err) in enumerate(
        zip(merged.column("id").to_pylist(), merged.column("error").to_pylist(), strict=True)
    ):
        if (rid, err) not in seen:
            seen.add((rid, err))
            keep.append(i)
    merged = merged.take(pa.array(keep, type=pa.int64()))
    fs, path = storage.filesystem(storage.join(errors_uri, "errors.parquet"))
    pq.write_table(merged, path, filesystem=fs)
    for uri in parts:
        storage.delete_file(uri)
    return merged


def _summarize(features_uri, errors_uri, done, failed, skipped, wall_s) -> ExtractSummary:
    ok, seconds, edits, words = 0, 0.0, 0.0, 0
    for uri in storage.list_files(features_uri, (".parquet",)):
        fs, path = storage.filesystem(uri)
        table = pq.read_table(
            path, columns=["id", "duration_s", "wer", "reference_text"], filesystem=fs
        )
        for rid, dur, w, ref in zip(
            *(table.column(c).to_pylist() for c in table.column_names), strict=True
        ):
            if rid in done:
                continue
            ok, seconds = ok + 1, seconds + (dur or 0.0)
            if w is not None and ref:
                n = len(normalize_words(ref))
                edits, words = edits + w * n, words + n
    return ExtractSummary(
        clips_ok=ok,
        clips_failed=failed.num_rows,
        skipped=skipped,
        audio_hours=seconds / 3600,
        wall_s=wall_s,
        audio_s_per_s=seconds / wall_s if wall_s > 0 else 0.0,
        error_examples=[f"{r['id']}: {r['error']}" for r in failed.slice(0, 5).to_pylist()],
        wer=edits / words if words else None,
        features_uri=features_uri,
        errors_uri=errors_uri,
    )
