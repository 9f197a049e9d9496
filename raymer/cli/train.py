"""``raymer train``, ``compare``, ``crossval``, ``evaluate``, ``infer``, ``calibrate`` and
``export``: the model on extracted features (``raymer.training``), and a trained model on its
own."""

from __future__ import annotations

import argparse

from raymer.cli.common import config_command, where
from raymer.config import TrainConfig, load_config, require_paths


def _train_config(args: argparse.Namespace) -> TrainConfig:

    cfg = load_config(
        TrainConfig, args.config, args.overrides, features=args.features, output=args.output
    )
    require_paths(cfg, args.command)
    return cfg


def cmd_train(args: argparse.Namespace) -> int:
    from raymer.contract.spec import SCORE_TITLES
    from raymer.training.trainer import train

    summary = train(_train_config(args))
    score = SCORE_TITLES[summary.selected_by.removeprefix("val_")]
    print(f"train: {summary.epochs} epochs, best validation {score} {summary.best_val_score:.3f}")
    if summary.unlabelled:
        print(f"left out: {summary.unlabelled} clips without a label")
    print(f"best checkpoint: {summary.best_checkpoint}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    if args.ablation and args.encoders:
        from raymer.errors import UsageError

        raise UsageError("--ablation and --encoders are two comparisons: run one at a time")
    if args.encoders:
        from raymer.training.encoders import compare_encoders

        print(compare_encoders(_train_config(args), args.encoders, args.runs)["markdown"])
        return 0
    if args.ablation:
        from raymer.training.ablation import ablation

        variants = args.variants.split(",") if args.variants else None
        print(ablation(_train_config(args), args.runs, variants, args.heldout)["markdown"])
        return 0
    from raymer.training.compare import compare

    print(compare(_train_config(args)).markdown)
    return 0


def cmd_crossval(args: argparse.Namespace) -> int:
    from raymer.training.crossval import crossval

    modalities = args.modalities.split(",") if args.modalities else None
    folds = args.folds.split(",") if args.folds else None
    print(crossval(_train_config(args), modalities, folds).markdown)
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from raymer.training.evaluate import evaluate

    by = [c for c in (args.by or "").split(",") if c]
    m = evaluate(
        args.checkpoint,
        args.features,
        args.output,
        args.speakers or None,
        where(args.where),
        by,
        speaker_stats=args.speaker_stats,
    )
    labels = (
        f" | UA {m.ua:.3f} | WA {m.wa:.3f} | macro-F1 {m.macro_f1:.3f}" if m.ua is not None else ""
    )
    dims = "".join(f" | CCC {d} {v['ccc']:.3f}" for d, v in (m.dimensions or {}).items())
    micro = m.scores.get("micro_f1") if m.scores.get("multi_label") else None
    print(
        f"evaluate: {m.n} clips"
        + labels
        + (f" | micro-F1 {micro:.3f}" if micro is not None else "")
        + dims
        + (f" | {m.unlabelled} without a label left out" if m.unlabelled else "")
    )
    print(f"report: {args.output}/report.md")
    return 0


def cmd_infer(args: argparse.Namespace) -> int:
    from raymer.training.infer import infer

    s = infer(
        args.checkpoint, args.features, args.output, args.speakers or None, where(args.where),
        min_confidence=args.min_confidence,
    )  # fmt: skip
    counts = ", ".join(f"{lab} {n}" for lab, n in s.predicted.items())
    print(f"infer: {s.n} clips ({s.unlabelled} without a label) | predicted: {counts}")
    print(f"predictions: {args.output}/predictions/")
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    from raymer.errors import UsageError
    from raymer.training.calibrate import calibrate

    done = calibrate(
        args.checkpoint, args.features, where(args.where)
        | ({"speaker": args.speakers} if args.speakers else {}),
    )  # fmt: skip
    if done is None:
        raise UsageError(
            f"nothing to calibrate: {args.checkpoint} is a multi-label model or one of "
            "dimensions alone, or no labelled clips matched"
        )
    print(done.line())
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from raymer.trained.checkpoint import export

    if args.format == "onnx":
        from raymer.trained.export_onnx import export_onnx

        folder = export_onnx(args.checkpoint, args.output)
        print(f"export: {folder} (ONNX heads and text encoder, Whisper for CTranslate2, "
              "export.json with every file's sha256)")  # fmt: skip
        print(f"run it without torch: raymer.Recognizer.from_checkpoint({args.output!r}) or "
              f"raymer serve --checkpoint {args.output} (requirements-runtime.txt)")  # fmt: skip
        return 0
    written = export(args.checkpoint, args.output)
    print(f"export: {written[0]} (model.json, model.safetensors, README.md)")
    if len(written) > 1:
        print(f"        {written[1]} (the text-only model, for texts)")
    print(
        f"load it: raymer.Recognizer.from_checkpoint({args.output!r}) or raymer serve --checkpoint {args.output}"
    )
    return 0


TRAIN_COMMANDS = {  # name: (function, help, description, --output help)
    "train": (
        cmd_train,
        "fine-tune the co-attention fusion model on extracted features (Ray Train)",
        "Train the fusion model on `raymer extract` output with Ray Train: speaker-independent "
        "splits, a checkpoint per epoch, early stopping on validation UA (macro-F1 for a "
        "multi-label model).",
        "run root for checkpoints; local or s3://",
    ),
    "compare": (
        cmd_compare,
        "train fusion, audio-only and text-only; score each on held-out data",
        "Train the three modalities with one config and print the paper's comparison table on "
        "held-out speakers (test_speakers) and held-out groups (holdout).",
        "root for the three runs and comparison.md",
    ),
    "crossval": (
        cmd_crossval,
        "leave-one-speaker-out (or -session-out) folds: mean and spread",
        "Cross-validate: each speaker (or session, with split_by=session) is the test fold "
        "once; validation speakers come from the rest (val_fraction); prints UA, WA and "
        "macro-F1 as mean ± std over folds, per fold, and pooled. Writes crossval.json/.md.",
        "root for the fold runs and crossval.md",
    ),
}

SCORE_COMMANDS = {  # name: (function, help, description, --features help, --output help)
    "evaluate": (
        cmd_evaluate,
        "score a checkpoint on labelled features: metrics, predictions, report",
        "Score a trained checkpoint (a train output: its best one; a compare output: its "
        "fusion model's) on extracted features with labels. Writes metrics.json, "
        "predictions.parquet, report.md, confusion.png.",
        "extraction output with labels; local or s3://",
        "folder for the metrics and report",
    ),
    "infer": (
        cmd_infer,
        "predict every clip of extracted features offline, labelled or not",
        "Run a trained checkpoint (a train output: its best one; a compare output: its fusion "
        "model's) over extracted features, without a service: every clip, labelled or not, "
        "gets its predicted label and a score per label, in one Ray Data job (model actors, "
        "batched). Writes predictions/ (Parquet parts) and infer.json (clips per predicted "
        "label).",
        "extraction output; local or s3://",
        "folder for predictions/ and infer.json",
    ),
    "calibrate": (
        cmd_calibrate,
        "fit a checkpoint's confidence again on your own labelled clips",
        "Fit the temperature of a single-label checkpoint (a train output: its best one; a "
        "compare output: its fusion model's) on labelled extracted features of your own "
        "voices and recording conditions, and write it into the checkpoint's model.json: its "
        "scores then say how often such an answer is right on data like these (training "
        "fits it on its validation speakers, whose voices are like the training ones). Prints "
        "the expected calibration error and Brier score before and after; the labels do not "
        "change. Check it on other clips with raymer evaluate.",
        "extraction output with labels; local or s3://",
        None,
    ),
}


def add_train_commands(sub) -> None:
    for name, (func, help_, description, output) in TRAIN_COMMANDS.items():
        cmd = config_command(
            sub,
            name,
            TrainConfig,
            func,
            help=help_,
            description=description,
            source=("--features", "extraction output (or its features/ folder); local or s3://"),
            output=output,
            configs="configs/train/",
        )
        if name == "compare":
            _compare_options(cmd)
        if name == "crossval":
            cmd.add_argument(
                "--modalities",
                help="comma-separated: fusion,audio,text (default: the config's modality)",
            )
            cmd.add_argument("--folds", help="comma-separated groups to test (default: every one)")
    for name, (func, help_, description, features, output) in SCORE_COMMANDS.items():
        _score_command(sub, name, func, help_, description, features, output)
    cmd = sub.add_parser(
        "export",
        help="a trained model alone in a folder: weights (safetensors), spec, model card",
        description="Write the model behind CHECKPOINT (a checkpoint folder, a train output: "
        "its best one; a compare output: its fusion model, with its text model under text/) "
        "to OUTPUT as model.json, model.safetensors and README.md (the model card), without "
        "the run's optimizer state or pickles. raymer serve, recognize, evaluate and "
        "raymer.Recognizer.from_checkpoint load it. --format onnx: a portable export that runs "
        "without torch or transformers (the heads and the text encoder as ONNX graphs, Whisper "
        "for CTranslate2, the tokenizer files and the sha256 of each file): the library and "
        "raymer serve load it with requirements-runtime.txt installed.",
    )
    cmd.add_argument(
        "checkpoint", help="checkpoint folder, train or compare output; local or s3://"
    )
    cmd.add_argument("output", help="folder to write; local or s3:// (onnx: local)")
    cmd.add_argument(
        "--format",
        choices=["safetensors", "onnx"],
        default="safetensors",
        help="safetensors (default): the torch model; onnx: a portable export, no torch needed",
    )
    cmd.set_defaults(func=cmd_export)


def _compare_options(cmd) -> None:
    """compare's comparisons beside the modalities': --ablation, --encoders."""
    cmd.add_argument(
        "--ablation",
        action="store_true",
        help="instead: the config's modality without augmentation, audio "
        "normalisation, prosody, modality dropout and dimensions, with each alone, and "
        "with augment+speaker_norm+prosody, --runs times each, scored on test_speakers "
        "and each --heldout set (and per report_by value); writes ablation.md with the "
        "variant the rule chooses on each",
    )
    cmd.add_argument(
        "--heldout",
        action="append",
        default=[],
        metavar="FEATURES",
        help="--ablation: features of a held-out set (e.g. corpus synth --heldout, "
        "extracted alike) every run is scored on too; repeat for more",
    )
    cmd.add_argument(
        "--encoders",
        action="append",
        default=[],
        metavar="FEATURES",
        help="instead: the config's model trained --runs times on --features and on "
        "these features (the same corpus extracted with other asr_model/text_model; "
        "repeat for more), scored on test_speakers, with each extraction's WER, rows "
        "per second and the memory its encoders hold; writes encoders.md",
    )
    cmd.add_argument("--runs", type=int, default=3, help="--ablation, --encoders: runs per variant")
    cmd.add_argument(
        "--variants",
        help="--ablation: comma-separated variants: baseline, augment, recording_norm, "
        "speaker_norm, prosody, dropout, dimensions, all (augment+speaker_norm+prosody), "
        "or options joined by + (e.g. prosody+dropout); default: all of these",
    )


def _score_command(sub, name, func, help_, description, features, output) -> None:
    cmd = sub.add_parser(name, help=help_, description=description)
    cmd.add_argument(
        "--checkpoint",
        required=True,
        help="checkpoint folder, train or compare output; local or s3://",
    )
    cmd.add_argument("--features", required=True, help=features)
    if output:
        cmd.add_argument("--output", required=True, help=output)
    cmd.add_argument("--speakers", nargs="*", help="only these speakers (e.g. a test fold)")
    cmd.add_argument(
        "--where",
        action="append",
        metavar="COLUMN=V1,V2",
        help="only clips whose COLUMN is one of the values (repeatable), "
        "e.g. --where template=angry-03,sad-07 for held-out sentences",
    )
    if name == "evaluate":
        cmd.add_argument(
            "--by",
            metavar="COLUMN[,COLUMN]",
            help="the scores of each value of these columns too, e.g. --by clip_type (the "
            "sample corpus: clips whose emotion is in the voice only are audio_cue)",
        )
        cmd.add_argument(
            "--speaker-stats",
            action="store_true",
            help="an audio_norm: speaker model scored speaker-adaptively: each clip "
            "standardised with its own speaker's statistics over these features (by default, "
            "as everywhere else, with the training speakers' pooled ones)",
        )
    if name == "infer":
        from raymer.config.command import MIN_CONFIDENCE

        cmd.add_argument(
            "--min-confidence", type=_unit, default=0.0, metavar="SCORE",
            help=MIN_CONFIDENCE.replace("%", "%%") + " (default 0)",
        )  # fmt: skip
    cmd.set_defaults(func=func)


def _unit(text: str) -> float:
    """A score between 0 and 1, checked as ``config.min_confidence`` is."""
    from raymer.config.loading import ConfigError, checked_min_confidence

    try:
        return checked_min_confidence(text)
    except ConfigError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
