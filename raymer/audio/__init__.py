"""The audio front end: everything between a recording and the model's inputs, no Ray.

- ``decode``: the one decoder and its guard (``open_audio``, ``decode_audio``, the limits of
  ``raymer.config.DecodeConfig`` checked before the work they protect);
- ``segment``: the one long-audio rule (VAD cuts at pauses, bounded memory);
- ``augment``: recording conditions for training copies; ``prosody``: eGeMAPS descriptors;
  ``normalize``: per-recording and per-speaker frame statistics.

The decoder's names are importable from here too (``raymer.audio.open_audio``).
"""

from raymer.audio.decode import (
    SAMPLE_RATE,
    UNLIMITED,
    AudioError,
    AudioTooLarge,
    check_file,
    decode_audio,
    open_audio,
)

__all__ = [
    "SAMPLE_RATE",
    "UNLIMITED",
    "AudioError",
    "AudioTooLarge",
    "check_file",
    "decode_audio",
    "open_audio",
]
