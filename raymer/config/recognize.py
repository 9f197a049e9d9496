"""Settings of ``raymer recognize``: a corpus to emotions with a trained checkpoint."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from raymer.config.command import CommandConfig, max_attempts, min_confidence, part
from raymer.config.parts import DecodeConfig, ResourcesConfig, SegmentConfig, SpeechConfig

# The files a recognized recording can be written as (``raymer.inference.exports``).
ExportFormat = Literal["vtt", "srt", "textgrid", "csv"]


class RecognizeConfig(CommandConfig):
    """Settings of ``raymer recognize``: recordings of any length in, emotions per segment
    and per recording out. How the model's inputs are made (Whisper, window, frame rate,
    text encoder) comes from the checkpoint, never from here: it must match its training."""

    input: str | None = Field(
        None,
        description="A directory of audio (recursive), a manifest (CSV/JSONL/Parquet with a "
        "`path` column, as extract reads), one audio file, shards with the audio inside "
        "(Parquet in the datasets layout, WebDataset .tar; a file, folder or glob) or Lhotse "
        "supervisions (*supervisions*.jsonl.gz); local or s3://.",
    )
    checkpoint: str | None = Field(
        None, description="Checkpoint folder, train output or compare output; local or s3://."
    )
    output: str | None = Field(
        None,
        description="Output root: predictions/, recordings/, errors/, summary.json, "
        "config.yaml (and features/, plots/ when asked); local or s3://.",
    )
    segment: SegmentConfig = part(SegmentConfig)
    turns: str | None = Field(
        None,
        description="A folder of RTTM files (a diarizer's speaker turns, as pyannote writes "
        "them), one per recording, ID.rttm (its id: the file's path under the input "
        "folder without its extension, or the manifest's id): each recording with one is cut "
        "inside its speakers' turns, each segment named after its speaker and flagged where "
        "another speaker's turn overlaps it (a manifest's `turns` column, an RTTM file per "
        "row, does the same). A turn file that does not parse, names another recording or "
        "runs past the audio's end is that recording's error row; a recording without one is "
        "heard as one stream. Local or s3://.",
    )
    speech: SpeechConfig = part(SpeechConfig)
    min_confidence: float = min_confidence()
    decode: DecodeConfig = part(
        DecodeConfig, max_file_mb=8192.0, max_duration_s=6 * 3600.0, decode_timeout_s=900.0
    )
    max_attempts: int = max_attempts()
    redo: bool = Field(
        False,
        description="When OUTPUT holds predictions made with another checkpoint or other "
        "segmenting settings, remove them and start again (without it such a run is "
        "refused). --redo on the CLI.",
    )
    keep_features: bool = Field(
        False, description="Also write each segment's features to OUTPUT/features/."
    )
    plots: bool = Field(
        True,
        description="Write OUTPUT/plots/<id>.png (emotion over time) for recordings with more "
        "than one segment, and OUTPUT/plots/summary.png.",
    )
    formats: list[ExportFormat] = Field(
        default_factory=list,
        description="Also write each recording's answer as these files, "
        "OUTPUT/exports/<id>.<vtt|srt|TextGrid|csv>: WebVTT and SRT subtitles (a cue per "
        "segment with speech: the label with its score, then the transcript), a Praat "
        "TextGrid (interval tiers transcript, label and each emotion dimension) and a CSV of "
        "the segments (the prediction rows' columns). None by default (Parquet only).",
    )
    batch_size: int = Field(
        8,
        ge=1,
        description="Whisper windows per batch in the Whisper stage (a short recording is "
        "one; a long one's consecutive segments fill 30 s windows), segments per batch in "
        "the text-encoder-and-model stage.",
    )
    resources: ResourcesConfig = part(
        ResourcesConfig,
        asr={"actors": 2, "num_cpus": 0.4, "num_gpus": 1.0, "threads": 1},
        model={"actors": 1, "num_cpus": 0.2, "num_gpus": 0.0, "threads": 1},
    )  # the actors must leave one CPU of the cluster to Ray Data's tasks (checked at start)
    recordings_per_task: int = Field(
        128,
        ge=1,
        description="Recordings per decode/segment task: fewer tasks keep the driver's "
        "bookkeeping small on huge corpora; lower it (1-4) for corpora of hour-long "
        "recordings, so that they decode in parallel.",
    )
    resume: bool = Field(
        True,
        description="Skip recordings already in OUTPUT/recordings, before decoding them (a "
        "re-run adds nothing); false: start over, replacing what is there (as --redo does).",
    )
    segments_per_file: int = Field(
        1000,
        ge=1,
        description="Segments per write task (one predictions file and one recordings file "
        "each): what a crash can make the next run redo.",
    )

    @field_validator("formats")
    @classmethod
    def _once_each(cls, v: list[str]) -> list[str]:
        return list(dict.fromkeys(v))

    def has_parties(self, carried: list[str]) -> bool:
        """Whether a recording may be heard as parties (a speaker per segment): channels
        split, a folder of turns, or a manifest's ``turns`` column (``carried``)."""
        return self.segment.channels == "split" or self.turns is not None or "turns" in carried
