"""Fault drills: the one seam through which a test makes a worker process die for real.

``RAYMER_DRILL`` arms one drill; the driver reads it (``armed``) and hands the ``Drill`` to
the workers it concerns. Unset, ``armed()`` is None, no stage or worker imports this module,
and the code they run holds ``None`` and never calls it.

- ``poison:ID``: the Whisper stage of ``raymer extract`` and ``raymer recognize`` kills its
  process every time it meets clip (recording) ``ID``; the crash ledger must turn that clip
  into an error row after ``max_attempts`` deaths and lose nothing else.
- ``train-kill:EPOCH:MARKER``: once (while the file ``MARKER`` does not exist), training
  worker rank 1 (or 0 alone) dies after the first optimizer step of the epoch after
  ``EPOCH``; the run must resume from its last checkpoint.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from raymer.errors import UsageError

DRILL_ENV = "RAYMER_DRILL"
KINDS = {"poison": 1, "train-kill": 2}  # kind -> how many arguments it takes


@dataclass(frozen=True)
class Drill:
    """One armed drill: its kind and arguments (module docstring)."""

    kind: str
    args: tuple[str, ...]

    def meet(self, ids: list[str]) -> None:
        """A Whisper stage about to transcribe these clips: a poisoned one kills it."""
        if self.kind == "poison" and self.args[0] in ids:
            os._exit(1)

    def after_step(self, epoch: int, rank: int, world_size: int) -> None:
        """A training worker after its first optimizer step of ``epoch`` (0-based). It waits
        a few seconds first: Ray Train registers a checkpoint when it polls the workers
        (every 2 s), and the drill is about the restart."""
        if self.kind != "train-kill":
            return
        at, marker = int(self.args[0]), Path(self.args[1])
        if epoch == at and rank == min(1, world_size - 1) and not marker.exists():
            time.sleep(6)
            marker.write_text(f"worker {rank} killed in epoch {epoch + 1}\n")
            os._exit(1)


def armed() -> Drill | None:
    """The drill ``RAYMER_DRILL`` arms in this (driver) process, or None."""
    value = os.environ.get(DRILL_ENV, "").strip()
    if not value:
        return None
    kind, _, rest = value.partition(":")
    if kind not in KINDS:
        raise UsageError(f"{DRILL_ENV}={value!r}: unknown drill {kind!r}; one of {sorted(KINDS)}")
    args = tuple(rest.split(":", KINDS[kind] - 1)) if rest else ()
    if len(args) != KINDS[kind] or not all(args):
        raise UsageError(f"{DRILL_ENV}={value!r}: {kind} takes {KINDS[kind]} argument(s)")
    if kind == "train-kill" and not args[0].isdigit():
        raise UsageError(f"{DRILL_ENV}={value!r}: the epoch must be a whole number")
    return Drill(kind, args)
