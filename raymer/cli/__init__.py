"""The ``raymer`` command: one console script, subcommands mapped to library functions.

One module per command family, each parser next to its command: ``extract``, ``train``
(train, compare, crossval, evaluate, infer), ``recognize``, ``serve`` (serve, predict, listen), ``cluster`` (submit,
jobs, copy) and ``corpus`` (corpus synth, recording, inspect, prepare). Heavy libraries (ray, torch,
faster-whisper) are imported inside the commands, so ``raymer --help`` answers at once.
"""

from __future__ import annotations

import argparse
import contextlib
import sys

from raymer import __version__
from raymer.cli.cluster import add_cluster_commands
from raymer.cli.corpus import add_corpus_commands
from raymer.cli.extract import add_extract_commands
from raymer.cli.recognize import add_recognize_commands
from raymer.cli.serve import add_serve_commands
from raymer.cli.train import add_train_commands
from raymer.config import ConfigError

# For the raymer process and the Ray processes it starts (not for whoever imports raymer):
# no usage reporting, Ray on 127.0.0.1, no tokenizer threads forked into workers.
PROCESS_ENV = {
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
    "TOKENIZERS_PARALLELISM": "false",
}
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _verbose_flag(parser: argparse.ArgumentParser, default) -> None:
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=default,
        help="show Ray's own logs and progress, and the traceback of an error",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="raymer",
        description="Emotion recognition from speech and its transcript, on Ray.",
        epilog="exit status: 0 success, 1 a run that failed, 2 a usage or config error. "
        "Quiet by default: Ray's own logs go to its log files (/tmp/ray/session_latest/logs); "
        "--verbose shows them.",
    )
    parser.add_argument("--version", action="version", version=f"raymer {__version__}")
    _verbose_flag(parser, False)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_extract_commands(sub)
    add_train_commands(sub)
    add_recognize_commands(sub)
    add_serve_commands(sub)
    add_cluster_commands(sub)
    add_corpus_commands(sub)
    for command in sub.choices.values():  # --verbose after the command too
        _verbose_flag(command, argparse.SUPPRESS)
        for nested in _subparsers(command):
            _verbose_flag(nested, argparse.SUPPRESS)
    return parser


def _subparsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    return [
        p
        for action in parser._actions
        if isinstance(action, argparse._SubParsersAction)
        for p in action.choices.values()
    ]


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
    import logging
    import os

    from raymer import console

    for name, value in PROCESS_ENV.items():
        os.environ.setdefault(name, value)
    console.set_verbose(bool(args.verbose) or console.verbose())
    console.divert_native_stderr()  # Ray's C++ log lines: its log folder, not the terminal
    root = logging.getLogger("raymer")
    if not any(h.get_name() == "raymer-cli" for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.set_name("raymer-cli")
        handler.setFormatter(logging.Formatter("raymer: %(levelname)s: %(message)s"))
        root.addHandler(handler)
    root.setLevel(logging.INFO if console.verbose() else logging.WARNING)
    if not console.verbose():
        with contextlib.suppress(ImportError):
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()  # "Loading weights" bars
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("raymer: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # noqa: BLE001  (every error: a sentence and an exit status)
        return _report(err, console.verbose())


def _report(err: Exception, verbose: bool) -> int:
    """Print what went wrong; the exit status by whose fault it is (see raymer.errors)."""
    import traceback

    from raymer.errors import RunError, UsageError
    from raymer.models.errors import ModelError

    if verbose:
        traceback.print_exception(err, file=sys.stderr)
    usage = isinstance(err, UsageError | ModelError | FileNotFoundError | ConfigError)
    if usage or isinstance(err, RunError | TimeoutError | OSError):
        print(f"raymer: error: {err}", file=sys.stderr)
        return EXIT_USAGE if usage else EXIT_FAILED
    print(f"raymer: error: {type(err).__name__}: {err}", file=sys.stderr)
    if not verbose:
        print(
            "raymer: this looks like a bug in raymer: run again with --verbose for the "
            "traceback, and report it",
            file=sys.stderr,
        )
    return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
