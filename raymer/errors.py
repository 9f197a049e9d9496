"""The errors raymer raises on purpose, by whose fault they are.

``UsageError`` (a ``ValueError``): the settings, arguments or inputs cannot be used; the
message says which and why, and the same call with other settings would work. The CLI exits
2 on these, and on ``raymer.models.errors.ModelError`` (models/ imports nothing of raymer). Anything else that escapes a command is a run that failed (exit 1): a known
failure (``RunError``, a training, service or submission failure) prints its sentence, any
other exception is a bug and says so.
"""

from __future__ import annotations


class UsageError(ValueError):
    """A setting, argument or input that cannot be used; the message says which and why."""


class RunError(RuntimeError):
    """A run that started and could not finish; the message says why."""


class AudioError(UsageError):
    """Audio that cannot be used; the message says why in words a person understands."""


class AudioTooLarge(AudioError):
    """Audio over a size or duration limit (HTTP 413 when serving)."""
