"""Ray start-up shared by every command: local by default, a cluster with RAY_ADDRESS.

Importing raymer changes no environment variable. A local Ray that raymer starts binds
127.0.0.1 and reports no usage: both are arguments of the start (and the usage setting is in
the environment only while Ray starts its processes), so whoever imports raymer keeps theirs.
"""

from __future__ import annotations

import contextlib
import os

# Ray Data's read and map tasks ask for a whole CPU by default: streamed beside fractional
# model actors on a small machine (2 CPUs: 1 for two Whisper actors, 0.25 for the model) such
# a task could never be scheduled, and the job waited for ever. Reads and the light Arrow
# steps after them (renaming columns, filters) ask for a quarter.
READ_ARGS = {"num_cpus": 0.25}


def warm_workers(cpus: int | None = None) -> dict:
    """The ``_system_config`` of a local Ray that raymer starts: its idle workers are kept
    for the run. A command runs several Ray Data executions (read and resume, the stream,
    the summary) of fractional tasks, up to four per CPU; Ray's defaults keep as many idle
    workers as CPUs for a second, so every execution started its workers again (a Python
    process importing pyarrow and Ray Data: seconds each on a small machine, 8 of the 10 s
    that reading and resuming 12 clips took on 2 CPUs). Peak memory is unchanged: the workers
    kept are those the execution started."""
    cpus = cpus or os.cpu_count() or 1
    return {"num_workers_soft_limit": 4 * cpus, "idle_worker_killing_time_threshold_ms": 300_000}


def init_ray(**kwargs) -> None:
    """Connect to ``RAY_ADDRESS`` when set, else start (or reuse) a local Ray."""
    import ray
    import ray.data

    from raymer import console

    if ray.is_initialized():
        return
    kwargs.setdefault("log_to_driver", console.verbose())  # worker output: Ray's log files
    local = not os.environ.get("RAY_ADDRESS") and not kwargs.get("address")
    if local:
        if os.environ.get("RAY_OBJECT_STORE_MEMORY"):
            kwargs.setdefault("object_store_memory", int(os.environ["RAY_OBJECT_STORE_MEMORY"]))
        if os.environ.get("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0") in ("0", ""):
            kwargs.setdefault("_node_ip_address", "127.0.0.1")  # not every interface
        kwargs.setdefault("_system_config", warm_workers(kwargs.get("num_cpus")))
    console.quiet_ray()
    with scoped_env(RAY_USAGE_STATS_ENABLED="0"):
        ray.init(**kwargs)
    console.quiet_ray()
    with contextlib.suppress(Exception):  # where Ray keeps this session's logs
        console.native_stderr_to(ray._private.worker.global_worker.node.get_logs_dir_path())
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = console.verbose()  # else raymer's own progress line


@contextlib.contextmanager
def scoped_env(**defaults: str):
    """Set the variables not already set, for the block only (the processes started inside
    it inherit them); the environment is as it was afterwards."""
    added = [name for name in defaults if name not in os.environ]
    for name in added:
        os.environ[name] = defaults[name]
    try:
        yield
    finally:
        for name in added:
            os.environ.pop(name, None)


@contextlib.contextmanager
def shuffle_by_sort():
    """Ray Data's sort-based shuffle for the groupings and aggregations inside the block
    (restored after): Ray 2.60's default hash shuffle starts aggregator actors for 200
    partitions, seconds of start-up that dwarf the work of summarising a run."""
    import ray.data
    from ray.data.context import ShuffleStrategy

    ctx = ray.data.DataContext.get_current()
    before = ctx.shuffle_strategy
    ctx.shuffle_strategy = ShuffleStrategy.SORT_SHUFFLE_PULL_BASED
    try:
        yield
    finally:
        ctx.shuffle_strategy = before
