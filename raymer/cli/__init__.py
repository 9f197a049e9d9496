"""The ``raymer`` command: one console script, subcommands mapped to library functions.

One module per command family, each parser next to its command: ``extract``, ``train``
(train, compare, crossval, evaluate, infer), ``recognize``, ``serve`` (serve, predict), ``cluster`` (submit,
jobs, copy) and ``corpus`` (corpus synth, corpus prepare). Heavy libraries (ray, torch,
faster-whisper) are imported inside the commands, so ``raymer --help`` answers at once.
"""

from __future__ import annotations

import argparse
import sys

from raymer import __version__
from raymer.cli.cluster import add_cluster_commands
from raymer.cli.corpus import add_corpus_commands
from raymer.cli.extract import add_extract_commands
from raymer.cli.recognize import add_recognize_commands
from raymer.cli.serve import add_serve_commands
from raymer.cli.train import add_train_commands
from raymer.config import ConfigError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="raymer", description="Emotion recognition from speech and its transcript, on Ray."
    )
    parser.add_argument("--version", action="version", version=f"raymer {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_extract_commands(sub)
    add_train_commands(sub)
    add_recognize_commands(sub)
    add_serve_commands(sub)
    add_cluster_commands(sub)
    add_corpus_commands(sub)
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line -> its namespace. ``raymer recognize INPUT --flags key=value`` puts
    its overrides after the flags, where argparse no longer gives them to a positional."""
    from raymer.cli.recognize import OVERRIDE

    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and hasattr(args, "words") and all(OVERRIDE.match(w) for w in extra):
        args.words += extra
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from raymer.corpora.manifest import ManifestError
    from raymer.models.registry import ModelNotFoundError
    from raymer.serving.client import ServiceError
    from raymer.submission import SubmissionError
    from raymer.training.errors import TrainingError

    try:
        return args.func(args)
    except (
        ConfigError,
        ManifestError,
        ModelNotFoundError,
        TrainingError,
        ServiceError,
        SubmissionError,
        TimeoutError,
        ValueError,
        FileNotFoundError,
    ) as err:
        print(f"raymer: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
