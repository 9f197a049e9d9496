"""The sample corpus's plan (``raymer corpus synth``): every clip's label, type, speaker,
words, prosody, intensity and dimensions, and recording condition, decided from a seed alone
(``plan_corpus``); ``raymer.corpora.synth`` renders it. See that module for the design."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from raymer.audio.augment import Condition
from raymer.corpora.synth_text import HELDOUT_SENTENCES, LABELS, sentence

# The first voices of each set, in this order (as rendered: settings of 1), so that a corpus
# of up to 16 speakers (6 held out) is the one every earlier release made for its seed; each
# speaker after them is drawn from the set's space (``voice_of``).
VOICES = [
    "piper:joe",
    "espeak:en-us+m1",
    "espeak:en-us+f2",
    "espeak:en-gb+m3",
    "espeak:en-us+f4",
    "espeak:en-gb-x-rp+m7",
    "espeak:en-us+f5",
    "espeak:en-029+m2",
    "espeak:en-gb-scotland+f3",
    "espeak:en-us+m4",
    "espeak:en-gb+f1",
    "espeak:en-us+m6",
    "espeak:en-gb-x-rp+f4",
    "espeak:en-029+f2",
    "espeak:en-us+m2",
    "espeak:en-gb-scotland+m5",
]

# The held-out set's voices (``voices="heldout"``): espeak-ng accents the sample corpus never
# uses, for figures on voices raymer was not tuned on.
HELDOUT_VOICES = [
    "espeak:en-gb-x-gbclan+m2",
    "espeak:en-us-nyc+f3",
    "espeak:en-gb-x-gbcwmd+m1",
    "espeak:en-gb-x-gbclan+f5",
    "espeak:en-us-nyc+m7",
    "espeak:en-gb-x-gbcwmd+f2",
]
VOICE_SETS = {"sample": VOICES, "heldout": HELDOUT_VOICES}

# Each set's space: its accents (espeak-ng languages; no accent in both sets), the variants
# (espeak-ng's male and female ones), and the piper voice (the sample set only).
ACCENTS = {
    "sample": ("en-us", "en-gb", "en-gb-x-rp", "en-029", "en-gb-scotland"),
    "heldout": ("en-gb-x-gbclan", "en-us-nyc", "en-gb-x-gbcwmd"),
}
VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5")
PIPER_SHARE = 1 / 12  # of the sample set's drawn speakers: the piper voice
# A drawn speaker's own settings, relative to the synthesiser voice's: (low, high), drawn
# log-uniformly (pitch, formant) or uniformly.
PITCH, RANGE, RATE, FORMANT = (0.84, 1.2), (0.7, 1.4), (0.9, 1.12), (0.92, 1.09)


@dataclass(frozen=True)
class Voice:
    """A speaker's voice: a synthesiser voice and the speaker's own settings.

    Attributes:
        name: the speaker (the manifest's ``speaker`` and the clips' folder).
        engine: ``piper`` or ``espeak``.
        voice: the espeak-ng voice (accent + variant) or the piper voice's name.
        pitch: mean pitch relative to the voice's own (times each clip's prosody).
        range: pitch range relative to the voice's own (espeak-ng).
        rate: speaking rate relative to the voice's own.
        formant: the vocal tract (formants and timbre) scaled by this: over 1 a shorter,
            brighter one, under 1 a longer, darker one. A piper voice's pitch moves its
            formants with it (it is shifted by resampling) and this stays 1.
    """

    name: str
    engine: str
    voice: str
    pitch: float = 1.0
    range: float = 1.0
    rate: float = 1.0
    formant: float = 1.0


def _listed(voice: str) -> Voice:
    engine, name = voice.split(":", 1)
    return Voice(speaker_name(voice), engine, name)


def voice_of(voices: str, index: int, seed: int) -> Voice:
    """Speaker ``index`` of a set (``sample`` or ``heldout``): its listed voice, as rendered,
    while there is one; after that a voice drawn from the set's space with ``seed``: an
    accent and a variant (or the piper voice), pitch, range, rate and formants of its own.
    Drawn speakers are named after their voice and index (``en-gb_m3-017``), so no two
    share a name, and their settings are continuous draws, so no two share a voice."""
    listed = VOICE_SETS[voices]
    if index < len(listed):
        return _listed(listed[index])
    from raymer.audio.augment import seed_of

    rng = random.Random(seed_of("voice", seed, f"{voices}-{index}"))
    logu = lambda lo_hi: round(math.exp(rng.uniform(*map(math.log, lo_hi))), 4)  # noqa: E731
    pitch, formant = logu(PITCH), logu(FORMANT)
    spread, rate = round(rng.uniform(*RANGE), 4), round(rng.uniform(*RATE), 4)
    accent, variant = rng.choice(ACCENTS[voices]), rng.choice(VARIANTS)
    if voices == "sample" and rng.random() < PIPER_SHARE:
        return Voice(f"joe-{index:03d}", "piper", "joe", pitch, 1.0, rate, 1.0)
    return Voice(f"{accent}_{variant}-{index:03d}", "espeak", f"{accent}+{variant}", pitch,
                 spread, rate, formant)  # fmt: skip


def speaker_name(voice: str) -> str:
    """``espeak:en-us+m1`` -> ``en-us_m1``: the speaker column and folder of a voice."""
    return voice.split(":", 1)[1].replace("+", "_")


@dataclass(frozen=True)
class Prosody:
    """Attributes:
    rate: speaking rate relative to the voice's default.
    pitch: mean pitch relative to the voice's default.
    range: pitch range (espeak-ng voices) relative to default.
    gain_db: loudness relative to a neutral clip.
    tilt: spectral tilt, -1 (dull, soft voice) .. +1 (bright, pressed voice).
    pause_s: silence inserted between phrases.
    """

    rate: float = 1.0
    pitch: float = 1.0
    range: float = 1.0
    gain_db: float = 0.0
    tilt: float = 0.0
    pause_s: float = 0.0


PROSODY = {
    "neutral": Prosody(),
    "angry": Prosody(rate=1.2, pitch=1.08, range=1.6, gain_db=7.0, tilt=0.7, pause_s=0.05),
    "happy": Prosody(rate=1.12, pitch=1.3, range=1.9, gain_db=3.0, tilt=0.2, pause_s=0.08),
    "sad": Prosody(rate=0.72, pitch=0.86, range=0.35, gain_db=-7.0, tilt=-0.7, pause_s=0.45),
}

# Per emotion: (arousal, valence) at intensity 1, -1..1 (Russell's circumplex: anger is
# aroused and unpleasant, happiness pleasant and somewhat aroused, sadness unpleasant and low).
CIRCUMPLEX = {
    "neutral": (0.0, 0.0),
    "angry": (0.75, -0.6),
    "happy": (0.5, 0.7),
    "sad": (-0.55, -0.6),
}
INTENSITY = (0.4, 1.4)  # drawn per clip: how far the voice departs from neutral

# Per emotion: half congruent, a quarter audio_cue, a quarter text_cue, so every label has
# as many voice-only clips as word-only ones.
TYPE_BLOCK = ("congruent", "congruent", "audio_cue", "text_cue")


@dataclass
class ClipSpec:
    id: str
    path: str
    label: str
    text: str
    speaker: str
    clip_type: str
    template: str
    prosody: Prosody
    voice: Voice
    condition: Condition | None = None  # None: studio
    intensity: float = 1.0
    arousal: float = 0.0
    valence: float = 0.0


def plan_corpus(
    clips: int, seed: int, speakers: int, voices: str = "sample", conditions: str = "studio"
) -> list[ClipSpec]:
    """Decide every clip (label, type, speaker and voice, words, prosody, recording
    condition) from ``seed`` alone. ``voices``: ``sample`` (the templates' sentences, the
    sample space's voices) or ``heldout`` (the held-out sentences and space: ``voice_of``);
    speakers take the clips in turn, so any ``speakers`` clips in a row are in as many
    voices; ``conditions``: ``studio`` or ``varied`` (``recording_condition``)."""
    rng = random.Random(seed)
    heldout = voices == "heldout"
    cast = [voice_of(voices, i, seed) for i in range(speakers)]
    specs = []
    pending: dict[str, list[str]] = {label: [] for label in LABELS}
    for i in range(clips):
        voice = cast[i % len(cast)]
        label = LABELS[(i // len(cast) + i) % len(LABELS)]
        if label == "neutral":
            clip_type = "neutral"
        else:  # each emotion's clips come in shuffled blocks of exactly 2:1:1
            if not pending[label]:
                pending[label] = rng.sample(TYPE_BLOCK, len(TYPE_BLOCK))
            clip_type = pending[label].pop()
        wording = label if clip_type in ("congruent", "text_cue") else "neutral"
        voice_emotion = label if clip_type in ("congruent", "audio_cue") else "neutral"
        text, template = _heldout_sentence(wording, rng) if heldout else sentence(wording, rng)
        name = voice.name
        cid = f"{name}_{i:05d}"
        k, arousal, valence = dimensions_of(label, seed, cid)
        specs.append(
            ClipSpec(
                id=cid,
                path=f"{name}/{cid}.wav",
                label=label,
                text=text,
                speaker=name,
                clip_type=clip_type,
                template=template,
                prosody=_jitter(scaled(PROSODY[voice_emotion], k), rng),
                voice=voice,
                condition=recording_condition(seed, name, cid) if conditions == "varied" else None,
                intensity=k,
                arousal=arousal,
                valence=valence,
            )
        )
    return specs


def dimensions_of(label: str, seed: int, clip_id: str) -> tuple[float, float, float]:
    """A clip's (intensity, arousal, valence): intensity drawn from ``INTENSITY``, the
    dimensions its emotion's ``CIRCUMPLEX`` point times it plus rater noise (sd 0.05),
    clipped to -1..1. From a generator of the clip's own, so the rest of the plan does not
    depend on it."""
    from raymer.audio.augment import seed_of

    rng = random.Random(seed_of("intensity", seed, clip_id))
    k = rng.uniform(*INTENSITY)
    a, v = CIRCUMPLEX[label]
    clip = lambda x: round(max(-1.0, min(1.0, x)), 4)  # noqa: E731
    return round(k, 4), clip(a * k + rng.gauss(0, 0.05)), clip(v * k + rng.gauss(0, 0.05))


def scaled(p: Prosody, k: float) -> Prosody:
    """``p`` with its departure from neutral prosody scaled by ``k`` (pitch range kept over
    0.15: a voice never goes fully flat)."""
    n = Prosody()
    at = lambda x, x0: x0 + k * (x - x0)  # noqa: E731
    return Prosody(
        at(p.rate, n.rate),
        at(p.pitch, n.pitch),
        max(0.15, at(p.range, n.range)),
        at(p.gain_db, n.gain_db),
        at(p.tilt, n.tilt),
        max(0.0, at(p.pause_s, n.pause_s)),
    )


CONDITIONS = ("varied", "studio")


def recording_condition(seed: int, speaker: str, clip_id: str) -> Condition:
    """A clip's recording condition: its speaker's setup (a room with probability 0.6, a
    telephone line 0.25, else a codec 0.25; a level of -8..+4 dB), then the clip's own
    noise (probability 0.6, 12-35 dB SNR) and level change (+-2 dB)."""
    from raymer.audio.augment import seed_of

    setup = random.Random(seed_of("setup", seed, speaker))
    rt60 = round(setup.uniform(0.2, 0.7), 3) if setup.random() < 0.6 else None
    telephone = setup.random() < 0.25
    codec = setup.choice(["mp3", "opus"]) if not telephone and setup.random() < 0.25 else None
    level = setup.uniform(-8.0, 4.0)
    clip = random.Random(seed_of("clip", seed, clip_id))
    snr = round(clip.uniform(12.0, 35.0), 1) if clip.random() < 0.6 else None
    gain = round(level + clip.uniform(-2.0, 2.0), 1)
    return Condition(snr_db=snr, rt60_s=rt60, telephone=telephone, codec=codec, gain_db=gain)


def _heldout_sentence(wording: str, rng: random.Random) -> tuple[str, str]:
    sentences = HELDOUT_SENTENCES[wording]
    k = rng.randrange(len(sentences))
    return sentences[k], f"heldout-{wording}-{k:02d}"


def _jitter(p: Prosody, rng: random.Random) -> Prosody:
    j = lambda x, s=0.07: x * (1 + rng.uniform(-s, s))  # noqa: E731
    return Prosody(
        j(p.rate),
        j(p.pitch),
        j(p.range, 0.15),
        p.gain_db + rng.uniform(-2, 2),
        p.tilt + rng.uniform(-0.15, 0.15),
        max(0.0, p.pause_s * (1 + rng.uniform(-0.3, 0.3))),
    )
