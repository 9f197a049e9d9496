"""Column names and Arrow schemas: the contract between extraction, training and serving.

``OUTPUT/features/*.parquet`` holds one row per clip with the columns of
``FEATURES_SCHEMA`` first, then the manifest's other columns, carried through unchanged.
``OUTPUT/errors/errors.parquet`` holds one row per failed clip (``ERRORS_SCHEMA``).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from raymer.config.train import DIMENSIONS  # noqa: F401 (the rated columns, read from here too)

AUGMENT = "augment"  # an augmented copy's description (extract's augment); null on a clip

# Columns a manifest may have; everything else is carried through as it is.
MANIFEST_COLUMNS = ("path", "id", "label", "speaker", "session", "text")

SEGMENT_TYPE = pa.struct([("start", pa.float32()), ("end", pa.float32()), ("text", pa.string())])

FEATURES_FIELDS: list[tuple[str, pa.DataType, str]] = [
    (
        "id",
        pa.string(),
        "clip id (from the manifest, else the path without its extension, else a digest of the row's text)",
    ),
    ("path", pa.string(), "audio path or URI as read"),
    ("duration_s", pa.float32(), "duration of the decoded audio, seconds (null: text only)"),
    ("label", pa.string(), "emotion label from the manifest (null when unknown)"),
    (
        "speaker",
        pa.string(),
        "speaker id from the manifest (null when unknown); segment.channels: split: the "
        "channel's party (the manifest's then `manifest_speaker`)",
    ),
    ("session", pa.string(), "session id from the manifest (null when unknown)"),
    ("reference_text", pa.string(), "the manifest's `text`: the reference transcript"),
    ("transcript", pa.string(), "Whisper's transcript"),
    ("language", pa.string(), "detected (or forced) language code"),
    ("language_prob", pa.float32(), "probability of that language"),
    ("avg_logprob", pa.float32(), "mean token log-probability of the transcript"),
    ("no_speech_prob", pa.float32(), "Whisper's no-speech probability"),
    ("segments", pa.list_(SEGMENT_TYPE), "timed segments: start, end (s), text"),
    ("wer", pa.float32(), "word error rate of the transcript against reference_text"),
    (
        "audio_frames",
        pa.list_(pa.list_(pa.float32())),
        "Whisper encoder frames (T_a, D_a), then with prosody: true the 25 eGeMAPS "
        "descriptors of each frame; null for a text corpus",
    ),
    ("audio_frame_rate_hz", pa.float32(), "rate of audio_frames"),
    ("audio_embedding", pa.list_(pa.float32()), "mean of the encoder frames (D_a)"),
    ("text_source", pa.string(), "what the text encoder read: asr or reference"),
    ("text_tokens", pa.list_(pa.list_(pa.float32())), "text encoder token states (T_t, D_t)"),
    ("text_embedding", pa.list_(pa.float32()), "mean-pooled, L2-normalised text vector (D_t)"),
    (
        "augment",
        pa.string(),
        "an augmented copy's recording condition (extract's augment); null for the clip itself",
    ),
    ("asr_model", pa.string(), "ASR / audio encoder model name"),
    ("text_model", pa.string(), "text encoder model name"),
]

FEATURES_SCHEMA = pa.schema([pa.field(name, dtype) for name, dtype, _ in FEATURES_FIELDS])

# After the manifest's columns where extract hears a file's channels as parties
# (segment.channels: split); `speaker` is then the party's name.
PARTY_FIELDS: list[tuple[str, pa.DataType, str]] = [
    ("channel", pa.int32(), "segment.channels: split: the row's channel (0-based)"),
    (
        "channels",
        pa.string(),
        "how the file's channels were heard: split (a row per channel, `speaker` its name "
        "in channel_names) or identical (one signal: one row); null: one channel",
    ),
]
_PARTY_TYPES = {name: dtype for name, dtype, _ in PARTY_FIELDS}

ERRORS_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string()),
        pa.field("path", pa.string()),
        pa.field("stage", pa.string()),
        pa.field("error", pa.string()),
    ]
)


def features_table(rows: list[dict], extra_columns: list[str]) -> pa.Table:
    """Rows -> a table with ``FEATURES_SCHEMA`` then the carried-through manifest columns."""
    columns = {f.name: [_coerce(r.get(f.name), f.type) for r in rows] for f in FEATURES_SCHEMA}
    table = pa.table(columns, schema=FEATURES_SCHEMA)
    for name in extra_columns:
        dtype = _PARTY_TYPES.get(name)
        values = [_plain(r.get(name)) for r in rows]
        if dtype is not None:
            values = [_coerce(v, dtype) for v in values]
        table = table.append_column(name, pa.array(values, dtype))
    return table


def _coerce(value, dtype: pa.DataType):
    """Batch values (numpy scalars, NaN for missing) -> what Arrow expects for ``dtype``."""
    if value is None or (isinstance(value, float | np.floating) and np.isnan(value)):
        return None
    if pa.types.is_string(dtype):
        return str(value)
    if pa.types.is_floating(dtype):
        return float(value)
    if pa.types.is_integer(dtype):
        return int(value)
    return value


def _plain(value):
    """numpy scalars -> Python values, so Arrow infers the carried column's type."""
    return value.item() if hasattr(value, "item") and getattr(value, "ndim", 1) == 0 else value


def schema_markdown() -> str:
    """The features schema as a Markdown table (kept in the README)."""
    lines = ["| column | type | meaning |", "| --- | --- | --- |"]
    lines += [f"| `{name}` | `{dtype}` | {doc} |" for name, dtype, doc in FEATURES_FIELDS]
    lines += [f"| `{name}` | `{dtype}` | {doc} |" for name, dtype, doc in PARTY_FIELDS]
    return "\n".join(lines)
