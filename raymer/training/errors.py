"""Errors of training and evaluation (no heavy imports: the CLI catches them)."""

from raymer.errors import RunError


class TrainingError(RunError):
    """A run that cannot go on (a NaN loss); the message says what happened and what to try."""
