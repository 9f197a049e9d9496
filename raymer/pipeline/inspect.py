"""``raymer corpus inspect``: what is in a corpus before the expensive run, from headers only.

One Ray Data job over the input as ``extract`` and ``recognize`` read it (a manifest, a
folder, Parquet shards): each file's header through every check the one decoder makes
before it decodes (``raymer.audio.headers.probe``: kind and size, a WAV's length, sample
rate, channels and duration against extract's limits), so a file that would fail gets
the reason extract would give it; then Ray Data sums what was found (clips, hours, bytes,
duration percentiles), counts it (sample rates, channels, containers, codecs, labels,
folds, problems by reason), groups it (duplicate ids, clips per speaker). The driver holds
the survey, never the corpus (durations to a hundredth of a second). A shard's rows have no header of their own: their bytes are
read (a row group at a time) and probed the same way.
"""

from __future__ import annotations

import json
import re
import tempfile
import time
from dataclasses import asdict, dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from raymer import storage
from raymer.config.parts import DecodeConfig
from raymer.runtime import READ_ARGS

HEADERS = pa.schema(
    [
        ("id", pa.string()),
        ("path", pa.string()),
        ("container", pa.string()),
        ("codec", pa.string()),
        ("sample_rate", pa.int64()),
        ("channels", pa.int64()),
        ("duration_s", pa.float64()),
        ("size_bytes", pa.int64()),
        ("stage", pa.string()),
        ("error", pa.string()),
        ("label", pa.string()),
        ("speaker", pa.string()),
        ("fold", pa.string()),
        ("failed", pa.int64()),
    ]
)
COUNTED = ("sample_rate", "channels", "container", "codec", "label", "fold")  # a table each
QUANTILES = (0.0, 0.05, 0.5, 0.95, 1.0)
EXAMPLES = 10  # problem files and duplicate ids shown


@dataclass
class Survey:
    """What ``inspect_corpus`` found (``inspect.json``): ``counts`` per sample rate,
    channels, container, codec, label and fold (each value -> clips); ``durations_s``:
    min, p5, median, p95, max of the readable clips; ``problems``: reason -> files, with
    ``examples`` (id, path, stage, error: what extract would write)."""

    input: str
    clips: int
    readable: int
    hours: float
    gigabytes: float
    durations_s: dict[str, float | None]
    counts: dict[str, dict[str, int]]
    problems: dict[str, int]
    examples: list[dict]
    duplicate_ids: int
    duplicate_examples: list[dict]
    speakers: dict[str, float]
    wall_s: float
    files_per_s: float
    problems_uri: str | None = None
    sharded: bool = False
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return asdict(self)


def inspect_corpus(uri: str, output: str | None = None, limits: DecodeConfig | None = None):
    """Survey ``uri`` (``Survey``); with ``output``, ``inspect.json`` and ``problems/``
    (every file that would fail, with its reason) are written there. ``limits``: extract's
    decode limits by default (the reasons extract would give)."""
    from raymer.config import ExtractConfig
    from raymer.pipeline.inputs import read_inputs
    from raymer.pipeline.packed import source
    from raymer.runtime import init_ray, shuffle_by_sort

    start, limits = time.perf_counter(), limits or ExtractConfig().decode
    src = source(uri, files=True)  # before Ray starts: a wrong path fails at once
    scratch = storage.join(output, "_inspect") if output else tempfile.mkdtemp("-inspect")
    init_ray()
    inputs = read_inputs(src, storage.join(scratch, "inputs"), frozenset())
    ds = inputs.dataset
    if inputs.sharded:
        from raymer.pipeline.shards import fetched, in_shard_order

        ds = fetched(in_shard_order(ds), READ_ARGS["num_cpus"])
    headers = ds.map_batches(
        probe_batch, fn_kwargs={"limits": limits}, batch_format="pyarrow", num_cpus=0.5
    ).materialize()
    with shuffle_by_sort():
        survey = _survey(uri, headers)
    if output:
        survey.problems_uri = _write_problems(headers, storage.join(output, "problems"))
    storage.delete_dir(scratch)
    survey.sharded = inputs.sharded
    survey.wall_s = time.perf_counter() - start
    survey.files_per_s = survey.clips / survey.wall_s if survey.wall_s else 0.0
    if output:
        storage.write_bytes(storage.join(output, "inspect.json"), _json(survey).encode())
    return survey


def _json(survey: Survey) -> str:
    return json.dumps(survey.to_json(), indent=2) + "\n"


def probe_batch(table: pa.Table, limits: DecodeConfig) -> pa.Table:
    """Input rows -> a header row each (``HEADERS``): a file's header, or the error and
    stage extract would give it (``rows.file_failure``)."""
    from raymer.audio.headers import probe
    from raymer.pipeline.rows import NO_PATH, file_failure
    from raymer.pipeline.shards import source_of

    out = []
    for row in table.to_pylist():
        path = row.get("path") or ""
        found = {"id": row.get("id"), "path": path, "size_bytes": None}
        found |= {k: _text(row.get(k)) for k in ("label", "speaker")}
        found["fold"] = _text(row.get("fold") or row.get("session"))
        source, unread = source_of(row)
        if not path:
            found["stage"], found["error"] = NO_PATH
        elif unread:
            found["stage"], found["error"] = "read", unread
        else:
            _probe(found, row, source, limits, probe, file_failure)
        found["failed"] = int(found.get("error") is not None)
        out.append(found)
    return pa.Table.from_pylist(out, schema=HEADERS)


def _probe(found: dict, row: dict, source, limits: DecodeConfig, probe, file_failure) -> None:
    from raymer.pipeline.supervisions import past_end, span_of

    path, opened = found["path"], not isinstance(source, str)
    try:
        if isinstance(source, str):
            from raymer.audio.decode import check_file

            found["size_bytes"] = check_file(path, limits)
            opened = True
        else:
            found["size_bytes"] = len(source)
        header = probe(source, limits)
    except Exception as err:  # the reason extract would give, and the file's stage
        found["stage"], found["error"] = file_failure(path, err, opened)
        return
    found |= {
        "container": header.container,
        "codec": header.codec,
        "sample_rate": header.sample_rate,
        "channels": header.channels,
        "duration_s": header.duration_s,
    }
    span, _ = span_of(row)  # a supervision's span of its recording: that is the clip
    if span is not None:
        found["duration_s"] = span[1]
        why = past_end(str(row.get("id")), span, header.duration_s, path)
        if why:
            found["stage"], found["error"] = "read", why


def _text(value) -> str | None:
    return None if value is None or value == "" else str(value)


def _survey(uri: str, headers) -> Survey:
    """The survey in one Ray Data execution over the header rows: each block's counts
    (``counts_of``: totals, values, durations to the hundredth of a second, ids, speakers,
    problems), summed by one grouping over as many partitions as the cluster has CPUs,
    then digested block by block (``digest_of``: the ids seen twice, the clips per speaker
    as counts of counts), and only the digest comes to the driver."""
    import ray

    parts = max(2, int(ray.cluster_resources().get("CPU", 2)))
    counted = headers.map_batches(counts_of, batch_format="pyarrow", **READ_ARGS)
    summed = counted.groupby(["kind", "value"], num_partitions=parts).sum("n")
    digest = summed.map_batches(digest_of, batch_format="pyarrow", **READ_ARGS).take_all()
    counts: dict[str, dict[str, int]] = {}
    for row in digest:  # (a block's digest: ``duplicates`` and speakers summed over blocks)
        found = counts.setdefault(row["kind"], {})
        found[row["value"]] = found.get(row["value"], 0) + int(row["n"])
    counts = {k: dict(sorted(v.items(), key=lambda i: (-i[1], i[0]))) for k, v in counts.items()}
    totals, twice = counts.pop("total", {}), counts.pop("twice", {})
    clips, failed = totals.get("clips", 0), totals.get("failed", 0)
    return Survey(
        input=uri,
        clips=clips,
        readable=clips - failed,
        hours=totals.get("centiseconds", 0) / 100 / 3600,
        gigabytes=totals.get("bytes", 0) / 1e9,
        durations_s=_quantiles(counts.pop("duration_cs", {})),
        counts={k: counts[k] for k in COUNTED if k in counts},
        problems=counts.get("problem", {}),
        examples=[json.loads(e) for e in sorted(counts.get("example", {}))[:EXAMPLES]],
        duplicate_ids=int(counts.get("duplicates", {}).get("ids", 0)),
        duplicate_examples=[{"id": k, "rows": n} for k, n in sorted(twice.items())[:EXAMPLES]],
        speakers=_speakers(counts.get("clips_per_speaker", {})),
        wall_s=0.0,
        files_per_s=0.0,
    )


def _quantiles(histogram: dict[str, int]) -> dict[str, float | None]:
    """Duration percentiles (``QUANTILES``) from the count of clips of each length in
    hundredths of a second."""
    sizes = sorted((int(k), n) for k, n in histogram.items())
    total = sum(n for _, n in sizes)
    out: dict[str, float | None] = {}
    for q in QUANTILES:
        want, seen, value = q * (total - 1), 0, None
        for size, n in sizes:
            seen += n
            if seen > want:
                value = size / 100
                break
        out[_quantile_name(q)] = value
    return out


def _quantile_name(q: float) -> str:
    return {0.0: "min", 0.5: "median", 1.0: "max"}.get(q, f"p{round(q * 100)}")


def _speakers(per: dict[str, int]) -> dict[str, float]:
    """Speakers and clips per speaker (min, median, max), from the count of speakers of
    each number of clips."""
    if not per:
        return {}
    sizes = sorted((int(k), n) for k, n in per.items())
    total, seen, median = sum(n for _, n in sizes), 0, sizes[0][0]
    for size, n in sizes:
        seen += n
        if seen * 2 >= total:
            median = size
            break
    return {
        "speakers": total,
        "clips_min": sizes[0][0],
        "clips_median": median,
        "clips_max": sizes[-1][0],
    }


def _failed(headers):
    return headers.map_batches(_failed_rows, batch_format="pyarrow", **READ_ARGS)


def _failed_rows(table: pa.Table) -> pa.Table:
    return table.filter(pc.equal(table.column("failed"), 1))


def counts_of(table: pa.Table) -> pa.Table:
    """Header rows -> (kind, value, n): one block's counts of each ``COUNTED`` column's
    values (of the readable clips; labels and folds of every row), the totals, the
    readable clips' durations in hundredths of a second, the counts of ids and speakers,
    of the problems' reasons (``reason``) and up to ``EXAMPLES`` problem rows (JSON)."""
    kinds, values, ns = [], [], []

    def add(kind: str, column) -> None:
        for item in pc.value_counts(column.drop_null()).to_pylist():
            kinds.append(kind), values.append(str(item["values"])), ns.append(item["counts"])

    ok = pc.equal(table.column("failed"), 0)
    durations = pc.round(pc.multiply(table.column("duration_s").filter(ok), 100))
    durations = pc.cast(durations.drop_null(), pa.int64())
    failed = pc.sum(table.column("failed")).as_py() or 0
    sizes = pc.sum(table.column("size_bytes")).as_py() or 0
    for value, n in (("clips", table.num_rows), ("failed", failed), ("bytes", sizes)):
        kinds.append("total"), values.append(value), ns.append(int(n))
    kinds.append("total"), values.append("centiseconds"), ns.append(pc.sum(durations).as_py() or 0)
    add("duration_cs", durations)
    for kind in COUNTED:
        column = table.column(kind)
        add(kind, column if kind in ("label", "fold") else column.filter(ok))
    add("id", table.column("id"))
    add("speaker", table.column("speaker"))
    bad = _failed_rows(table).to_pylist()
    add("problem", pa.array([reason(r) for r in bad], pa.string()))
    for row in bad[:EXAMPLES]:
        kinds.append("example"), ns.append(1)
        values.append(json.dumps({k: row[k] for k in ("id", "path", "stage", "error")}))
    return pa.table({"kind": kinds, "value": values, "n": pa.array(ns, pa.int64())})


def digest_of(table: pa.Table) -> pa.Table:
    """Summed counts -> what the driver needs of them: the small tables as they are; of the
    ids, how many were seen twice or more (``duplicates``) and up to ``EXAMPLES`` of them
    (``twice``); of the speakers, how many have each number of clips."""
    kinds, values, ns = [], [], []
    rows = table.rename_columns(["kind", "value", "n"]).to_pylist()
    twice = [r for r in rows if r["kind"] == "id" and r["n"] > 1]
    per: dict[str, int] = {}
    for r in rows:
        if r["kind"] == "speaker":
            per[str(r["n"])] = per.get(str(r["n"]), 0) + 1
        elif r["kind"] != "id":
            kinds.append(r["kind"]), values.append(r["value"]), ns.append(r["n"])
    for r in twice[:EXAMPLES]:
        kinds.append("twice"), values.append(r["value"]), ns.append(r["n"])
    if twice:
        kinds.append("duplicates"), values.append("ids"), ns.append(len(twice))
    for size, n in per.items():
        kinds.append("clips_per_speaker"), values.append(size), ns.append(n)
    return pa.table({"kind": kinds, "value": values, "n": pa.array(ns, pa.int64())})


def reason(row: dict) -> str:
    """A problem's reason without what names its file or its numbers (so that files
    failing alike count together): ``stage: error``, the path and numbers left out."""
    error = (row.get("error") or "").replace(row.get("path") or "\0", "FILE")
    error = re.sub(r"\d[\d,.]*", "N", error)
    return f"{row.get('stage')}: {error[:120]}"


def _write_problems(headers, uri: str) -> str | None:
    """Every file that would fail (id, path, stage, error) under ``uri`` as Parquet."""
    problems = _failed(headers).select_columns(["id", "path", "stage", "error"])
    storage.delete_dir(uri)
    fs, path = storage.filesystem(uri)
    problems.write_parquet(path, filesystem=fs, **{"ray_remote_args": READ_ARGS})
    return uri


def table(survey: Survey) -> str:
    """The survey as the console shows it."""
    lines = [
        f"corpus {survey.input}{' (Parquet shards)' * survey.sharded}: {survey.clips:,} clips, "
        f"{survey.readable:,} readable, {survey.hours:,.2f} h, {survey.gigabytes:,.2f} GB",
    ]
    d = survey.durations_s
    if d.get("median") is not None:
        lines.append(
            "duration s: " + ", ".join(f"{k} {v:,.2f}" for k, v in d.items() if v is not None)
        )
    for kind, values in survey.counts.items():
        shown = ", ".join(f"{v} {n:,}" for v, n in list(values.items())[:12])
        more = f" (+{len(values) - 12} more)" if len(values) > 12 else ""
        lines.append(f"{kind}: {shown}{more}")
    if survey.speakers:
        s = survey.speakers
        lines.append(
            f"speakers: {s['speakers']:,}, clips per speaker min {s['clips_min']:,}, "
            f"median {s['clips_median']:,.0f}, max {s['clips_max']:,}"
        )
    lines.append(f"duplicate ids: {survey.duplicate_ids:,}")
    lines += [f"  {r['id']}: {r['rows']} rows" for r in survey.duplicate_examples]
    failed = survey.clips - survey.readable
    lines.append(f"problems: {failed:,} files extract would refuse")
    lines += [f"  {n:,} x {why}" for why, n in survey.problems.items()]
    lines += [f"  e.g. {r['id']}: {r['stage']}: {r['error']}" for r in survey.examples]
    lines.append(f"{survey.wall_s:.1f} s, {survey.files_per_s:,.0f} files/s")
    return "\n".join(lines)
