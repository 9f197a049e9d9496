"""What a raymer run shows on the terminal: its own lines, not Ray's.

Quiet is the default. Ray's own console logs (start-up, Ray Data's progress blocks, Train
and Serve chatter) are raised to errors on the console; they still go to Ray's log files
(``/tmp/ray/session_latest/logs``). Worker output is not echoed to the driver. A run shows one
progress bar (a terminal) or a line every ``RAYMER_PROGRESS_S`` seconds (30; logs, CI).
``set_verbose(True)`` (``raymer --verbose``, or ``RAYMER_VERBOSE=1``) leaves Ray as it is.
"""

from __future__ import annotations

import logging
import os
import sys
import time
import warnings

_verbose: bool | None = None


def set_verbose(value: bool) -> None:
    global _verbose
    _verbose = value


def verbose() -> bool:
    if _verbose is not None:
        return _verbose
    return os.environ.get("RAYMER_VERBOSE", "").strip().lower() in {"1", "true", "yes", "on"}


def quiet_ray() -> None:
    """Ray's console handlers (not its file handlers) to ERROR, unless verbose. Called again
    after a library configures its loggers (Ray Data at import, Serve at start)."""
    if verbose():
        return
    names = ["ray", *(n for n in logging.root.manager.loggerDict if n.startswith("ray."))]
    for name in names:
        for handler in logging.getLogger(name).handlers:
            if isinstance(handler, logging.StreamHandler) and not isinstance(
                handler, logging.FileHandler
            ):
                handler.setLevel(logging.ERROR)


_divert_native = False


def divert_native_stderr() -> None:
    """The CLI's choice (a library user's process is never touched): once Ray runs in this
    process (``native_stderr_to``), what is written to file descriptor 2 outside Python,
    such as Ray's C++ log lines (also in Ray's own log files), goes to Ray's log folder;
    Python's ``sys.stderr`` (raymer's lines, progress, tracebacks) stays the terminal."""
    global _divert_native
    _divert_native = True


def native_stderr_to(log_dir: str) -> None:
    """Fd 2 -> ``log_dir/raymer-driver-native.err``, Python's stderr kept on the terminal
    (a duplicate of the old fd 2), once per process, when the CLI asked and not verbose."""
    global _divert_native
    if not _divert_native or verbose():
        return
    _divert_native = False
    path = os.path.join(log_dir, "raymer-driver-native.err")
    try:
        target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    except OSError:  # no log folder here: leave the terminal as it is
        return
    old = sys.stderr
    old.flush()
    terminal = os.dup(2)
    os.dup2(target, 2)
    os.close(target)
    sys.stderr = open(  # noqa: SIM115 (the process's stderr from now on)
        terminal, "w", buffering=1, encoding=old.encoding, errors="backslashreplace"
    )
    for logger in [logging.root, *logging.root.manager.loggerDict.values()]:
        for handler in getattr(logger, "handlers", []):
            if isinstance(handler, logging.StreamHandler) and handler.stream is old:
                handler.setStream(sys.stderr)
    _ray_messages_to(path)
    # Ray Data's advice to tune a job ("the operator only received 1 input(s)") is Ray's
    # to log, not the run's to show
    warnings.filterwarnings("ignore", category=UserWarning, module=r"ray(\.|$)")


def _ray_messages_to(path: str) -> None:
    """The messages Ray's driver thread prints to stdout as "(raylet) ..." (a task of its
    own that failed, such as Serve's controller ending itself at shutdown) -> ``path``.
    The thread looks the printer up by name at each message (Ray 2.60)."""
    import contextlib

    with contextlib.suppress(ImportError, AttributeError):
        from ray._private import worker

        printer = worker.print_worker_logs

        def to_log(data, ignore_prefix: bool) -> None:
            with open(path, "a") as f:
                printer(data, f, ignore_prefix)

        if hasattr(worker, "print_to_stdstream"):
            worker.print_to_stdstream = to_log


def progress_every_s() -> float:
    try:
        return max(1.0, float(os.environ.get("RAYMER_PROGRESS_S", "30")))
    except ValueError:
        return 30.0


class Progress:
    """Items done out of ``total`` (None: unknown), with audio seconds per second and the
    time left: a tqdm bar on a terminal, else a line every ``every_s`` seconds."""

    def __init__(self, what: str, total: int | None, unit: str = "clips") -> None:
        self.what, self.total, self.unit = what, total, unit
        self.started = time.monotonic()
        self.done, self.audio_s = 0, 0.0
        self.every_s = progress_every_s()
        self.last_line = self.started
        self.bar = None
        if sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=what, unit=f" {unit}", file=sys.stderr, leave=False)

    def set_total(self, total: int) -> None:
        """The total, once the job knows it (after its resume: what is left to do)."""
        if total and total != self.total:
            self.total = total
            if self.bar is not None:
                self.bar.total = total
                self.bar.refresh()

    def update(self, done: int, audio_s: float = 0.0) -> None:
        done = min(done, self.total) if self.total is not None else done
        if self.bar is not None:
            if done > self.done:
                self.bar.update(done - self.done)
            if audio_s:
                rate = audio_s / max(1e-6, time.monotonic() - self.started)
                self.bar.set_postfix_str(f"{rate:.1f} audio s/s", refresh=False)
        self.done, self.audio_s = max(self.done, done), max(self.audio_s, audio_s)
        now = time.monotonic()
        if self.bar is None and now - self.last_line >= self.every_s:
            self.last_line = now
            print(self.line(), file=sys.stderr, flush=True)

    def line(self) -> str:
        elapsed = time.monotonic() - self.started
        parts = [f"{self.what}: {self.done:,}"]
        if self.total:
            parts[0] += f"/{self.total:,} {self.unit} ({100 * self.done / self.total:.0f}%)"
        else:
            parts[0] += f" {self.unit}"
        if self.audio_s:
            parts.append(f"{self.audio_s / max(elapsed, 1e-6):.1f} audio s/s")
        if self.total and self.done:
            left = elapsed * (self.total - self.done) / self.done
            parts.append(f"ETA {_clock(left)}")
        parts.append(f"{_clock(elapsed)} elapsed")
        return " | ".join(parts)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        elif self.last_line > self.started:  # a long run in a log: where it ended
            print(self.line(), file=sys.stderr, flush=True)


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"
