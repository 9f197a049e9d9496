"""``raymer recognize``: a corpus of any size and recording length to emotions, per segment
and per recording, with a trained checkpoint (``raymer.pipeline.recognize``)."""

from __future__ import annotations

import argparse
import re

from raymer.cli.common import fields_help
from raymer.config import ConfigError, load_config, require_paths
from raymer.config.recognize import RecognizeConfig

OVERRIDE = re.compile(r"^[A-Za-z_][\w.]*=")


def cmd_recognize(args: argparse.Namespace) -> int:
    from raymer.pipeline.recognize import recognize

    given, overrides = split_words(args.words)
    cfg = load_config(
        RecognizeConfig,
        args.config,
        overrides,
        input=given or args.input,
        checkpoint=args.checkpoint,
        output=args.output,
        redo=args.redo,
    )
    require_paths(cfg, "recognize")
    summary = recognize(cfg)
    print(summary.line())
    counts = ", ".join(f"{label} {n}" for label, n in sorted(summary.labels.items()))
    print(f"recordings by label: {counts or 'none with speech'}")
    print(f"predictions: {summary.output}/predictions/  recordings: {summary.output}/recordings/")
    if summary.failed:
        print(f"errors: {summary.output}/errors/errors.parquet ({summary.failed}), e.g.")
        for example in summary.error_examples:
            print(f"  {example}")
    return 0


def split_words(words: list[str]) -> tuple[str | None, list[str]]:
    """``INPUT key=value ...`` -> (INPUT, overrides). (argparse cannot take a positional
    after the flags and still leave the overrides to another positional.)"""
    overrides = [w for w in words if OVERRIDE.match(w)]
    rest = [w for w in words if not OVERRIDE.match(w)]
    if len(rest) > 1:
        raise ConfigError(f"recognize takes one INPUT, not {rest}")
    return (rest[0] if rest else None), overrides


def add_recognize_commands(sub) -> None:
    cmd = sub.add_parser(
        "recognize",
        help="a corpus (any size, any recording length) -> emotions per segment and recording",
        description="Recognise emotions in every recording of INPUT (a directory, a manifest "
        "or one file; local or s3://) with a trained checkpoint, in one streaming Ray Data "
        "job: decode, cut long recordings at pauses (Silero VAD), Whisper, the text encoder "
        "and the model. Segments without speech get no emotion. Writes OUTPUT/predictions/ "
        "(a row per segment), OUTPUT/recordings/ (a row per recording), "
        "OUTPUT/errors/errors.parquet, OUTPUT/plots/ and summary.json; a re-run resumes.",
        epilog=fields_help(RecognizeConfig),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    cmd.add_argument(
        "words",
        nargs="*",
        metavar="INPUT [key=value ...]",
        help="the directory, manifest or audio file (local or s3://), then config overrides",
    )
    cmd.add_argument("--input", help="INPUT as a flag (as `raymer submit recognize` takes it)")
    cmd.add_argument(
        "--checkpoint", help="checkpoint folder, train or compare output; local or s3://"
    )
    cmd.add_argument("--output", help="output root; local or s3://")
    cmd.add_argument("--config", help="YAML config file (see configs/recognize/)")
    cmd.add_argument(
        "--redo",
        action="store_const",
        const=True,
        help="replace an output made with another checkpoint or other settings (redo=true)",
    )
    cmd.set_defaults(func=cmd_recognize)
