"""The ``raymer`` command: one console script, subcommands mapped to library functions.

Heavy libraries (ray, torch, faster-whisper) are imported inside the subcommands, so
``raymer --help`` answers at once.
"""

from __future__ import annotations

import argparse
import sys
import textwrap

from pydantic import BaseModel

from raymer import __version__
from raymer.cli_cluster import add_cluster_commands
from raymer.cli_corpus import add_corpus_commands
from raymer.config import (
    ConfigError,
    ExtractConfig,
    ServeConfig,
    TrainConfig,
    load_config,
    require_paths,
)


def _fields_help(cls: type[BaseModel]) -> str:
    """Every config field with its default and description: the key=value overrides."""
    lines = ["settings (in --config YAML or as key=value overrides):"]
    lines += _field_lines(cls, "")
    return "\n".join(lines)


def _field_lines(cls: type[BaseModel], prefix: str) -> list[str]:
    lines = []
    for name, field in cls.model_fields.items():
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            lines += _field_lines(field.annotation, f"{prefix}{name}.")  # nested: a.b=value
            continue
        default = (
            "required"
            if field.is_required()
            else repr(field.get_default(call_default_factory=True))
        )
        lines.append(f"  {prefix}{name} (default {default})")
        lines += textwrap.wrap(
            field.description or "", 76, initial_indent="      ", subsequent_indent="      "
        )
    return lines


def _cmd_extract(args: argparse.Namespace) -> int:
    import raymer.runtime  # noqa: F401  (Ray environment defaults before ray is imported)
    from raymer.pipeline.extract import extract

    cfg = load_config(
        ExtractConfig, args.config, args.overrides, input=args.input, output=args.output
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


def _train_config(args: argparse.Namespace) -> TrainConfig:
    import raymer.runtime  # noqa: F401  (Ray environment defaults before ray is imported)

    cfg = load_config(
        TrainConfig, args.config, args.overrides, features=args.features, output=args.output
    )
    require_paths(cfg, args.command)
    return cfg


def _cmd_train(args: argparse.Namespace) -> int:
    from raymer.training.trainer import train

    summary = train(_train_config(args))
    score = "macro-F1" if summary.selected_by == "val_macro_f1" else "UA"
    print(f"train: {summary.epochs} epochs, best validation {score} {summary.best_val_score:.3f}")
    if summary.unlabelled:
        print(f"left out: {summary.unlabelled} clips without a label")
    print(f"best checkpoint: {summary.best_checkpoint}")
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from raymer.training.compare import compare

    print(compare(_train_config(args))["markdown"])
    return 0


def _cmd_crossval(args: argparse.Namespace) -> int:
    from raymer.training.crossval import crossval

    modalities = args.modalities.split(",") if args.modalities else None
    folds = args.folds.split(",") if args.folds else None
    print(crossval(_train_config(args), modalities, folds)["markdown"])
    return 0


def _where(args: argparse.Namespace) -> dict[str, list[str]]:
    where = {}
    for item in args.where or []:
        column, sep, values = item.partition("=")
        if not sep:
            raise ConfigError(f"--where {item!r} is not of the form COLUMN=V1,V2")
        where[column] = values.split(",")
    return where


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from raymer.training.evaluate import evaluate

    m = evaluate(args.checkpoint, args.features, args.output, args.speakers or None, _where(args))
    print(
        f"evaluate: {m['n']} clips | UA {m['ua']:.3f} | WA {m['wa']:.3f} | macro-F1 {m['macro_f1']:.3f}"
        + (f" | micro-F1 {m['micro_f1']:.3f}" if m.get("multi_label") else "")
        + (f" | {m['unlabelled']} without a label left out" if m["unlabelled"] else "")
    )
    print(f"report: {args.output}/report.md")
    return 0


def _cmd_infer(args: argparse.Namespace) -> int:
    from raymer.training.evaluate import infer

    s = infer(args.checkpoint, args.features, args.output, args.speakers or None, _where(args))
    counts = ", ".join(f"{lab} {n}" for lab, n in s["predicted"].items())
    print(f"infer: {s['n']} clips ({s['unlabelled']} without a label) | predicted: {counts}")
    print(f"predictions: {args.output}/predictions.parquet")
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    from pathlib import Path

    import raymer.runtime  # noqa: F401  (Ray environment defaults before ray is imported)
    from raymer.serving import server
    from raymer.serving.client import recognize, table

    cfg = load_config(
        ServeConfig,
        args.config,
        args.overrides,
        checkpoint=args.checkpoint,
        port=args.port,
        host=args.host,
    )
    url = server.start(cfg)
    print(f"serving {cfg.checkpoint} at {url}/ (API docs: {url}/docs)", flush=True)
    try:
        for path in args.predict or []:
            result = recognize(url, Path(path), cfg.auth_token)
            print(table([(Path(path).name, result)]), flush=True)
        if args.once:
            return 0
        if args.detach:
            print("detached: the application keeps running on the cluster", flush=True)
            return 0
        print("Ctrl-C stops the service.", flush=True)
        import time

        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        return 0
    finally:
        if not args.detach:
            server.stop()


def _cmd_predict(args: argparse.Namespace) -> int:
    import json
    from functools import partial

    from raymer.serving.client import (
        ServiceError,
        audio_files,
        recognize,
        recognize_text,
        table,
    )

    if not args.inputs and not args.text:
        raise ValueError("nothing to send: give audio files or folders, or --text TEXT")
    files = audio_files(args.inputs)
    if args.inputs and not files:
        raise FileNotFoundError(f"no audio files in {args.inputs}")
    asks = [({"file": str(p)}, p.name, partial(recognize, args.url, p, args.token)) for p in files]
    asks += [({}, "(text)", partial(recognize_text, args.url, t, args.token)) for t in args.text]
    answers, failed = [], 0
    for key, name, ask in asks:
        try:
            answer = key | ask()
        except ServiceError as err:
            if "cannot reach" in str(err):
                raise
            answer = key | {"error": str(err).split(": ", 1)[-1]}
            failed += 1
        answers.append((name, answer))
    if args.json:
        print(json.dumps([answer for _, answer in answers], indent=2))
    else:
        print(table(answers))
    return 1 if failed else 0


def _config_command(
    sub,
    name: str,
    cls: type[BaseModel],
    func,
    *,
    help: str,
    description: str,
    source: tuple[str, str],
    output: str,
) -> argparse.ArgumentParser:
    """A subcommand driven by a typed config: its input, --output, --config and key=value."""
    cmd = sub.add_parser(
        name,
        help=help,
        description=description,
        epilog=_fields_help(cls),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    cmd.add_argument(source[0], help=source[1])
    cmd.add_argument("--output", help=output)
    cmd.add_argument(
        "--config",
        help=f"YAML config file (see configs/{'extract' if cls is ExtractConfig else 'train'}/)",
    )
    cmd.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    cmd.set_defaults(func=func)
    return cmd


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="raymer", description="Emotion recognition from speech and its transcript, on Ray."
    )
    parser.add_argument("--version", action="version", version=f"raymer {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    _config_command(
        sub,
        "extract",
        ExtractConfig,
        _cmd_extract,
        help="corpus -> transcripts and embeddings in Parquet (Ray Data)",
        description="Transcribe a corpus with Whisper and embed audio and text, in parallel on "
        "Ray Data. Writes OUTPUT/features/ (Parquet) and OUTPUT/errors/errors.parquet.",
        source=("--input", "manifest (CSV/JSONL/Parquet) or directory; local or s3://"),
        output="output root, local or s3://",
    )
    _config_command(
        sub,
        "train",
        TrainConfig,
        _cmd_train,
        help="fine-tune the co-attention fusion model on extracted features (Ray Train)",
        description="Train the fusion model on `raymer extract` output with Ray Train: speaker-"
        "independent splits, a checkpoint per epoch, early stopping on validation UA (macro-F1 "
        "for a multi-label model).",
        source=("--features", "extraction output (or its features/ folder); local or s3://"),
        output="run root for checkpoints; local or s3://",
    )
    _config_command(
        sub,
        "compare",
        TrainConfig,
        _cmd_compare,
        help="train fusion, audio-only and text-only; score each on held-out data",
        description="Train the three modalities with one config and print the paper's "
        "comparison table on held-out speakers (test_speakers) and held-out groups (holdout).",
        source=("--features", "extraction output; local or s3://"),
        output="root for the three runs and comparison.md",
    )

    cv = _config_command(
        sub,
        "crossval",
        TrainConfig,
        _cmd_crossval,
        help="leave-one-speaker-out (or -session-out) folds: mean and spread",
        description="Cross-validate: each speaker (or session, with split_by=session) is the "
        "test fold once; validation speakers come from the rest (val_fraction); prints UA, WA "
        "and macro-F1 as mean ± std over folds, per fold, and pooled. Writes crossval.json/.md.",
        source=("--features", "extraction output; local or s3://"),
        output="root for the fold runs and crossval.md",
    )
    cv.add_argument(
        "--modalities",
        help="comma-separated: fusion,audio,text (default: the config's modality)",
    )
    cv.add_argument("--folds", help="comma-separated groups to test (default: every one)")

    for name, func, help_, description, features_help, output_help in (
        (
            "evaluate",
            _cmd_evaluate,
            "score a checkpoint on labelled features: metrics, predictions, report",
            "Score a trained checkpoint (a train output: its best one; a compare output: "
            "its fusion model's) on "
            "extracted features with labels. Writes metrics.json, predictions.parquet, "
            "report.md, confusion.png.",
            "extraction output with labels; local or s3://",
            "folder for the metrics and report",
        ),
        (
            "infer",
            _cmd_infer,
            "predict every clip of extracted features offline, labelled or not",
            "Run a trained checkpoint (a train output: its best one; a compare output: its "
            "fusion model's) over "
            "extracted features, without a service: every clip, labelled or not, gets its "
            "predicted label and a score per label. Writes predictions.parquet and infer.json "
            "(clips per predicted label).",
            "extraction output; local or s3://",
            "folder for predictions.parquet and infer.json",
        ),
    ):
        ev = sub.add_parser(name, help=help_, description=description)
        ev.add_argument(
            "--checkpoint",
            required=True,
            help="checkpoint folder, train or compare output; local or s3://",
        )
        ev.add_argument("--features", required=True, help=features_help)
        ev.add_argument("--output", required=True, help=output_help)
        ev.add_argument("--speakers", nargs="*", help="only these speakers (e.g. a test fold)")
        ev.add_argument(
            "--where",
            action="append",
            metavar="COLUMN=V1,V2",
            help="only clips whose COLUMN is one of the values (repeatable), "
            "e.g. --where template=angry-03,sad-07 for held-out sentences",
        )
        ev.set_defaults(func=func)

    sv = sub.add_parser(
        "serve",
        help="serve a trained model over HTTP (Ray Serve): API, docs and a page",
        description="Deploy the model behind an HTTP API on Ray Serve (local Ray, or the "
        "cluster at RAY_ADDRESS) and print its URL: POST /v1/recognize (audio), POST "
        "/v1/recognize/text, GET /healthz, /readyz, /v1/models, the OpenAPI docs at /docs and "
        "a page at /. Runs until Ctrl-C.",
        epilog=_fields_help(ServeConfig),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sv.add_argument(
        "--checkpoint",
        help="checkpoint, train output or compare output; local or s3:// "
        "(default runs/sample/compare, what `make demo` trains)",
    )
    sv.add_argument("--port", type=int, help="HTTP port (default 8000)")
    sv.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    sv.add_argument("--config", help="YAML config file (see configs/serve/)")
    sv.add_argument(
        "--predict", nargs="*", metavar="FILE", help="once ready, send these files and print"
    )
    sv.add_argument("--once", action="store_true", help="stop after --predict instead of serving")
    sv.add_argument(
        "--detach",
        action="store_true",
        help="deploy and return, leaving the application running (on a cluster: RAY_ADDRESS)",
    )
    sv.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    sv.set_defaults(func=_cmd_serve)

    pr = sub.add_parser(
        "predict",
        help="send audio files or texts to a running service; print a table (or --json)",
        description="Client of `raymer serve`: POST each file (folders: every audio file in "
        "them) to URL/v1/recognize, and each --text to URL/v1/recognize/text (the text-only "
        "model), and print label, score, duration and transcript. A multi-label model's "
        "labels are joined by +. Exits 1 when any input failed (the others are printed).",
    )
    pr.add_argument("inputs", nargs="*", metavar="FILE_OR_DIR")
    pr.add_argument(
        "--text",
        action="append",
        default=[],
        metavar="TEXT",
        help="a text for the text-only model (repeatable)",
    )
    pr.add_argument("--url", default="http://127.0.0.1:8000", help="service URL")
    pr.add_argument("--token", help="bearer token (default: $RAYMER_API_TOKEN)")
    pr.add_argument("--json", action="store_true", help="print the JSON answers")
    pr.set_defaults(func=_cmd_predict)

    add_cluster_commands(sub, _fields_help)

    add_corpus_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
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
