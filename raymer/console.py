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
