"""The decode guard's settings, shared by ``extract``, ``recognize`` and ``serve``
(``raymer.audio.DecodeLimits`` applies them), and the bound on worker crashes."""

from __future__ import annotations

from pydantic import Field


def max_file_mb(default: float):
    return Field(
        default,
        gt=0,
        description="Files larger than this are reported as errors before they are read.",
    )


def max_channels():
    return Field(
        32, ge=1, description="Audio with more channels than this is refused (from its header)."
    )


def decode_timeout_s(default: float):
    return Field(
        default,
        gt=0,
        description="Decoding one file may take this long (wall clock), else it is an error.",
    )


def max_attempts():
    return Field(
        3,
        ge=1,
        le=20,
        description="A clip whose worker process dies this many times (a crash, an OOM kill) "
        "becomes an error row instead of being retried again.",
    )
