"""``raymer corpus recording``: one long recording of generated sentences with pauses, and its
script, to try long-audio recognition on (a call, a meeting, a podcast of known words).

The sentences are a generated corpus's clips (``synthesize_corpus``: by default the held-out
voices and sentences, which no default was chosen on), laid one after the other with a pause
drawn from ``pause_s`` between two, until the recording lasts ``minutes``. The WAV is
written a clip at a time (memory stays flat whatever its length). ``script.csv`` says what
is where: ``start_s``, ``end_s``, ``speaker``, ``label``, ``text`` and the clip's ``id`` (the
reference for a word error rate and for per-sentence labels).
"""

from __future__ import annotations

import csv
import json
import math
import random
import wave
from pathlib import Path

import numpy as np

from raymer.audio.decode import SAMPLE_RATE
from raymer.errors import UsageError

AUDIO_FILE, SCRIPT_FILE = "recording.wav", "script.csv"
SCRIPT_COLUMNS = ["id", "start_s", "end_s", "speaker", "label", "text"]


def synthesize_recording(
    output: str | Path,
    minutes: float,
    seed: int = 0,
    voices: str = "heldout",
    conditions: str = "studio",
    pause_s: tuple[float, float] = (0.8, 3.0),
    workers: int = 2,
) -> Path:
    """Write ``recording.wav`` (16 kHz mono PCM) and ``script.csv`` under ``output`` and
    return the WAV's path; idempotent per its arguments."""
    from raymer.corpora.synth import synthesize_corpus

    if not 0 < minutes <= 24 * 60:
        raise UsageError(f"minutes={minutes}: give a length between 0 and 1440 minutes")
    low, high = pause_s
    if not 0 <= low <= high:
        raise UsageError(
            f"pause_s={pause_s}: give (shortest, longest) pause, 0 <= shortest <= longest"
        )
    out = Path(output)
    marker = out / ".complete"
    params = {"minutes": minutes, "seed": seed, "voices": voices, "conditions": conditions,
              "pause_s": [low, high]}  # fmt: skip
    if marker.is_file() and json.loads(marker.read_text()) == params:
        return out / AUDIO_FILE
    # a clip lasts 3-4 s and a pause (low + high) / 2 on average: 2 s a clip leaves some over
    clips = math.ceil(minutes * 60 / (2.0 + (low + high) / 2)) + 8
    manifest = synthesize_corpus(
        out / "clips", clips, seed, speakers=6 if voices == "heldout" else 8,
        workers=workers, voices=voices, conditions=conditions,
    )  # fmt: skip
    with open(manifest, newline="") as f:
        rows = list(csv.DictReader(f))
    lines = _write(out / AUDIO_FILE, manifest, rows, int(minutes * 60 * SAMPLE_RATE), pause_s, seed)
    with open(out / SCRIPT_FILE, "w", newline="") as f:
        writer = csv.DictWriter(f, SCRIPT_COLUMNS)
        writer.writeheader()
        writer.writerows(lines)
    marker.write_text(json.dumps(params))
    return out / AUDIO_FILE


def _write(path: Path, manifest: Path, rows: list[dict], total: int, pause_s, seed: int) -> list:
    """The clips one after the other with a pause after each, ``total`` samples in all,
    written a clip at a time; the script's lines."""
    from raymer.audio.decode import decode_audio

    rng = random.Random(seed)
    written, lines = 0, []
    tmp = path.with_name(path.name + ".tmp")
    with wave.open(str(tmp), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(SAMPLE_RATE)
        for row in rows:
            clip = decode_audio(str(manifest.parent / row["path"]))  # 16 kHz mono
            if written + clip.size > total:
                break
            start = written
            wav.writeframes(_pcm16(clip))
            written += clip.size
            lines.append({"id": row["id"], "start_s": round(start / SAMPLE_RATE, 3),
                          "end_s": round(written / SAMPLE_RATE, 3), "speaker": row["speaker"],
                          "label": row["label"], "text": row["text"]})  # fmt: skip
            pause = min(int(rng.uniform(*pause_s) * SAMPLE_RATE), total - written)
            wav.writeframes(bytes(2 * pause))
            written += pause
        wav.writeframes(bytes(2 * (total - written)))
    tmp.replace(path)
    return lines


def _pcm16(samples: np.ndarray) -> bytes:
    return (np.clip(samples, -1.0, 1.0) * 32767).astype("<i2").tobytes()


def read_script(folder: str | Path) -> list[dict]:
    """The script of a recording written by ``synthesize_recording`` (times as floats)."""
    with open(Path(folder) / SCRIPT_FILE, newline="") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        row["start_s"], row["end_s"] = float(row["start_s"]), float(row["end_s"])
    return rows
