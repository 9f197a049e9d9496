"""Two-party calls (``segment.channels: split``): a recording of several channels heard as a
party per channel (``Parties``), by one rule for the library's files and the service's
uploads (``heard_as``); ``core.compose`` judges each party's stream on its own."""

from __future__ import annotations

from dataclasses import dataclass

from raymer.config.parts import SegmentConfig


@dataclass
class Parties:
    """One recording heard as several streams, a party each (a call's channels: ``segment.
    channels: split``): each stream cut, heard and judged on its own, its pieces named after
    its party; the answer is the recording's, its pieces in time order (parties may talk
    over each other: both are kept), with each party's summary (``Prediction.parties``).
    ``identical``: a file whose channels carry one signal, recognised once (one stream)."""

    streams: list
    names: list[str]
    identical: bool = False


def heard_as(source, channels: int, cutting: SegmentConfig, side, same):
    """A recording of ``channels`` channels as ``compose`` hears it (``cutting.channels``):
    itself (mix, or one channel), a ``Parties`` of a stream per channel (``side(k)``), or
    of itself heard once where its channels carry one signal (``same()``). More channels
    than ``channel_names``: an ``AudioError``. The library's files and the service's
    uploads both go through it."""
    if cutting.channels != "split" or channels < 2:
        return source
    cutting.check_channels(channels)
    names = cutting.channel_names
    if same():
        return Parties([source], names[:1], identical=True)
    return Parties([side(k) for k in range(channels)], names[:channels])


def upload_heard(source, cutting: SegmentConfig):
    """A service's upload (``Checked``) as ``heard_as`` hears it; anything else as it is."""
    from raymer.audio.decode import Checked, same_signal

    if not isinstance(source, Checked):
        return source
    return heard_as(
        source, source.channel_count, cutting, source.side,
        lambda: same_signal(source.data, source.limits, source.channel_count),
    )  # fmt: skip
