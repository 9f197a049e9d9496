"""Settings the commands share, defined once: the decode guard (``decode``), the no-speech
rule (``speech``), how long recordings are cut (``segment``) and where the work runs
(``resources``). ``extract``, ``recognize``, ``serve`` and ``train`` hold them as they are
(each with its own defaults; a setting a command has no use for is refused there with the
reason, and left out of its ``--help``), and so does the library
(``Recognizer.from_checkpoint(decode=..., speech=..., segment=...)``). Each part is the
record the engine receives, with its one set of defaults: the decoder takes the
``DecodeConfig`` (its ``check_*`` methods are the guard), the segmenter the
``SegmentConfig`` and the ``SpeechConfig`` (whose ``silent`` is the no-speech rule).

How a command holds its parts (its defaults, the keys it refuses) is
``raymer.config.command``.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from raymer.config.command import Part
from raymer.errors import AudioError, AudioTooLarge

MAX_SAMPLE_RATE = 384_000  # the highest rate audio hardware records


class DecodeConfig(Part):
    """The decode guard: what one file may cost, each limit checked before the work it
    protects: the file's size and kind before a read (``raymer.audio.decode.check_file``), its
    header's sample rate, channels and duration before a decode, and while decoding, the
    decoded length (a header may lie) and the wall clock. The record the decoder
    (``raymer.audio.decode.open_audio``) receives, shared by ``extract``, ``recognize``, ``serve``
    and the library."""

    max_file_mb: float = Field(
        1024.0,
        gt=0,
        description="Files (uploads, when serving) larger than this are refused before they "
        "are read.",
    )
    max_duration_s: float = Field(
        600.0, gt=0, description="Audio longer than this (from its header) is refused."
    )
    max_channels: int = Field(
        32, ge=1, description="Audio with more channels than this is refused (from its header)."
    )
    decode_timeout_s: float = Field(
        60.0,
        gt=0,
        description="Decoding one file may take this long (wall clock), else it is an error.",
    )
    min_sample_rate: int = Field(
        4_000,
        ge=1,
        le=48_000,
        description="Audio at a lower sample rate (from its header) is refused: below 4 kHz "
        "no speech survives (telephone audio is 8 kHz).",
    )
    max_decoded_mb: float = Field(
        4096.0,
        gt=0,
        description="Most audio the decoder may produce before resampling (rate x channels x "
        "duration as float32, from the header): the work one file may ask for.",
    )

    def check_size(self, size: int) -> None:
        """Before a read: the file's size in bytes."""
        if size == 0:
            raise AudioError("empty file (0 bytes)")
        if size > self.max_file_mb * 1024 * 1024:
            raise AudioTooLarge(
                f"the file is {size / 1024 / 1024:,.1f} MB, over decode.max_file_mb={self.max_file_mb:g}"
            )

    def check_header(self, rate: int, channels: int, duration: float | None) -> None:
        """Refuse from the header alone (``duration`` None: the header does not say)."""
        if 0 < rate < self.min_sample_rate:
            raise AudioError(
                f"the header declares a sample rate of {rate} Hz, below "
                f"decode.min_sample_rate={self.min_sample_rate} (speech needs it)"
            )
        if rate > MAX_SAMPLE_RATE:
            raise AudioError(
                f"the header declares a sample rate of {rate:,} Hz, over the "
                f"{MAX_SAMPLE_RATE:,} Hz any recording has"
            )
        if channels > self.max_channels:
            raise AudioError(
                f"the file has {channels} channels, over decode.max_channels={self.max_channels}"
            )
        if duration is not None and duration > self.max_duration_s:
            raise AudioTooLarge(
                f"the audio lasts {duration:,.1f} s (its header says), over "
                f"decode.max_duration_s={self.max_duration_s:g}"
            )
        decoded_mb = rate * channels * (duration or 0.0) * 4 / 1024 / 1024
        if decoded_mb > self.max_decoded_mb:
            raise AudioTooLarge(
                f"the header declares {decoded_mb:,.0f} MB of audio to decode ({rate:,} Hz x "
                f"{channels} channels x {duration:,.1f} s), over decode.max_decoded_mb="
                f"{self.max_decoded_mb:g}"
            )

    def check_progress(self, decoded_s: float, spent_s: float) -> None:
        """While decoding: the audio decoded and the time spent decoding it so far."""
        if decoded_s > self.max_duration_s:
            raise AudioTooLarge(
                f"the audio decodes to more than decode.max_duration_s={self.max_duration_s:g} s"
            )
        if spent_s > self.decode_timeout_s:
            raise AudioError(
                f"decoding took longer than decode.decode_timeout_s={self.decode_timeout_s:g} s "
                f"({decoded_s:,.1f} s of audio decoded)"
            )


class SpeechConfig(Part):
    """The no-speech rule: audio without speech gets no emotion. The one home of the rule:
    ``raymer recognize``, ``raymer serve``, the library and Whisper's own window check all
    ask ``silent`` / ``whisper_silent`` of the settings they were given.

    A piece is silent when the VAD hears less than ``min_speech_s`` of speech in it, when
    Whisper transcribes nothing, or by Whisper's own silence rule: a no-speech probability
    above ``no_speech_prob`` together with a mean log-probability below
    ``logprob_threshold``. A clip too short to hold ``min_speech_s`` of speech (a 50 ms
    click) is silent by the first test, the same answer everywhere."""

    vad_threshold: float = Field(
        0.5, gt=0, lt=1, description="Silero VAD's speech probability threshold."
    )
    min_speech_s: float = Field(
        0.3, ge=0, description="Audio with less speech than this (VAD) is no_speech: no emotion."
    )
    no_speech_prob: float = Field(
        0.6,
        gt=0,
        le=1,
        description="Audio whose Whisper no-speech probability passes this, with a low "
        "mean log-probability (below logprob_threshold), is no_speech.",
    )
    logprob_threshold: float = Field(
        -1.0, description="Whisper's own rule for silence, with no_speech_prob."
    )

    def whisper_silent(self, no_speech_prob: float | None, avg_logprob: float | None) -> bool:
        """Whisper's own silence rule, with these thresholds (None: not decoded)."""
        return (
            no_speech_prob is not None
            and avg_logprob is not None
            and no_speech_prob > self.no_speech_prob
            and avg_logprob < self.logprob_threshold
        )

    def heard(self, speech_s: float | None) -> bool:
        """Whether the VAD heard enough speech to transcribe (``None``: it was not asked)."""
        return speech_s is None or speech_s >= self.min_speech_s

    def silent(
        self,
        speech_s: float | None,
        transcript: str | None,
        no_speech_prob: float | None = None,
        avg_logprob: float | None = None,
    ) -> bool:
        """Whether a piece gets no emotion (``speech_s`` None: the VAD was not asked)."""
        if not self.heard(speech_s):
            return True
        if not (transcript or "").strip():
            return True
        return self.whisper_silent(no_speech_prob, avg_logprob)


class SegmentConfig(Part):
    """How a long recording is cut into segments (``raymer.audio.segment.split``): the one rule of
    ``recognize``, ``serve`` and the library."""

    segment_over_s: float = Field(
        30.0,
        gt=0,
        le=30,
        description="A recording up to this long is one segment; a longer one is cut at "
        "pauses by voice activity detection (Silero VAD).",
    )
    max_segment_s: float = Field(
        30.0, ge=2, le=30, description="Longest segment (Whisper's window is 30 s)."
    )
    min_silence_s: float = Field(
        1.0, gt=0, le=10, description="A pause at least this long ends a segment."
    )
    speech_pad_s: float = Field(
        0.2, ge=0, le=2, description="Audio kept on each side of the speech the VAD found."
    )
    chunk_s: float = Field(
        300.0,
        ge=60,
        le=3600,
        description="Seconds of audio decoded and searched for pauses at a time: memory per "
        "file is bounded by this, whatever the recording's length.",
    )
    channels: Literal["mix", "split"] = Field(
        "mix",
        description="A file of several channels: mix (one stream) or split (a call's parties "
        "on their own channels: each channel cut at its pauses whatever its length, heard "
        "and judged as its own stream, its segments given the channel's name in "
        "channel_names, both kept where they talk at once; a file whose channels carry one "
        "signal is heard once, and says so). recognize, raymer serve, the library and "
        "extract (a row per channel).",
    )
    channel_names: list[str] = Field(
        ["left", "right"],
        min_length=1,
        max_length=8,
        description="channels: split: the parties' names, one per channel in order (e.g. "
        "[agent, customer]); a file with more channels is refused from its header.",
    )

    def check_channels(self, channels: int) -> None:
        """``channels: split``: refuse a file of more channels than ``channel_names`` names
        (an ``AudioError``: from its header, before anything is decoded)."""
        names = self.channel_names
        if self.channels == "split" and channels > len(names):
            raise AudioError(
                f"{channels} channels, and channels: split names {len(names)} parties "
                f"({names}): give channel_names a name per channel, or mix them (channels: mix)"
            )

    @field_validator("channel_names")
    @classmethod
    def _named_once(cls, v: list[str]) -> list[str]:
        if any(not n.strip() for n in v) or len(set(v)) != len(v):
            raise ValueError(f"channel_names {v}: a non-empty name per channel, each once")
        return v

    @model_validator(mode="after")
    def _segments_fit(self) -> SegmentConfig:
        if self.max_segment_s < self.segment_over_s:
            raise ValueError(
                f"max_segment_s={self.max_segment_s:g} is below segment_over_s="
                f"{self.segment_over_s:g}: a recording kept whole would be longer than a segment"
            )
        return self


class StageResources(BaseModel, extra="forbid"):
    """The workers of one stage: how many, and what each one gets."""

    actors: int = Field(1, ge=1, description="Workers of this stage (Ray actors or Train workers).")
    num_cpus: float = Field(
        1.0, gt=0, description="CPUs reserved per worker (fractional on small machines)."
    )
    num_gpus: float = Field(
        1.0,
        ge=0,
        description="GPUs per worker when use_gpu is set (fractions share one; 0: on CPU).",
    )
    threads: int = Field(
        1, ge=0, description="torch / CTranslate2 threads per worker (0: the library's default)."
    )


# Keys from before the grouping of resources (the old flat names of extract, recognize,
# serve and train) -> their place now.
RESOURCE_KEYS = {
    "asr_actors": "resources.asr.actors",
    "asr_num_cpus": "resources.asr.num_cpus",
    "asr_num_gpus": "resources.asr.num_gpus",
    "asr_threads": "resources.asr.threads",
    **{
        f"{old}_{key}": f"resources.model.{new}"
        for old in ("text", "model")
        for key, new in (
            ("actors", "actors"),
            ("num_cpus", "num_cpus"),
            ("num_gpus", "num_gpus"),
            ("threads", "threads"),
        )
    },  # fmt: skip
    "num_workers": "resources.model.actors",
    "cpus_per_worker": "resources.model.num_cpus",
    "replica_num_cpus": "resources.asr.num_cpus",
    "replica_threads": "resources.asr.threads",
    "stage_num_cpus": "resources.model.num_cpus",
}


class ResourcesConfig(Part):
    """Where the work runs and what each worker gets: the Whisper stage (``asr``), the text
    encoder and emotion model stage (``model``) and the decode tasks."""

    OLD_KEYS: ClassVar[dict[str, str]] = RESOURCE_KEYS

    use_gpu: bool = Field(False, description="Give the stages' workers GPUs (num_gpus each).")
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="Where the model stages run; auto picks cuda when use_gpu is set."
    )
    asr: StageResources = Field(default_factory=StageResources, description="Whisper's workers.")
    model: StageResources = Field(
        default_factory=StageResources,
        description="The text encoder's and the emotion model's workers.",
    )
    decode_num_cpus: float = Field(
        0.25, gt=0, description="CPUs reserved per decoding (and segmenting) task."
    )

    def device_of(self, stage: StageResources) -> str:
        """``cpu`` or ``cuda``: where a worker of ``stage`` runs its models."""
        if not self.use_gpu or stage.num_gpus <= 0:
            return "cpu"
        return "cpu" if self.device == "cpu" else "cuda"

    def gpus(self, stage: StageResources) -> float:
        """GPUs a worker of ``stage`` asks Ray for."""
        return stage.num_gpus if self.use_gpu else 0.0
