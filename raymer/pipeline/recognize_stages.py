"""Ray Data stages of ``raymer recognize``: Whisper and the emotion model (actors), and the
per-recording summary (a Ray Data group aggregation). The decode-and-segment tasks before
them are ``segmenting.py``.

Rows are segments from the segmenting stage on. A segment that fails carries an ``error``
string from then on and is skipped by later stages; the emotion stage writes failed segments
beside the good ones (``error`` and ``stage`` set), typed by ``prediction_schema``; the driver
then sorts them into predictions and errors.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from raymer import storage
from raymer.config.recognize import RecognizeConfig
from raymer.itemwise import ItemError, run_batch
from raymer.pipeline import faults
from raymer.pipeline.outputs import RecognizeOutput
from raymer.pipeline.rows import Batch, floats, row_columns, to_rows
from raymer.trained.checkpoint import ModelSpec

OUTPUT_COLUMNS = frozenset(
    {"id", "path", "segment", "start_s", "end_s", "duration_s", "speech_s", "transcript"}
    | {"language", "no_speech", "no_speech_prob", "label", "labels", "run_id"}
)
# What a segment of a recording heard as parties adds (``RecognizeConfig.has_parties``): its
# party (a channel's name or a diarizer's speaker; null: heard as one stream) and, with
# turns, whether another speaker's turn overlaps it.
PARTY_COLUMNS = [("speaker", pa.string()), ("overlapped", pa.bool_())]


def prediction_schema(
    spec: ModelSpec, manifest_columns: list[str], parties: bool = False
) -> pa.Schema:
    """One row per segment: where it is, what was said, the emotion (null without speech);
    with ``parties``, who said it (``PARTY_COLUMNS``)."""
    fields = [
        ("id", pa.string()),
        ("path", pa.string()),
        ("segment", pa.int32()),
        ("start_s", pa.float64()),
        ("end_s", pa.float64()),
        ("duration_s", pa.float64()),  # the whole recording's
        ("speech_s", pa.float64()),  # speech the VAD heard in this segment
        ("transcript", pa.string()),
        ("language", pa.string()),
        ("no_speech", pa.bool_()),
        ("no_speech_prob", pa.float64()),
        ("label", pa.string()),
        *[(f"score_{lab}", pa.float64()) for lab in spec.labels],
        *[(d, pa.float64()) for d in spec.dimensions],  # arousal, valence, ...: -1..1
    ]
    if spec.multi_label:
        fields.append(("labels", pa.list_(pa.string())))
    fields += PARTY_COLUMNS if parties else []
    fields += [("run_id", pa.string()), *[(c, pa.string()) for c in manifest_columns]]
    return pa.schema(fields)


# What the emotion stage adds to a prediction row for the writer (``recognize_writes``): a
# failed segment's error and stage, whether it is its recording's last segment, and how its
# recording's channels were heard (``parties.streams_of``).
STAGE_COLUMNS = ("error", "stage", "last", "channels")


def staged_schema(spec: ModelSpec, manifest_columns: list[str], parties: bool = False) -> pa.Schema:
    """The emotion stage's rows: a prediction row and ``STAGE_COLUMNS``."""
    extra = [("error", pa.string()), ("stage", pa.string()), ("last", pa.bool_())]
    extra.append(("channels", pa.string()))
    return pa.schema([*prediction_schema(spec, manifest_columns, parties), *extra])


class SpeechStage:
    """Actor: the window rows of the segmenting tasks -> a row per segment, with Whisper's
    transcript, language, no-speech probability and the audio frames of each segment with
    speech, made as the checkpoint's features were made: the one path's
    ``inference.Listener`` on ``raymer.audio.segment.Window``s."""

    def __init__(self, cfg: RecognizeConfig, spec: ModelSpec, ledger=None, drill=None) -> None:
        from raymer.inference.listener import Listener
        from raymer.models.builders import build_featurizer

        self.cfg, self.keep_audio = cfg, spec.needs_audio
        self.ledger, self.drill = ledger, drill  # drill: raymer.drills, None but in tests
        res = cfg.resources
        featurizer = build_featurizer(
            spec.extract, res.device_of(res.asr), res.asr.threads, cfg.speech
        )
        self.listener = Listener(featurizer, cfg.speech)

    def __call__(self, batch: Batch) -> Batch:
        windows = to_rows(batch)
        todo = [w for w in windows if w["error"] is None]
        faults.process(todo, self._transcribe, "asr", self.ledger, self.cfg.max_attempts)
        rows = [row for w in windows for row in self._segments(w)]
        return row_columns(rows)

    def _transcribe(self, todo: list[dict]) -> None:
        from raymer.audio.segment import Window

        if self.drill is not None:
            self.drill.meet([str(r["id"]) for r in todo])
        items = [Window(tuple(_pieces(w)), bool(w["packed"])) for w in todo]
        for window, res in zip(
            todo, run_batch(self.listener, items, "speech recognition"), strict=True
        ):
            if isinstance(res, ItemError):
                window["error"], window["stage"] = res.message, "asr"
            else:
                window["heard"] = res

    def _segments(self, window: dict) -> list[dict]:
        """A window row -> its segments' rows (a failed one: its error on each of them; an
        error row of the segmenting tasks as it is)."""
        base = {k: v for k, v in window.items() if k not in ("pieces", "packed", "heard")}
        base |= {"transcript": "", "language": None, "no_speech_prob": None}
        base |= {"avg_logprob": None, "frames": b"", "audio_dim": 0}
        places = json.loads(window["pieces"])
        if not places:
            return [base]
        heard = window.get("heard") or [None] * len(places)
        audio = [a for a, _ in _pieces(window)]
        rows = []
        for k, (place, res, clip) in enumerate(zip(places, heard, audio, strict=True)):
            row = base | {key: place[key] for key in ("segment", "start_s", "end_s", "speech_s")}
            row |= {"speaker": place.get("speaker"), "overlapped": place.get("overlapped")}
            row |= {
                "duration_s": place["duration_s"],
                "last": window["last"] and k == len(places) - 1,
            }
            row["audio"] = clip.tobytes() if self.keep_audio else b""
            if res is not None and res.frames is not None:
                row.update(
                    transcript=res.transcript,
                    language=res.language,
                    no_speech_prob=res.no_speech_prob,
                    avg_logprob=res.avg_logprob,
                    frames=res.frames.astype(np.float32).tobytes(),
                    audio_dim=int(res.frames.shape[1]),
                )
            rows.append(row)
        return rows


def _pieces(window: dict) -> list[tuple[np.ndarray, float | None]]:
    """A window row's pieces: each one's samples and the speech the segmenter heard in it."""
    audio, at, out = floats(window["audio"]), 0, []
    for place in json.loads(window["pieces"]):
        out.append((audio[at : at + place["samples"]], place["speech_s"]))
        at += place["samples"]
    return out


def _part_name(rows: list[dict]) -> str:
    """A part file named by the segments it holds: a retried batch rewrites the same file."""
    keys = sorted(f"{r['id']}\x00{r['segment']}" for r in rows)
    return hashlib.sha1("\x01".join(keys).encode()).hexdigest()[:20] + ".parquet"


def _segment_s(row: dict) -> float:
    start, end = row.get("start_s"), row.get("end_s")
    return float(end - start) if start is not None and end is not None else 0.0


class EmotionStage:
    """Actor: the text encoder and the checkpoint's model on each segment with speech (the
    one path's ``inference.Heads`` and ``prediction.piece``; with ``keep_features``, their
    inputs written to ``features/``); returns one typed row per segment: a prediction, or
    (``error`` set) a failure."""

    def __init__(
        self,
        cfg: RecognizeConfig,
        checkpoint_uri: str,
        output: RecognizeOutput,
        manifest_columns: list[str],
        run_id: str,
        ledger=None,
        parties: bool = False,
    ) -> None:
        from raymer.inference.heads import Heads
        from raymer.models.builders import build_text_encoder

        device = cfg.resources.device_of(cfg.resources.model)
        self.cfg, self.output, self.run_id, self.ledger = cfg, output, run_id, ledger
        self.rule = cfg.speech
        self.heads = Heads(
            checkpoint_uri, threads=cfg.resources.model.threads, device=device, with_text=False
        )
        self.spec = self.heads.main.spec
        self.encoder = build_text_encoder(self.spec.extract, device, cfg.resources.model.threads)
        self.manifest_columns = manifest_columns
        self.parties = parties  # a speaker per segment: the run's (RecognizeConfig.has_parties)
        self.schema = staged_schema(self.spec, manifest_columns, self.parties)

    def __call__(self, batch: Batch) -> pa.Table:
        rows = to_rows(batch)
        speech = [r for r in rows if r["error"] is None and not self._silent(r)]
        faults.process(speech, self._score_rows, "model", self.ledger, self.cfg.max_attempts)
        if self.cfg.keep_features:
            self._write_features([r for r in speech if "scores" in r])
        faults.count_done(self.ledger, rows, _segment_s)
        return pa.Table.from_pylist([self._record(r) for r in rows], schema=self.schema)

    def _silent(self, row: dict) -> bool:
        """No speech, no emotion: the one rule (``SpeechConfig.silent``)."""
        return self.rule.silent(
            row["speech_s"], row["transcript"], row["no_speech_prob"], row["avg_logprob"]
        )

    def _score_rows(self, speech: list[dict]) -> None:
        scores = run_batch(self._scores, speech, "emotion recognition")
        for row, res in zip(speech, scores, strict=True):
            if isinstance(res, ItemError):
                row["error"], row["stage"] = res.message, "model"
            else:
                row["scores"] = res

    def _scores(self, rows: list[dict]) -> list[np.ndarray]:
        texts = [r["transcript"] for r in rows]
        tokens = [t.tokens for t in self.encoder(texts)]
        frames = [floats(r["frames"]).reshape(-1, r["audio_dim"]) for r in rows]
        clips = [floats(r["audio"]) for r in rows] if self.spec.needs_audio else None
        for row, tok in zip(rows, tokens, strict=True):
            row["tokens"] = tok
        return list(self.heads.score(frames, tokens, clips, texts))

    def _record(self, row: dict) -> dict:
        from raymer.inference.prediction import piece
        from raymer.models.whisper import SpeechFeatures

        heard = SpeechFeatures(
            transcript=row["transcript"],
            language=row.get("language") or "",
            language_prob=0.0,
            no_speech_prob=row.get("no_speech_prob"),
            speech_s=row["speech_s"],
        )
        start, end = row.get("start_s"), row.get("end_s")
        answer = piece(
            row["segment"], start or 0.0, end or 0.0, heard, row.get("scores"),
            self.spec.labels, self.spec.multi_label, self.spec.dimensions,
            self.cfg.min_confidence,
        )  # fmt: skip
        record = {"id": row.get("id"), "path": row.get("path")}
        record |= answer.columns(self.spec.labels, self.spec.multi_label)
        record |= {"start_s": start, "end_s": end, "duration_s": row.get("duration_s")}
        record |= {"run_id": self.run_id, "error": row["error"], "stage": row["stage"]}
        record |= {"last": bool(row.get("last")), "channels": row.get("channels")}
        if self.parties:
            record |= {"speaker": row.get("speaker"), "overlapped": row.get("overlapped")}
        record |= {c: row.get(c) for c in self.manifest_columns}
        return record

    def _write_features(self, rows: list[dict]) -> None:
        """The model's inputs of each segment with speech (the extraction schema's columns)."""
        if not rows:
            return
        from raymer.contract.schema import features_table

        for row in rows:
            frames = floats(row["frames"]).reshape(-1, row["audio_dim"])
            row.update(
                id=f"{row['id']}#{row['segment']}",
                audio_frames=frames.tolist(),
                # the Whisper columns' mean (prosody, when the model reads it, follows them)
                audio_embedding=frames[:, : frames.shape[1] - self.spec.prosody_dim]
                .mean(0)
                .tolist(),
                text_tokens=np.asarray(row["tokens"]).tolist(),
                text_embedding=np.asarray(row["tokens"]).mean(0).tolist(),
                text_source="asr",
                asr_model=self.spec.extract.asr_model,
                text_model=self.spec.extract.text_model,
                audio_frame_rate_hz=self.spec.extract.frame_rate_hz,
                duration_s=row["end_s"] - row["start_s"],
                segments=[],
            )
        table = features_table(rows, [])
        fs, path = storage.filesystem(storage.join(self.output.features, _part_name(rows)))
        pq.write_table(table, path, filesystem=fs)


def recording_row(
    rows: list[dict],
    labels: list[str],
    plots_uri: str | None,
    dimensions: list[str] = (),
    exports_uri: str | None = None,
    formats: tuple[str, ...] = (),
    parties: bool = False,
) -> dict:
    """All the segments of one recording -> its summary row: the answer the library and the
    service give for the same recording (``prediction.recording``: the label with the most
    speech time, each label's share, each emotion dimension's mean weighted by speech
    time), with its id, length and segments; with ``parties``, how its channels were heard
    and each party's summary (``prediction.parties``); with ``plots_uri`` its timeline plot
    (more than one segment), and its ``formats``' files under ``exports_uri``."""
    from raymer.inference.prediction import SegmentPrediction, recording

    rows = sorted(rows, key=lambda r: r["segment"])
    ends = [r["end_s"] for r in rows] + [r["duration_s"] or 0.0 for r in rows]
    pieces = [SegmentPrediction.of_row(r, labels, dimensions) for r in rows]
    answer = recording(pieces, max(ends), labels, False, dimensions)
    record = {
        "id": rows[0]["id"],
        "path": rows[0]["path"],
        "duration_s": answer.duration_s,
        "segments": len(rows),
        "speech_s": answer.speech_s,
        "label": answer.label,
        "run_id": rows[-1]["run_id"],
    }
    for lab in labels:
        record[f"share_{lab}"] = answer.shares[lab] if answer.shares else None
    record |= answer.dimensions or {}
    if parties:
        record["channels"] = rows[0].get("channels")
        record["parties"] = [
            {"speaker": name, "speech_s": p.speech_s, "label": p.label}
            | {f"share_{lab}": p.shares[lab] if p.shares else None for lab in labels}
            | {d: (p.dimensions or {}).get(d) for d in dimensions}
            for name, p in (answer.parties or {}).items()
        ]
    stem = record["id"].replace("/", "__")  # a file per recording, in one folder
    if plots_uri and len(rows) > 1:
        from raymer.pipeline.plots import timeline_png

        png = timeline_png(rows, labels, dimensions)
        storage.write_bytes(storage.join(plots_uri, stem + ".png"), png)
    for fmt in formats:
        from raymer.inference.exports import EXTENSIONS, export

        text = export(answer, fmt, labels, dimensions)
        storage.write_bytes(storage.join(exports_uri, f"{stem}.{EXTENSIONS[fmt]}"), text.encode())
    return record


def recording_schema(
    labels: list[str], dimensions: list[str] = (), parties: bool = False
) -> pa.Schema:
    """A recording's row; with ``parties``, ``channels`` (split, identical; null: mixed or
    turns) and ``parties``: a struct per speaker, in the order they first speak."""
    summary = [
        *[(f"share_{lab}", pa.float64()) for lab in labels],
        *[(d, pa.float64()) for d in dimensions],
    ]
    party = pa.struct(
        [("speaker", pa.string()), ("speech_s", pa.float64()), ("label", pa.string()), *summary]
    )
    return pa.schema(
        [
            ("id", pa.string()),
            ("path", pa.string()),
            ("duration_s", pa.float64()),
            ("segments", pa.int64()),
            ("speech_s", pa.float64()),
            ("label", pa.string()),
            ("run_id", pa.string()),  # the run that wrote it
            *summary,
            *([("channels", pa.string()), ("parties", pa.list_(party))] if parties else []),
        ]
    )
