"""Extraction throughput and WER against plain faster-whisper, per window strategy, on two
corpora, measured in one run.

    python benchmarks/extract_throughput.py [--clips 200] [--corpora sample heldout]
        [--windows auto fit full] [--beams 5 1] [--config FILE] [--gpu] [--profile] [key=value ...]

Corpora: ``sample`` (``raymer corpus synth``, seed 11: the voices and sentences the defaults
were chosen on) and ``heldout`` (``raymer corpus synth --heldout``: six other espeak-ng voices
and a separate sentence list, kept out of every default choice). For each corpus and beam size
(5, faster-whisper's and raymer's default, then 1, the fast option):
(a) baseline: a sequential faster-whisper loop (``WhisperModel.transcribe``), same model,
    compute type, beam size and language, ASR only (model loading not timed);
(b) ``raymer extract`` with each window strategy: ASR plus the audio and text embeddings on
    local Ray (end to end: actor start-up and model loading are timed too).
Prints audio seconds per second of each, the ratio b/a and the WER of each against the known
sentences (equal quality: same beam), then a Markdown table of it all. Settings are the
command's own defaults (``raymer extract`` without a config: the language is detected per
clip) unless ``--config`` or key=value say otherwise. ``--profile``: where the time of one
sequential pass goes (decode, encoder, decoder, text).
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import tempfile
import time
from pathlib import Path

from raymer.audio.decode import decode_audio
from raymer.config import ExtractConfig, load_config
from raymer.models.registry import resolve_model
from raymer.runtime import init_ray
from raymer.wer import word_errors


def corpus_wer(refs: list[str], hyps: list[str]) -> float:
    pairs = [word_errors(r, h) for r, h in zip(refs, hyps, strict=True)]
    return sum(e for e, _ in pairs) / max(1, sum(n for _, n in pairs))


def baseline(cfg: ExtractConfig, audio: list, device: str) -> tuple[float, list[str], list[str]]:
    from faster_whisper import WhisperModel

    compute = (
        cfg.compute_type
        if cfg.compute_type != "default"
        else ("float16" if device == "cuda" else "int8")
    )
    model = WhisperModel(resolve_model(cfg.asr_model), device=device, compute_type=compute)
    model.transcribe(audio[0], beam_size=cfg.beam_size, language=cfg.language)  # warm-up
    start = time.perf_counter()
    texts, languages = [], []
    for clip in audio:
        segments, info = model.transcribe(clip, beam_size=cfg.beam_size, language=cfg.language)
        texts.append(" ".join(s.text.strip() for s in segments))
        languages.append(info.language)
    return time.perf_counter() - start, texts, languages


def pipeline(
    cfg: ExtractConfig, manifest: Path, out: str
) -> tuple[float, list[str], list[str], list[str]]:
    import pyarrow.parquet as pq

    from raymer.pipeline.extract import extract

    summary = extract(cfg.model_copy(update={"input": str(manifest), "output": out}))
    columns = ["id", "transcript", "language"]
    by_id = {r["id"]: r for r in pq.read_table(Path(out) / "features", columns=columns).to_pylist()}
    rows = list(by_id.values())
    return (
        summary.wall_s,
        list(by_id),
        [r["transcript"] for r in rows],
        [r["language"] for r in rows],
    )


def profile(cfg: ExtractConfig, manifest: Path, rows: list[dict], device: str) -> dict[str, float]:
    """One sequential pass through the stages' own code, timing each part."""
    from raymer.models.text_encoder import TextEncoder
    from raymer.models.whisper import WhisperFeaturizer

    timings = dict.fromkeys(("decode", "encoder", "decoder", "text encoder"), 0.0)
    start = time.perf_counter()
    audio = [decode_audio((manifest.parent / r["path"]).read_bytes()) for r in rows]
    timings["decode"] = time.perf_counter() - start
    fz = WhisperFeaturizer(
        resolve_model(cfg.asr_model),
        device=device,
        compute_type=cfg.compute_type,
        cpu_threads=os.cpu_count() or 1,
        beam_size=cfg.beam_size,
        language=cfg.language,
        window=cfg.window,
    )
    encode, generate = fz.model.encode, fz._generate

    def timed(name, fn):
        def wrapper(*a, **k):
            t = time.perf_counter()
            out = fn(*a, **k)
            timings[name] += time.perf_counter() - t
            return out

        return wrapper

    fz.model.encode, fz._generate = timed("encoder", encode), timed("decoder", generate)
    texts = []
    for i in range(0, len(audio), cfg.batch_size):
        texts += [r.transcript for r in fz(audio[i : i + cfg.batch_size])]
    enc = TextEncoder(resolve_model(cfg.text_model), max_tokens=cfg.max_text_tokens)
    start = time.perf_counter()
    for i in range(0, len(texts), cfg.batch_size * 4):
        enc(texts[i : i + cfg.batch_size * 4])
    timings["text encoder"] = time.perf_counter() - start
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clips", type=int, default=200)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--config", default=None, help="an extract config (default: none)")
    parser.add_argument(
        "--gpu", action="store_true", help="CUDA: float16, Whisper actors on the GPU"
    )
    parser.add_argument("--beams", type=int, nargs="+", default=[5, 1])
    parser.add_argument("--windows", nargs="+", default=["auto", "fit", "full"])
    parser.add_argument("--corpora", nargs="+", default=["sample", "heldout"])
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("overrides", nargs="*", metavar="key=value")
    args = parser.parse_args()
    overrides = list(args.overrides) + (
        ["resources.use_gpu=true", "compute_type=float16"] if args.gpu else []
    )
    cfg = load_config(ExtractConfig, args.config, overrides)
    device = "cuda" if args.gpu else "cpu"

    from raymer.corpora.synth import synthesize_corpus

    work = Path(tempfile.mkdtemp(prefix="raymer-bench-"))
    init_ray()
    print(
        f"\nmachine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"device {device}; model {cfg.asr_model} {cfg.compute_type}, language "
        f"{cfg.language or 'detected'}"
    )
    table = []
    for corpus in args.corpora:
        heldout = corpus == "heldout"
        manifest = synthesize_corpus(
            work / corpus,
            clips=args.clips,
            seed=args.seed,
            speakers=6 if heldout else 8,
            voices=corpus,
        )
        rows = list(csv.DictReader(manifest.open()))
        refs = {r["id"]: r["text"] for r in rows}
        audio = [decode_audio((manifest.parent / r["path"]).read_bytes()) for r in rows]
        seconds = sum(len(a) for a in audio) / 16_000
        print(f"\n{corpus}: {len(rows)} clips, {seconds:.0f} s of audio")
        for beam in args.beams:
            run = cfg.model_copy(update={"beam_size": beam})
            a_wall, a_texts, a_langs = baseline(run, audio, device)
            a_rate, a_wer = seconds / a_wall, corpus_wer(list(refs.values()), a_texts)
            a_other = sum(lang != "en" for lang in a_langs)  # both corpora are English
            print(
                f"  beam {beam}: (a) faster-whisper loop: {a_rate:6.2f} audio s/s  "
                f"WER {100 * a_wer:.1f}%  {a_other} clips in another language"
            )
            table.append((corpus, beam, "faster-whisper", a_rate, 1.0, a_wer, a_other))
            for window in args.windows:
                out = str(work / f"out-{corpus}-{beam}-{window}")
                b = run.model_copy(update={"window": window})
                b_wall, ids, b_texts, b_langs = pipeline(b, manifest, out)
                b_rate, b_wer = seconds / b_wall, corpus_wer([refs[i] for i in ids], b_texts)
                b_other = sum(lang != "en" for lang in b_langs)
                print(
                    f"          (b) raymer extract, window {window:4}: {b_rate:6.2f} audio s/s  "
                    f"WER {100 * b_wer:.1f}%  {b_other} clips in another language  "
                    f"b/a {b_rate / a_rate:.2f}"
                )
                name = f"raymer, window {window}"
                table.append((corpus, beam, name, b_rate, b_rate / a_rate, b_wer, b_other))
    print(
        "\n| corpus | beam | run | audio s/s | vs faster-whisper | WER | clips in another language |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for corpus, beam, name, rate, ratio, wer_, other in table:
        print(
            f"| {corpus} | {beam} | {name} | {rate:.2f} | {ratio:.2f}x | {100 * wer_:.1f}% | {other} |"
        )
    if args.profile:
        manifest = work / args.corpora[0] / "manifest.csv"
        rows = list(csv.DictReader(manifest.open()))
        timings = profile(cfg, manifest, rows, device)
        total = sum(timings.values())
        print(
            f"one sequential pass (beam {cfg.beam_size}), where the time goes: "
            + ", ".join(f"{k} {v:.1f} s ({100 * v / total:.0f}%)" for k, v in timings.items())
        )


if __name__ == "__main__":
    main()
