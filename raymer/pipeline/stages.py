"""Ray Data stages of ``raymer extract``: decode (CPU tasks), Whisper and text encoder (actors).
The rows and errors they share with ``recognize``'s stages are ``rows.py``.

Each stage takes and returns column batches. A clip that fails carries an ``error`` string
from then on and is skipped by later stages; the last stage writes failed clips to
``errors/`` and returns only good rows, typed by ``raymer.contract.schema``.
"""

from __future__ import annotations

import json
import logging

import numpy as np
import pyarrow as pa

from raymer.audio.decode import SAMPLE_RATE, check_file, decode_audio
from raymer.config import AugmentConfig, ExtractConfig
from raymer.config.parts import DecodeConfig, SegmentConfig
from raymer.contract.schema import features_table
from raymer.itemwise import ItemError, run_batch
from raymer.pipeline.faults import count_done, process
from raymer.pipeline.rows import (
    NO_PATH,
    Batch,
    file_failure,
    floats,
    to_columns,
    to_rows,
    write_errors,
)
from raymer.pipeline.shards import source_of
from raymer.pipeline.supervisions import channel_of, span_of
from raymer.wer import wer

logger = logging.getLogger(__name__)


def decode_batch(
    batch: Batch,
    limits: DecodeConfig,
    ledger=None,
    max_attempts: int = 3,
    augment: AugmentConfig | None = None,
    cutting: SegmentConfig | None = None,
) -> Batch:
    """Read and decode each clip to 16 kHz mono within ``limits`` (the decode guard: the
    file's kind and size before the read, its header before the decode); failures become
    ``error`` strings, and a clip whose worker died ``max_attempts`` times is one too. With
    ``cutting.channels: split``, a clip of several channels is a row per channel, heard by
    the rule of recognize and the library (``parties.heard_as``: ``channel``, its name as
    ``speaker``, ``channels``). With ``augment.copies``, each decoded clip is followed by
    its augmented copies (rows with its id and columns and an ``augment`` description;
    ``raymer.audio.augment``)."""
    rows = to_rows(batch)
    split = cutting is not None and cutting.channels == "split"
    for row in rows:
        row["audio"], row["duration_s"], row["error"], row["stage"] = b"", 0.0, None, None
        row["augment"] = None
        if split:
            row |= {"channel": None, "channels": None, "speaker": None}

    def decode(some: list[dict]) -> None:
        for row in some:
            heard = [row, *_decode_row(row, limits, cutting if split else None)]
            if augment is not None and augment.copies and row["error"] is None:
                heard += [copy for r in heard for copy in _copies(r, augment)]
            row["more"] = heard[1:]

    process(rows, decode, "decode", ledger, max_attempts)
    rows = [r for row in rows for r in (row, *row.pop("more", []))]
    return to_columns(rows, list(rows[0]) if rows else [*batch, "augment"])


def _copies(row: dict, cfg: AugmentConfig) -> list[dict]:
    """A decoded clip's augmented copies; a copy that fails is left out (its clip is kept)."""
    from raymer.audio import augment

    audio = np.frombuffer(row["audio"], dtype=np.float32)
    try:
        made = augment.copies(audio, cfg, str(row.get("id")))
    except Exception as err:
        logger.warning("no augmented copies of %s: %s: %s", row.get("id"), type(err).__name__, err)
        return []
    return [
        row | {"audio": x.tobytes(), "duration_s": len(x) / SAMPLE_RATE, "augment": what}
        for x, what in made
    ]


def _decode_row(row: dict, limits: DecodeConfig, cutting: SegmentConfig | None) -> list[dict]:
    """Decode ``row``'s clip into it (a row of features naming its ``channel``: that channel
    alone, as fine-tuning reads it again); with ``cutting``, its channels as parties: the
    first into ``row``, the rows of the others returned."""
    path = row.get("path")
    if not path:
        row["stage"], row["error"] = NO_PATH
        return []
    source, unread = source_of(row)  # a shard row's bytes, else its path
    if unread:
        row["stage"], row["error"] = "read", unread
        return []
    opened = False
    try:
        if isinstance(source, str):
            check_file(path, limits)  # its kind and size, before it is opened
        opened = True
        span, _ = span_of(row)  # a supervision's span of its recording
        heard = _heard(source, limits, cutting, channel_of(row), span)
    except Exception as err:  # a decoder bug too must cost one clip, not the run
        row["stage"], row["error"] = file_failure(path, err, opened)
        return []
    out = [row] + [dict(row) for _ in heard[1:]]
    for each, (audio, party) in zip(out, heard, strict=True):
        # Arrays cross stages as raw float32 bytes: a binary column holds ragged clips and
        # failed rows alike, where a tensor column would need one shape for all.
        each |= party | {"audio": audio.tobytes(), "duration_s": len(audio) / SAMPLE_RATE}
    return out[1:]


def _heard(path, limits: DecodeConfig, cutting: SegmentConfig | None, channel, span=None) -> list:
    """A file as (audio, columns) per stream: the clip (its channels mixed, or only
    ``channel``), or with ``cutting``, its parties as ``parties.heard_as`` hears them (a
    channel each; one stream where it has one channel, or its channels carry one signal),
    with the ``channel``, ``speaker`` and ``channels`` of each; more channels than
    ``cutting.channel_names`` names: an ``AudioError`` from the header."""
    from raymer.audio.decode import open_audio
    from raymer.inference.parties import heard_as, same_signal, streams_of

    if cutting is None or channel is not None:  # a channel named: that channel alone
        return [(decode_audio(path, limits, channel, span), {})]
    with open_audio(path, limits, span=span) as stream:  # the header: no decoding
        n = stream.channels
    heard = heard_as(None, n, cutting, lambda k: k, lambda: same_signal(path, limits, n))
    streams, names, _, how = streams_of(heard)
    return [
        (decode_audio(path, limits, k, span), {"channel": k, "speaker": name, "channels": how})
        for k, name in zip(streams, names, strict=True)
    ]


class WhisperStage:
    """Actor: one Whisper encoder pass per window gives the transcript and the audio frames.
    ``ledger`` (``faults.CrashLedger``) bounds the attempts at a clip that kills the actor;
    ``drill``: a fault drill (``raymer.drills``), None but in tests."""

    def __init__(self, cfg: ExtractConfig, ledger=None, drill=None) -> None:
        from raymer.models.builders import build_featurizer

        self.cfg, self.ledger, self.drill = cfg, ledger, drill
        device = cfg.resources.device_of(cfg.resources.asr)
        self.featurizer = build_featurizer(cfg, device, cfg.resources.asr.threads)

    def __call__(self, batch: Batch) -> Batch:
        rows = to_rows(batch)
        good = [r for r in rows if r["error"] is None]
        process(good, self._transcribe, "asr", self.ledger, self.cfg.max_attempts)
        for row in rows:
            row.pop("audio", None)
        keys = sorted({k for r in rows for k in r})
        return to_columns(rows, keys)

    def _transcribe(self, rows: list[dict]) -> None:
        if self.drill is not None:
            self.drill.meet([str(r["id"]) for r in rows])
        clips = [floats(r["audio"]) for r in rows]
        results = run_batch(self.featurizer, clips, "speech recognition")
        for row, res in zip(rows, results, strict=True):
            if isinstance(res, ItemError):
                row["error"], row["stage"] = res.message, "asr"
                continue
            ref = row.get("reference_text")
            row.update(
                transcript=res.transcript,
                language=res.language,
                language_prob=res.language_prob,
                avg_logprob=res.avg_logprob,
                no_speech_prob=res.no_speech_prob,
                segments=json.dumps([s.__dict__ for s in res.segments]),
                wer=wer(ref, res.transcript) if ref else None,
                audio_frames=res.frames.tobytes(),
                audio_dim=res.frames.shape[1],
                audio_embedding=res.embedding.tobytes(),
            )


class TextStage:
    """Actor: embeds the transcript; writes failed clips to ``errors/``; returns typed rows.
    With ``text_only`` (a text corpus) it embeds each row's reference text and leaves the
    audio columns null. An exception costs the rows it happens on, never the run."""

    def __init__(
        self,
        cfg: ExtractConfig,
        errors_uri: str,
        extra_columns: list[str],
        text_only: bool = False,
        ledger=None,
    ) -> None:
        from raymer.models.builders import build_text_encoder

        self.cfg, self.errors_uri, self.extra_columns = cfg, errors_uri, extra_columns
        self.text_only, self.ledger = text_only, ledger
        device = cfg.resources.device_of(cfg.resources.model)
        self.encoder = build_text_encoder(cfg, device, cfg.resources.model.threads)

    def __call__(self, batch: Batch) -> pa.Table:
        rows = to_rows(batch)
        if self.text_only:
            for row in rows:
                row.update(error=None, stage=None, duration_s=None)
                if not (row.get("reference_text") or "").strip():
                    row.update(error="the manifest row has no text to embed", stage="manifest")
        good = [r for r in rows if r["error"] is None]
        process(good, self._embed, "text", self.ledger, self.cfg.max_attempts)
        table = self._table([r for r in good if r["error"] is None])
        clips = [r for r in rows if not r.get("augment")]  # copies are not counted
        for r in rows:
            if r.get("augment") and r["error"] is not None:  # its clip is kept: not an error row
                logger.warning("augmented copy of %s left out: %s", r.get("id"), r["error"])
        write_errors([r for r in clips if r["error"] is not None], self.errors_uri)
        count_done(self.ledger, clips, lambda r: r.get("duration_s"))
        return table

    def _embed(self, rows: list[dict]) -> None:
        texts = [self._text(r) for r in rows]
        for row, feats in zip(rows, run_batch(self.encoder, texts, "text encoding"), strict=True):
            if isinstance(feats, ItemError):
                row["error"], row["stage"] = feats.message, "text"
                continue
            row.update(
                text_tokens=feats.tokens.tolist(),
                text_embedding=feats.embedding.tolist(),
                text_source="reference" if self._use_reference(row) else "asr",
                text_model=self.cfg.text_model,
            )
            if not self.text_only:
                row.update(
                    audio_frames=floats(row["audio_frames"])
                    .reshape(-1, int(row["audio_dim"]))
                    .tolist(),
                    audio_embedding=floats(row["audio_embedding"]).tolist(),
                    audio_frame_rate_hz=self.cfg.frame_rate_hz,
                    segments=json.loads(row["segments"]),
                    asr_model=self.cfg.asr_model,
                )

    def _table(self, rows: list[dict]) -> pa.Table:
        """The typed rows; a row that does not fit the schema is an error, alone."""
        try:
            return features_table(rows, self.extra_columns)
        except Exception:
            tables = []
            for row in rows:
                try:
                    tables.append(features_table([row], self.extra_columns))
                except Exception as err:
                    row["error"] = (
                        f"the features do not fit the schema: {type(err).__name__}: {err}"
                    )
                    row["stage"] = "write"
            return pa.concat_tables(tables) if tables else features_table([], self.extra_columns)

    def _use_reference(self, row) -> bool:
        if self.text_only:
            return True
        return self.cfg.text_source == "reference" and bool(row.get("reference_text"))

    def _text(self, row) -> str:
        return row["reference_text"] if self._use_reference(row) else row["transcript"]
