"""Settings of ``raymer recognize``: a corpus to emotions with a trained checkpoint."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from raymer.config.parts import (
    CommandConfig,
    DecodeConfig,
    SegmentConfig,
    SpeechConfig,
    max_attempts,
    part,
)


class RecognizeConfig(CommandConfig):
    """Settings of ``raymer recognize``: recordings of any length in, emotions per segment
    and per recording out. How the model's inputs are made (Whisper, window, frame rate,
    text encoder) comes from the checkpoint, never from here: it must match its training."""

    input: str | None = Field(
        None,
        description="A directory of audio (recursive), a manifest (CSV/JSONL/Parquet with a "
        "`path` column, as extract reads) or one audio file; local or s3://.",
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
    speech: SpeechConfig = part(SpeechConfig)
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
    batch_size: int = Field(8, ge=1, description="Segments per batch in the model stages.")
    use_gpu: bool = Field(False, description="Give each model actor a GPU (num_gpus below).")
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="Where the model stages run; auto picks cuda when use_gpu is set."
    )
    asr_actors: int = Field(2, ge=1, description="Whisper actors.")
    asr_num_cpus: float = Field(
        0.4,
        gt=0,
        description="CPUs reserved per Whisper actor. The model actors together must leave "
        "one CPU of the cluster to Ray Data's read and shuffle tasks (checked at start).",
    )
    asr_threads: int = Field(1, ge=0, description="CTranslate2 threads per Whisper actor.")
    asr_num_gpus: float = Field(1.0, ge=0, description="GPUs per Whisper actor with use_gpu.")
    model_actors: int = Field(1, ge=1, description="Text encoder + emotion model actors.")
    model_num_cpus: float = Field(0.2, gt=0, description="CPUs reserved per model actor.")
    model_threads: int = Field(1, ge=1, description="torch threads per model actor.")
    model_num_gpus: float = Field(0.0, ge=0, description="GPUs per model actor with use_gpu.")
    decode_num_cpus: float = Field(0.25, gt=0, description="CPUs per decode/segment task.")
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
