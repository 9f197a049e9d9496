"""The corpus side of the ``raymer`` command: ``corpus synth``, ``corpus recording``,
``corpus inspect`` and ``corpus prepare``.

``raymer.cli.build_parser`` adds them with ``add_corpus_commands``; the work is in
``raymer.corpora`` (``synth.synthesize_corpus``, ``prepare.prepare``).
"""

from __future__ import annotations

import argparse

from raymer.config import load_config


def cmd_prepare(args: argparse.Namespace) -> int:
    from raymer.corpora.prepare import prepare

    _, summary = prepare(
        args.name,
        args.source,
        args.output,
        labels=args.labels,
        subset=args.subset,
        label_map=args.label_map,
        folds=args.folds,
    )
    print(summary)
    print(f"manifest: {args.output}")
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    import json

    from raymer.pipeline.inspect import inspect_corpus, table

    survey = inspect_corpus(args.input, args.output)
    print(json.dumps(survey.to_json(), indent=2) if args.json else table(survey))
    if args.output and not args.json:
        print(f"survey: {args.output}/inspect.json  problems: {args.output}/problems/")
    return 0


def _add_inspect(corpus_sub) -> None:
    found = corpus_sub.add_parser(
        "inspect",
        help="survey a corpus from its headers before the expensive run",
        description="What is in a corpus, from each file's header alone (nothing is decoded), "
        "as one Ray Data job over the input as extract and recognize read it (a manifest, a "
        "folder, Parquet shards; local or s3://): clips, hours and bytes; sample rates, "
        "channels, containers and codecs; duration percentiles; every file extract would "
        "refuse, with the reason it would give (its decode limits: size, header, length); "
        "duplicate ids; and where the manifest has them, labels, speakers and folds. A "
        "table on the console; with --output, inspect.json and problems/ (Parquet: id, "
        "path, stage, error) there.",
    )
    found.add_argument("input", help="manifest, folder or Parquet shards; local or s3://")
    found.add_argument("--output", help="folder for inspect.json and problems/ (optional)")
    found.add_argument("--json", action="store_true", help="print the survey as JSON")
    found.set_defaults(func=cmd_inspect)


def cmd_synth(args: argparse.Namespace) -> int:
    from raymer.config import SynthConfig
    from raymer.corpora.synth import synthesize_corpus

    cfg = load_config(
        SynthConfig,
        None,
        [],
        output=args.output,
        clips=args.clips,
        seed=args.seed,
        **({} if args.speakers is None else {"speakers": args.speakers}),
        voices="heldout" if args.heldout else "sample",
        conditions=args.conditions,
    )
    manifest = synthesize_corpus(
        cfg.output,
        cfg.clips,
        cfg.seed,
        cfg.speakers,
        workers=args.workers,
        voices=cfg.voices,
        conditions=cfg.conditions,
    )
    print(
        f"{cfg.voices} corpus: {cfg.clips} clips, {cfg.speakers} speakers, seed {cfg.seed}, "
        f"{cfg.conditions} conditions -> {manifest}"
    )
    return 0


def cmd_recording(args: argparse.Namespace) -> int:
    from raymer.corpora.recording import SCRIPT_FILE, synthesize_recording

    wav = synthesize_recording(
        args.output,
        args.minutes,
        seed=args.seed,
        voices="sample" if args.sample_voices else "heldout",
        conditions=args.conditions,
        workers=args.workers,
    )
    print(
        f"{args.minutes:g} min recording -> {wav} (what is said where: {wav.parent / SCRIPT_FILE})"
    )
    return 0


def _add_recording(corpus_sub) -> None:
    rec = corpus_sub.add_parser(
        "recording",
        help="generate one long recording of sentences with pauses, and its script",
        description="One long recording (a call, a meeting) to try long-audio recognition on: "
        "generated sentences one after the other with 0.8-3 s pauses, 16 kHz mono WAV "
        "(recording.wav), and script.csv saying what is where (start_s, end_s, speaker, label, "
        "text: the reference for a word error rate and per-sentence labels). By default in the "
        "held-out voices and sentences, which no default was chosen on.",
    )
    rec.add_argument("--output", required=True, help="folder for recording.wav and script.csv")
    rec.add_argument("--minutes", type=float, default=10.0, help="its length (default 10)")
    rec.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    rec.add_argument(
        "--sample-voices", action="store_true", help="the sample corpus's voices and sentences"
    )
    rec.add_argument("--conditions", choices=["varied", "studio"], default="studio",
                     help="studio (default): as rendered; varied: a room, line and noise per speaker")  # fmt: skip
    rec.add_argument("--workers", type=int, default=2, help="parallel processes (default 2)")
    rec.set_defaults(func=cmd_recording)


def _add_synth(corpus_sub) -> None:
    from raymer.config.extract import SYNTH_SPEAKERS

    synth = corpus_sub.add_parser(
        "synth",
        help="generate the sample emotional speech corpus",
        description="Generate a labelled emotional speech corpus (angry, happy, sad, neutral) with "
        "piper and espeak-ng voices, each speaker a voice of its own: clip types congruent, "
        "audio_cue, text_cue and neutral.",
    )
    synth.add_argument("--output", required=True, help="folder for audio and manifest.csv")
    synth.add_argument("--clips", type=int, default=200, help="number of clips (default 200)")
    synth.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    synth.add_argument(
        "--speakers",
        type=int,
        default=None,
        help=f"number of speakers, each in a voice of its own (default {SYNTH_SPEAKERS}): the "
        "listed voices first (16; 6 held out: earlier releases' corpora), then voices drawn "
        "from the set's space (accent, variant or piper, pitch, range, rate, formants)",
    )
    synth.add_argument(
        "--heldout",
        action="store_true",
        help="other voices (accents the sample set never uses) and sentences, kept out of "
        "every default choice",
    )
    synth.add_argument(
        "--conditions",
        choices=["varied", "studio"],
        default="varied",
        help="varied (default): a recording setup per speaker (room, telephone line or codec, "
        "level) and noise per clip; studio: every clip as rendered",
    )
    synth.add_argument("--workers", type=int, default=2, help="parallel processes (default 2)")
    synth.set_defaults(func=cmd_synth)


def add_corpus_commands(sub) -> None:
    """``corpus synth``, ``corpus recording`` and ``corpus prepare`` on the subparsers
    ``sub``."""
    corpus = sub.add_parser("corpus", help="sample and real corpora")
    corpus_sub = corpus.add_subparsers(dest="corpus_command", required=True, metavar="ACTION")
    _add_synth(corpus_sub)
    _add_recording(corpus_sub)
    _add_inspect(corpus_sub)
    prep = corpus_sub.add_parser(
        "prepare",
        help="a real corpus (IEMOCAP, MSP-Podcast, RAVDESS, SAVEE, CREMA-D, TESS, GoEmotions) "
        "-> manifest",
        description="Read an emotion corpus from its documented layout and write the "
        "project's manifest (path, id, label, raw_label, speaker, session, text, fold, and the "
        "corpus's own attributes; arousal, valence and dominance rescaled to -1..1 beside their "
        "*_raw ratings), with speaker-independent folds; prints utterances per label, "
        "speaker and fold, total hours, and every problem met (missing files, files without a "
        "label line, unknown codes, duplicate ids) with examples. docs/corpora.md.",
    )
    prep.add_argument(
        "name",
        choices=["iemocap", "msp-podcast", "ravdess", "savee", "crema-d", "tess", "goemotions"]
        + ["manifest"],
    )
    prep.add_argument(
        "source",
        help="the corpus folder (for manifest: a manifest, shards with the audio inside, a glob of them, or Lhotse supervisions, listed by address); local or s3://",
    )
    prep.add_argument("--output", required=True, help="manifest to write (.csv, or .jsonl)")
    prep.add_argument(
        "--labels",
        help="iemocap, msp-podcast: 4class (default) | all; goemotions: ekman (default) | all",
    )
    prep.add_argument("--subset", choices=["all", "improvised", "scripted"], help="iemocap only")
    prep.add_argument("--label-map", help="YAML mapping label -> label (null: leave out)")
    prep.add_argument(
        "--folds",
        type=int,
        default=5,
        help="speaker folds (not IEMOCAP: its 5 sessions) (default 5)",
    )
    prep.set_defaults(func=cmd_prepare)
