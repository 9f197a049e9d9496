"""``raymer extract``: a corpus to transcripts and embeddings in Parquet (``raymer.pipeline``)."""

from __future__ import annotations

import argparse

from raymer.cli.common import config_command
from raymer.config import ExtractConfig, load_config, require_paths


def cmd_extract(args: argparse.Namespace) -> int:
    from raymer.pipeline.extract import extract

    cfg = load_config(
        ExtractConfig,
        args.config,
        args.overrides,
        input=args.input,
        output=args.output,
        redo=args.redo,
    )
    require_paths(cfg, "extract")
    summary = extract(cfg)
    print(summary.line())
    print(f"features: {summary.features_uri}")
    if summary.clips_failed:
        print(f"errors:   {summary.errors_uri}/errors.parquet ({summary.clips_failed} clips), e.g.")
        for example in summary.error_examples:
            print(f"  {example}")
    return 0


def add_extract_commands(sub) -> None:
    config_command(
        sub,
        "extract",
        ExtractConfig,
        cmd_extract,
        help="corpus -> transcripts and embeddings in Parquet (Ray Data)",
        description="Transcribe a corpus with Whisper and embed audio and text, in parallel on "
        "Ray Data. Writes OUTPUT/features/ (Parquet) and OUTPUT/errors/errors.parquet.",
        source=(
            "--input",
            "manifest (CSV/JSONL/Parquet), directory, shards (Parquet with the audio inside, "
            "WebDataset .tar; a folder or glob) or Lhotse supervisions; local or s3://",
        ),
        output="output root, local or s3://",
        configs="configs/extract/",
        redo=True,
    )
