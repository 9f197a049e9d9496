"""No clip stops a run: exceptions and dead workers become error rows (extract, recognize).

Ray Data retries the task of a worker process that died (a segfault in a decoder, an OOM
kill) without end, so a clip that kills every worker it meets would stop a run for ever.
``CrashLedger`` is a small actor, one per run, that counts the attempts begun and not
finished per batch and per clip: a batch that was begun before and never finished is redone a
clip at a time, each clip in the ledger, and a clip whose worker died ``max_attempts`` times
is an error row instead of another attempt. Only unfinished attempts stay in the ledger, so
its memory is that of the batches in flight and the clips that crashed, whatever the corpus.

The ledger also counts the rows that leave the last stage and their audio seconds
(``count_done``), and the rows passing a named point of the stream (``tallied``, once per
block whatever the retries: extract's inputs and what its resume left to do): ``watched``
shows them as the run's progress line from the driver.

``process`` runs a stage's work on a batch of rows under the one batch-then-item rule
(``itemwise.run_batch``): an exception fails the batch, then the rows are tried one by one,
so one bad row fails alone (``error`` and ``stage`` set).

A clip that kills its worker for real is a drill (``raymer.drills``: ``RAYMER_DRILL=poison:ID``).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections.abc import Callable

from raymer.pipeline.supervisions import channel_of

logger = logging.getLogger(__name__)

Rows = list[dict]


class CrashLedger:
    """Ray actor: attempts begun and not finished, per key (a batch's or a clip's)."""

    def __init__(self) -> None:
        self.open: dict[str, list[int]] = {}  # key -> [begun, finished]
        self.rows, self.audio_s = 0, 0.0  # through the last stage: the progress line
        self.tallied: dict[str, dict[str, int]] = {}  # name -> block key -> rows

    def tally(self, name: str, key: str, rows: int) -> None:
        """Rows of one block at a point of the stream (``tallied``); by the block's key, so
        a retried task counts once."""
        self.tallied.setdefault(name, {})[key] = rows

    def total(self, name: str) -> int:
        return sum(self.tallied.get(name, {}).values())

    def count(self, rows: int, audio_s: float = 0.0) -> None:
        self.rows += rows
        self.audio_s += audio_s

    def counted(self) -> tuple[int, float]:
        return self.rows, self.audio_s

    def begin(self, key: str) -> int:
        """Counts an attempt; returns how many earlier attempts never finished (deaths)."""
        counts = self.open.setdefault(key, [0, 0])
        deaths = counts[0] - counts[1]
        counts[0] += 1
        return deaths

    def finish(self, key: str) -> None:
        counts = self.open.get(key)
        if counts is None:
            return
        counts[1] += 1
        if counts[0] == counts[1]:
            del self.open[key]

    def crashed(self) -> int:
        """Keys with an attempt that never finished (for tests and logs)."""
        return sum(1 for b, f in self.open.values() if b > f)


def new_ledger():
    """The run's ledger: a zero-CPU actor that lives as long as the driver."""
    import ray

    return ray.remote(num_cpus=0, max_restarts=0)(CrashLedger).remote()


def tallied(table, ledger, name: str):
    """Ray Data ``map_batches`` (pyarrow): counts the rows passing this point of the stream
    in the ledger under ``name`` (once per block, whatever the retries); returns them."""
    import ray

    if table.num_rows:
        ids = "\x00".join(sorted(str(i) for i in table.column("id").to_pylist()))
        key = hashlib.sha1(ids.encode()).hexdigest()
        ray.get(ledger.tally.remote(name, key, table.num_rows))
    return table


def count_done(ledger, rows: list[dict], seconds) -> None:
    """The last stage's rows (written or failed) and their audio seconds, for the progress
    line; fire and forget."""
    if ledger is not None and rows:
        ledger.count.remote(len(rows), float(sum(seconds(r) or 0.0 for r in rows)))


@contextlib.contextmanager
def watched(ledger, progress, every_s: float = 1.0, total: str | None = None):
    """Show ``progress`` from the ledger's counts while the block runs (a driver thread);
    with ``total``, the rows tallied under that name are its total (``tallied``)."""
    import threading

    import ray

    stop = threading.Event()

    def poll() -> None:
        while True:
            # a slow or gone ledger costs a progress line, never the run
            with contextlib.suppress(Exception):
                if total is not None:
                    progress.set_total(ray.get(ledger.total.remote(total), timeout=30))
                progress.update(*ray.get(ledger.counted.remote(), timeout=30))
            if stop.wait(every_s):
                return

    thread = threading.Thread(target=poll, name="raymer-progress", daemon=True)
    thread.start()
    try:
        yield progress
    finally:
        stop.set()
        thread.join(timeout=60)
        with contextlib.suppress(Exception):  # the counts at the end
            if total is not None:
                progress.set_total(ray.get(ledger.total.remote(total), timeout=30))
            progress.update(*ray.get(ledger.counted.remote(), timeout=30))
        progress.close()


def row_key(row: dict) -> str:
    """A row's name in the ledger: its id, and its segment or channel where it has one."""
    segment, channel = row.get("segment"), channel_of(row)
    key = f"{row['id']}#{segment}" if segment is not None else str(row["id"])
    return f"{key}@{channel}" if channel is not None else key


def batch_key_of(stage: str, rows: Rows) -> str:
    digest = hashlib.sha1("\x00".join(sorted(row_key(r) for r in rows)).encode())
    return f"{stage}:batch:{digest.hexdigest()}"


def process(
    rows: Rows,
    work: Callable[[Rows], None],
    stage: str,
    ledger=None,
    max_attempts: int = 3,
) -> None:
    """``work(rows)`` fills ``rows`` in place (a failed row gets its ``error``: the stages
    run their models through ``itemwise.run_batch``, the one batch-then-item rule). This adds
    what an exception cannot say, a dead worker: with a ``ledger``, a batch begun before and
    never finished (its worker died) is done a row at a time, each row in the ledger, and a
    row whose worker died ``max_attempts`` times gets an error instead of an attempt. An
    exception that escapes ``work`` costs only the rows it happens on (``_attempt``)."""
    if not rows:
        return
    batch_key = batch_key_of(stage, rows)
    if not begin(ledger, batch_key):
        _attempt(rows, work, stage)
        finish(ledger, batch_key)
        return
    logger.warning("a %s worker died on a batch of %d; one clip at a time", stage, len(rows))
    for row in rows:
        key = f"{stage}:{row_key(row)}"
        died = begin(ledger, key)
        if died >= max_attempts:
            row["stage"], row["error"] = died_row(died, stage)
        else:
            _attempt([row], work, stage)
        finish(ledger, key)
    finish(ledger, batch_key)


def died_row(died: int, stage: str) -> tuple[str, str]:
    """(stage, error) of a clip whose worker died ``died`` times: no more attempts."""
    return stage, f"the worker processing this clip died {died} times ({stage})"


def _attempt(rows: Rows, work: Callable[[Rows], None], stage: str) -> None:
    """``work`` under the one batch-then-item rule (``itemwise.run_batch``): an exception
    that escapes it costs the rows it happens on, each tried alone."""
    from raymer.itemwise import ItemError, run_batch

    def run(some: Rows) -> Rows:
        work(some)
        return some

    for row, result in zip(rows, run_batch(run, rows, stage), strict=True):
        if isinstance(result, ItemError):
            row["error"], row["stage"] = result.message, stage


def begin(ledger, key: str) -> int:
    """Counts an attempt at ``key``; returns its earlier attempts that never finished."""
    if ledger is None:
        return 0
    import ray

    return ray.get(ledger.begin.remote(key))


def finish(ledger, key: str) -> None:
    if ledger is not None:  # waited for: a worker that dies next must not lose it
        import ray

        ray.get(ledger.finish.remote(key))
