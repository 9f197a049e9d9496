"""Settings of ``raymer extract`` and ``raymer corpus synth``."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, field_validator

from raymer.config.command import CommandConfig, max_attempts, part
from raymer.config.parts import DecodeConfig, ResourcesConfig, SegmentConfig

SYNTH_SPEAKERS = 100  # `raymer corpus synth`'s speakers: SynthConfig.speakers says why


class ExtractSettings(BaseModel, extra="forbid"):
    """How a clip's model inputs are made: the encoders, Whisper's decoding and window, the
    frame rate and the text source. ``raymer extract`` runs with them, a checkpoint records
    them (``ModelSpec.extract``), and serving and recognition make their inputs with the
    checkpoint's, so a model always sees inputs made the way it was trained."""

    asr_model: str = Field(
        "whisper-base",
        description="Whisper model in CTranslate2 format: a registry name, local folder or hub id.",
    )
    text_model: str = Field(
        "minilm-l6",
        description="Text encoder: a registry name, local folder or hub id (absent from a "
        "record made before mpnet-base became extract's default: minilm-l6).",
    )
    compute_type: str = Field(
        "default",
        description="CTranslate2 compute type; default means int8 on CPU, float16 on CUDA.",
    )
    language: str | None = Field(
        None, description="Force the spoken language (e.g. en); detected per clip when unset."
    )
    beam_size: int = Field(
        5,
        ge=1,
        le=10,
        description="Beam size of the Whisper decoder: 5 keeps faster-whisper's own accuracy; "
        "1 (greedy) is the fast option, at a cost in word error rate (docs/benchmarks.md).",
    )
    window: Literal["auto", "fit", "full"] = Field(
        "auto",
        description=(
            "Encoder window: 'fit' encodes each clip in the shortest window >= min_window_s "
            "that holds it (3-4x less encoder work on short clips); 'full' always encodes "
            "Whisper's 30 s, like stock Whisper; 'auto' is 'fit', and 'full' again for a clip "
            "whose fitted decode fails Whisper's own tests (language probability under 0.5, "
            "mean log-probability under -1): the speed of 'fit' without its errors on voices "
            "it was not tuned on (docs/benchmarks.md)."
        ),
    )
    window_step_s: float = Field(
        2.0, gt=0, le=30, description="Granularity of the fitted window, in seconds."
    )
    min_window_s: float = Field(
        8.0, gt=0, le=30, description="Shortest fitted encoder window, in seconds."
    )
    frame_rate_hz: float = Field(
        10.0,
        gt=0,
        le=50,
        description="Rate of the stored audio frame features (Whisper encodes at 50 Hz).",
    )
    text_source: Literal["asr", "reference"] = Field(
        "asr",
        description="Text embedded by the text encoder: the ASR transcript or the manifest text.",
    )
    max_text_tokens: int = Field(128, ge=8, le=512, description="Token limit of the text encoder.")
    prosody: bool = Field(
        False,
        description="Also extract openSMILE's eGeMAPS low-level descriptors (pitch, loudness, "
        "voice quality, formants: 25 per frame) in the same pass, averaged to frame_rate_hz "
        "and stored as the last columns of audio_frames. Absent from a record made before "
        "the option: off (extract's own default is on: ExtractConfig).",
    )

    @field_validator("frame_rate_hz")
    @classmethod
    def _divides_encoder_rate(cls, value: float) -> float:
        if abs(50 / value - round(50 / value)) > 1e-6:
            raise ValueError(
                f"frame_rate_hz={value:g} must divide Whisper's 50 Hz frame rate "
                "(50, 25, 10, 5, 2, 1, ...): frames are averaged in whole groups"
            )
        return value

    @field_validator("compute_type")
    @classmethod
    def _known_compute_type(cls, value: str) -> str:
        known = {"default", "auto", "int8", "int8_float32", "int8_float16", "int8_bfloat16"}
        known |= {"int16", "float16", "bfloat16", "float32"}
        if value not in known:
            raise ValueError(f"unknown compute_type {value!r}; choose one of {sorted(known)}")
        return value


Range = tuple[float, float]


class AugmentConfig(BaseModel, extra="forbid"):
    """Augmented copies of each clip, for training data: each copy is recorded in a condition
    of its own (noise, room, telephone band, codec, level, speed), drawn per effect with its
    probability and value range from ``seed`` and the clip id (``raymer.audio.augment``). A copy is
    a features row with its clip's id, speaker and label and an ``augment`` description, so
    it falls in its clip's split; only training reads copies (train's ``use_augmented``)."""

    copies: int = Field(
        0, ge=0, le=20, description="Augmented copies per clip (0: none, the default)."
    )
    seed: int = Field(0, description="Seed of the draws; the same seed gives the same copies.")
    noise_p: float = Field(0.5, ge=0, le=1, description="Probability of added white noise.")
    snr_db: Range = Field((5.0, 30.0), description="Signal-to-noise ratio range of the noise.")
    reverb_p: float = Field(0.5, ge=0, le=1, description="Probability of a simulated room.")
    rt60_s: Range = Field((0.15, 0.8), description="Reverberation time range of the room.")
    telephone_p: float = Field(
        0.2, ge=0, le=1, description="Probability of the telephone band (300-3,400 Hz, 8 kHz)."
    )
    codec_p: float = Field(
        0.2, ge=0, le=1, description="Probability of an MP3 or Opus round trip (low bit rate)."
    )
    gain_p: float = Field(0.5, ge=0, le=1, description="Probability of a level change.")
    gain_db: Range = Field((-12.0, 6.0), description="Level change range, dB.")
    speed_p: float = Field(
        0.3, ge=0, le=1, description="Probability of speed perturbation (tempo and pitch)."
    )
    speed: Range = Field((0.9, 1.1), description="Speed factor range.")

    @field_validator("snr_db", "rt60_s", "gain_db", "speed")
    @classmethod
    def _ordered(cls, value: Range, info) -> Range:
        lo, hi = value
        if lo > hi:
            raise ValueError(f"{info.field_name}: the range ({lo:g}, {hi:g}) is reversed")
        if info.field_name in ("rt60_s", "speed") and lo <= 0:
            raise ValueError(f"{info.field_name}: the range must be above 0, got ({lo:g}, {hi:g})")
        if info.field_name == "rt60_s" and hi > 3:
            raise ValueError(f"rt60_s: at most 3 s (a cathedral), got {hi:g}")
        if info.field_name == "speed" and not (lo >= 0.5 and hi <= 2):
            raise ValueError(f"speed: within (0.5, 2), got ({lo:g}, {hi:g})")
        return value


class _ExtractPaths(BaseModel, extra="forbid"):
    """Where ``raymer extract`` reads and writes (first in its config and ``--help``)."""

    input: str | None = Field(
        None,
        description="Manifest (CSV/JSONL/Parquet), directory of audio, shards with the audio "
        "inside (Parquet in the datasets layout, WebDataset .tar; a file, folder or glob) or "
        "Lhotse supervisions (*supervisions*.jsonl.gz); local or s3://.",
    )
    output: str | None = Field(
        None, description="Output root: features/ and errors/ are written under it."
    )


# extract keeps each clip whole: of the segment settings it reads only how channels are heard
WHOLE_CLIPS = "extract keeps each clip whole (a row per clip, or per channel: segment.channels)"
CLIP_CHANNELS = ("channels", "channel_names")


class ExtractConfig(ExtractSettings, _ExtractPaths, CommandConfig):
    """Settings of ``raymer extract``: corpus in, Parquet features out (the model-input
    settings of ``ExtractSettings``, and where and how the run goes)."""

    UNUSED = {
        f"segment.{key}": WHOLE_CLIPS
        for key in SegmentConfig.model_fields
        if key not in CLIP_CHANNELS
    }

    text_model: str = Field(
        "mpnet-base",
        description="Text encoder: a registry name, local folder or hub id. mpnet-base "
        "(all-mpnet-base-v2, 768-d) by default: on voices never heard it scored 0.05 UA above "
        "minilm-l6 (the words-only clips 0.06-0.10 above) for about 1.1-1.2x the extraction "
        "time and 270 MB more (README, 'Encoders'); minilm-l6 is the small one.",
    )
    prosody: bool = Field(
        True,
        description="Also extract openSMILE's eGeMAPS low-level descriptors (pitch, loudness, "
        "voice quality, formants: 25 per frame) in the same pass, averaged to frame_rate_hz "
        "and stored as the last columns of audio_frames; a model trained on the features "
        "reads them (model.prosody: auto). On by default: the README's ablation chose it on "
        "two held-out sets of voices never heard; false saves about a sixth of the "
        "featurizer's time.",
    )
    batch_size: int = Field(8, ge=1, description="Clips per batch in the model stages.")
    decode: DecodeConfig = part(
        DecodeConfig, max_file_mb=1024.0, max_duration_s=600.0, decode_timeout_s=60.0
    )
    max_attempts: int = max_attempts()
    segment: SegmentConfig = Field(
        default_factory=SegmentConfig,
        description="How a file's channels are heard (segment.channels, segment.channel_names; "
        "the rest is recognize's): mix (one row per clip) or split (a row per channel, with "
        "its `channel`, its name as `speaker` (a manifest's speaker kept as manifest_speaker) "
        "and `channels`: split, or identical for a file whose channels carry one signal, "
        "extracted once), as recognize and the library hear a call's parties.",
    )
    inputs: Literal["auto", "audio", "text"] = Field(
        "auto",
        description="audio: decode and transcribe each clip, then embed its text; text: embed "
        "the manifest's `text` column only (no audio, no Whisper: a text corpus such as "
        "GoEmotions, for the text branch); auto: text when no manifest row has a path.",
    )
    resources: ResourcesConfig = part(
        ResourcesConfig,
        asr={"actors": 2, "num_cpus": 0.5, "num_gpus": 1.0, "threads": 1},
        model={"actors": 1, "num_cpus": 0.25, "num_gpus": 0.0, "threads": 1},
    )  # model: the text encoder's actors
    augment: AugmentConfig = Field(
        default_factory=AugmentConfig,
        description="Augmented copies of each clip for training (augment.copies, noise_p, "
        "snr_db, reverb_p, rt60_s, telephone_p, codec_p, gain_p, gain_db, speed_p, speed; "
        "off by default): rows with the clip's id and an `augment` description.",
    )
    resume: bool = Field(
        True,
        description="Skip clips whose id is already in OUTPUT/features; false: start over, "
        "replacing what is there (as --redo does).",
    )
    redo: bool = Field(
        False,
        description="When OUTPUT holds features made with other extraction settings, remove "
        "them and extract again (without it such a run is refused). --redo on the CLI.",
    )


class SynthConfig(BaseModel, extra="forbid"):
    """Settings of ``raymer corpus synth``: the sample emotional speech corpus."""

    output: str = Field(..., description="Folder for the audio and manifest.csv.")
    clips: int = Field(200, ge=1, le=200_000, description="Number of clips to generate.")
    seed: int = Field(0, description="Random seed; the same seed gives the same corpus.")
    speakers: int = Field(
        SYNTH_SPEAKERS,
        ge=1,
        le=10_000,
        description="Number of speakers, each in a voice of its own: the set's listed voices "
        "first (16 sample, 6 held out: the corpora of earlier releases), then voices drawn "
        "from the set's space (accent, variant or the piper voice, pitch, range, rate, "
        "formants). Speakers take the clips in turn, so the default's any 100 clips in a row "
        "are in 100 voices, and an 800-clip corpus gives each speaker 8 clips (2 per label): "
        "enough for each speaker's statistics (audio_norm: speaker) and for holding whole "
        "speakers out.",
    )
    voices: Literal["sample", "heldout"] = Field(
        "sample",
        description="sample: the sample corpus's voices and sentence templates; heldout: "
        "espeak-ng accents the sample set never uses and a separate sentence list, kept out "
        "of every default choice (figures on voices and sentences raymer was not tuned on).",
    )

    conditions: Literal["varied", "studio"] = Field(
        "varied",
        description="varied: each speaker records in a setup of its own (room, telephone line "
        "or codec, level) and each clip adds its own noise and level (the manifest's "
        "`condition`); studio: every clip as rendered, in one shared studio.",
    )
