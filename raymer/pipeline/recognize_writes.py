"""How ``raymer recognize`` writes: a recording is committed whole, by the streaming job's
own write tasks, and the output's totals are read from what was committed.

A write task (``sink``'s ``RecognizeSink``) gets the emotion stage's rows (a segment each) and sorts
each recording it holds:

- whole (segments 0 to the one marked ``last``, none failed): its segments go to
  ``predictions/STEM.parquet``, then its row to ``recordings/STEM.parquet`` (written last:
  the commit). The recordings file carries its totals in its Parquet metadata
  (``TOTALS_KEY``), so the summary reads footers, never rows;
- whole with a failed segment: its failed segments go to ``errors/`` and nothing else (the
  recording is tried again whole by the next run, as a file that failed to decode is);
- not whole here (its segments spread over write tasks: a long recording, or one cut by a
  block boundary): its rows go to the run's scratch ``pending/KEY/STEM.parquet`` (KEY from
  the recording id), then the task lists ``pending/KEY/`` and, when the parts there make
  the recording whole, commits it as ``RUN-r-KEY`` and removes the folder. Every task
  writes its part before it lists, so the task that writes the last part sees them all;
  two tasks that both see them all write the same files (each written whole, under the
  same name), so a recording is never committed twice and no grouping pass is needed.

A recording that never becomes whole (its decoding failed midway: the error is in
``errors/`` already) leaves only scratch, removed when the run ends.

Resume is by recording id against ``recordings/``, before anything is decoded. A crash can
leave a predictions file without its recordings file (or a file without its footer):
``repair`` removes both halves of such a pair before a run starts, so those recordings are
done again, once. Names are the run id and the write task's index: a retried task rewrites
its own files.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field

import pyarrow as pa
import pyarrow.parquet as pq

from raymer import storage
from raymer.pipeline.outputs import drop_truncated
from raymer.pipeline.recognize_stages import STAGE_COLUMNS, recording_row, recording_schema
from raymer.pipeline.rows import write_errors

TOTALS_KEY = b"raymer.totals"


@dataclass
class Totals:
    """Sums over committed recordings: what the summary reports."""

    recordings: int = 0
    segments: int = 0
    duration_s: float = 0.0
    speech_s: float = 0.0
    labels: dict[str, int] = field(default_factory=dict)  # recordings per label
    seconds: dict[str, float] = field(default_factory=dict)  # speech seconds per label

    def add(self, other: Totals) -> Totals:
        self.recordings += other.recordings
        self.segments += other.segments
        self.duration_s += other.duration_s
        self.speech_s += other.speech_s
        for lab, n in other.labels.items():
            self.labels[lab] = self.labels.get(lab, 0) + n
        for lab, s in other.seconds.items():
            self.seconds[lab] = self.seconds.get(lab, 0.0) + s
        return self

    @classmethod
    def of(cls, recordings: list[dict], labels: list[str]) -> Totals:
        totals = cls()
        for rec in recordings:
            totals.recordings += 1
            totals.segments += int(rec["segments"])
            totals.duration_s += float(rec["duration_s"] or 0.0)
            totals.speech_s += float(rec["speech_s"] or 0.0)
            if rec["label"] is not None:
                totals.labels[rec["label"]] = totals.labels.get(rec["label"], 0) + 1
            for lab in labels:
                share = rec.get(f"share_{lab}") or 0.0
                totals.seconds[lab] = totals.seconds.get(lab, 0.0) + share * rec["speech_s"]
        return totals

    @classmethod
    def from_dict(cls, data: dict) -> Totals:
        return cls(**data)


@dataclass
class Written:
    """What a write task did: the recordings it committed, those it reported failed, and
    those it left pending (not whole yet). Two tasks may both commit a recording whose
    segments they got apart, so a run's own totals are read from the files it committed
    (``output_totals``), not summed from these."""

    new: Totals = field(default_factory=Totals)
    failed: int = 0
    pending: int = 0

    def add(self, other: Written) -> Written:
        self.new.add(other.new)
        self.failed += other.failed
        self.pending += other.pending
        return self


@dataclass(frozen=True)
class Layout:
    """Where a run writes, and what its rows look like."""

    predictions: str
    recordings: str
    errors: str
    pending: str
    run_id: str  # names this run's files: RUN-TASK, RUN-r-KEY
    plots: str | None  # None: no plots
    exports: str | None  # the folder of ``formats``' files
    labels: tuple[str, ...]
    staged: pa.Schema  # the emotion stage's rows (``recognize_stages.staged_schema``)
    dimensions: tuple[str, ...] = ()  # the model's emotion dimensions (none: labels only)
    formats: tuple[str, ...] = ()  # each recording's files (``raymer.inference.exports``)
    parties: bool = False  # a speaker per segment (``RecognizeConfig.has_parties``)

    @property
    def prediction_schema(self) -> pa.Schema:
        keep = [f for f in self.staged if f.name not in STAGE_COLUMNS]
        return pa.schema(keep)


def whole(rows: list[dict]) -> list[dict] | None:
    """One recording's rows -> its segments in order, once each, when every segment from 0
    to the one marked last is there; else None."""
    by_index: dict[int, dict] = {}
    for row in rows:
        by_index.setdefault(int(row["segment"]), row)  # a retried task's copy counts once
    lasts = [i for i, r in by_index.items() if r["last"]]
    if not lasts or sorted(by_index) != list(range(max(lasts) + 1)):
        return None
    return [by_index[i] for i in sorted(by_index)]


def in_time_order(segments: list[dict]) -> list[dict]:
    """A whole recording's segments of a run that hears parties as its answer lists them:
    each party's stream numbered on from the one before (``segmenting``), put in time order
    and numbered anew, as the library's ``compose`` numbers them (a stable sort: at one
    time, the parties in stream order); one heard as one stream keeps its order."""
    ordered = sorted(segments, key=lambda r: (r["start_s"], r["end_s"]))
    return [r | {"segment": i} for i, r in enumerate(ordered)]


def commit(rows: list[dict], task: int, layout: Layout) -> Written:
    """Sort write task ``task``'s rows by recording and write them (module docstring)."""
    stem = f"{layout.run_id}-{task:06d}"
    groups: dict[str, list[dict]] = {}
    for row in rows:
        groups.setdefault(row["id"], []).append(row)
    done, written = [], Written()
    for rid, group in groups.items():
        segments = whole(group)
        if segments is None:
            written.add(_join(rid, group, stem, layout))
        elif any(r["error"] is not None for r in segments):
            _fail(segments, stem, layout)
            written.failed += 1
        else:
            done.append(segments)
    if done:
        written.new.add(_commit(done, stem, layout))
    return written


def _commit(done: list[list[dict]], stem: str, layout: Layout) -> Totals:
    """Whole recordings -> ``predictions/STEM.parquet``, then ``recordings/STEM.parquet``
    (the commit, its totals in the footer)."""
    labels = list(layout.labels)
    dims = list(layout.dimensions)
    if layout.parties:
        done = [in_time_order(segments) for segments in done]
    records = [
        recording_row(
            segments, labels, layout.plots, dims, layout.exports, layout.formats, layout.parties
        )
        for segments in done
    ]
    totals = Totals.of(records, labels)
    predictions = [r for segments in done for r in segments]
    _write(
        predictions, layout.prediction_schema, storage.join(layout.predictions, stem + ".parquet")
    )
    metadata = {TOTALS_KEY: json.dumps(asdict(totals)).encode()}
    schema = recording_schema(labels, dims, layout.parties).with_metadata(metadata)
    _write(records, schema, storage.join(layout.recordings, stem + ".parquet"))  # the commit
    return totals


def _fail(segments: list[dict], stem: str, layout: Layout) -> None:
    write_errors([r for r in segments if r["error"] is not None], layout.errors, f"segments-{stem}")


def recording_key(rid: str) -> str:
    """A recording's folder of pending parts, and the name it is committed under when its
    parts are joined (``RUN-r-KEY``)."""
    return hashlib.sha1(str(rid).encode()).hexdigest()[:16]


def _join(rid: str, rows: list[dict], stem: str, layout: Layout) -> Written:
    """A recording this task holds in part: its part written to ``pending/KEY/``, then every
    part there read; committed (as ``RUN-r-KEY``) when they make it whole."""
    key = recording_key(rid)
    folder = storage.join(layout.pending, key)
    _write(rows, layout.staged, storage.join(folder, stem + ".parquet"))
    parts, stem_joined = [], f"{layout.run_id}-r-{key}"
    try:
        for uri in storage.list_files(folder, (".parquet",)):
            fs, path = storage.filesystem(uri)
            parts.append(pq.read_table(path, filesystem=fs).cast(layout.staged))
    except OSError:  # FileNotFoundError among them
        if _joined(layout, stem_joined):
            return Written()  # another task joined it and removed the folder meanwhile
        raise  # anything else fails the task: Ray Data runs it again, nothing is lost
    segments = whole(pa.concat_tables(parts).to_pylist()) if parts else None
    if segments is None:
        return Written(pending=1)
    written = Written()
    if any(r["error"] is not None for r in segments):
        _fail(segments, stem_joined, layout)
        written.failed = 1
    else:
        written.new = _commit([segments], stem_joined, layout)
    storage.delete_dir(folder)
    return written


def _joined(layout: Layout, stem: str) -> bool:
    """Whether ``stem`` (a joined recording) was committed, or reported failed, already."""
    if storage.exists(storage.join(layout.recordings, stem + ".parquet")):
        return True
    prefix = f"segments-{stem}-"
    return any(u.rsplit("/", 1)[-1].startswith(prefix) for u in storage.list_files(layout.errors))


def _write(rows: list[dict], schema: pa.Schema, uri: str) -> None:
    """A whole file or none: two tasks joining the same recording may write it at once."""
    storage.write_table(uri, pa.Table.from_pylist(rows, schema=schema))


def repair(predictions: str, recordings: str) -> None:
    """Before a run: a file a crash cut short loses its footer, and a predictions file whose
    recordings file was never written is not committed; both halves of such a pair are
    removed, so those recordings are done again (the resume reads ``recordings/``)."""
    drop_truncated(predictions)
    drop_truncated(recordings)
    stems = {name: _stems(folder) for name, folder in (("p", predictions), ("r", recordings))}
    for name, folder in (("p", predictions), ("r", recordings)):
        other = stems["r" if name == "p" else "p"]
        for stem in sorted(stems[name] - other):
            storage.delete_file(storage.join(folder, stem + ".parquet"))


def _stems(folder: str) -> set[str]:
    return {
        uri.rsplit("/", 1)[-1].removesuffix(".parquet")
        for uri in storage.list_files(folder, (".parquet",))
    }


def output_totals(recordings: str, labels: list[str], run_id: str = "") -> tuple[Totals, Totals]:
    """Sums over every committed recording, and over those ``run_id`` committed (its files'
    names start with it): from each recordings file's footer (one small read per file; the
    rows are read only for a file without the totals)."""
    totals, new = Totals(), Totals()
    for uri in storage.list_files(recordings, (".parquet",)):
        fs, path = storage.filesystem(uri)
        with fs.open_input_file(path) as f:
            meta = pq.read_metadata(f).metadata or {}
            if TOTALS_KEY in meta:
                these = Totals.from_dict(json.loads(meta[TOTALS_KEY]))
            else:
                f.seek(0)
                these = Totals.of(pq.read_table(f).to_pylist(), labels)
        totals.add(these)
        if run_id and uri.rsplit("/", 1)[-1].startswith(f"{run_id}-"):
            new.add(these)
    return totals, new


def sink(layout: Layout, rows: int):
    """``RecognizeSink``: the streaming job's write (``commit`` per task)."""
    from ray.data import Datasink
    from ray.data.block import BlockAccessor

    class RecognizeSink(Datasink):
        """Each write task commits the recordings it holds whole, and joins those whose
        last part it writes; what the run committed is read back from the files."""

        @property
        def min_rows_per_write(self) -> int:
            return rows

        def write(self, blocks, ctx) -> None:
            tables = [BlockAccessor.for_block(b).to_arrow() for b in blocks]
            tables = [t.cast(layout.staged) for t in tables if t.num_rows]
            if tables:
                commit(pa.concat_tables(tables).to_pylist(), ctx.task_idx, layout)

    return RecognizeSink()
