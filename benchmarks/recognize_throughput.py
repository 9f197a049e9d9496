"""Throughput of ``raymer recognize`` against ``extract`` + ``infer`` and a plain loop, one run.

    python benchmarks/recognize_throughput.py --checkpoint runs/sample/compare [--clips 60]
        [--skip-two-jobs]

On the same generated clips (the sample corpus's voices and sentences), with the
checkpoint's own Whisper settings (model, beam, language):

(a) baseline: a sequential in-process loop over the clips with the same models (Whisper's
    one encoder pass for the transcript and the frames, the text encoder, the model:
    ``Recognizer``), loaded before the clock starts. (Plain faster-whisper ``transcribe``
    gives no encoder frames, which the fusion model reads; ``extract_throughput.py``
    compares the ASR part with it.);
(b) ``raymer extract`` then ``raymer infer`` (two jobs; features stored in between);
(c) ``raymer recognize`` (one streaming job, nothing stored but the predictions), then the
    same command again on its finished output (the resume: nothing to decode).

Prints audio seconds per wall second of each, the ratios b/a and c/a, recognize's phases
(``RecognizeSummary.phases_s``: its fixed cost beside the streaming job) and the WER of (a)
and (c) against the known sentences (equal quality: same beam).
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import tempfile
import time
from pathlib import Path

from raymer.wer import word_errors


def corpus_wer(refs: list[str], hyps: list[str]) -> float:
    pairs = [word_errors(r, h) for r, h in zip(refs, hyps, strict=True)]
    return sum(e for e, _ in pairs) / max(1, sum(n for _, n in pairs))


def plain_loop(checkpoint: str, clips: list) -> tuple[float, list[str]]:
    """The same models in this process, one clip after the other (``Recognizer``)."""
    from raymer.inference.core import Inference

    recognizer = Inference(checkpoint, threads=2)
    recognizer.recognize([clips[0]])  # warm-up
    start = time.perf_counter()
    texts = [recognizer.recognize([clip])[0].transcript for clip in clips]
    return time.perf_counter() - start, texts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--clips", type=int, default=60)
    parser.add_argument("--skip-two-jobs", action="store_true", help="leave (b) out")
    args = parser.parse_args()
    from raymer.audio.decode import decode_audio
    from raymer.config import ExtractConfig, RecognizeConfig
    from raymer.corpora.synth import synthesize_corpus
    from raymer.pipeline.extract import extract
    from raymer.pipeline.recognize import recognize
    from raymer.trained import checkpoint
    from raymer.training.infer import infer

    spec = checkpoint.load_spec(args.checkpoint)
    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs; {spec.extract.asr_model}, "
          f"beam {spec.extract.beam_size}; checkpoint {spec.checkpoint}")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        manifest = synthesize_corpus(Path(tmp) / "corpus", clips=args.clips, seed=11, speakers=8)
        with open(manifest) as f:
            rows = list(csv.DictReader(f))
        clips = [decode_audio((manifest.parent / r["path"]).read_bytes()) for r in rows]
        audio_s = sum(len(c) for c in clips) / 16_000
        refs = [r["text"] for r in rows]
        plain_s, plain_texts = plain_loop(args.checkpoint, clips)

        two_jobs_s = None
        if not args.skip_two_jobs:
            start = time.perf_counter()
            settings = spec.extract.model_dump()
            extract(ExtractConfig(input=str(manifest), output=f"{tmp}/extract", **settings))
            infer(args.checkpoint, f"{tmp}/extract", f"{tmp}/infer")
            two_jobs_s = time.perf_counter() - start

        cfg = RecognizeConfig(input=str(manifest), checkpoint=args.checkpoint,
                              output=f"{tmp}/recognize", plots=False)  # fmt: skip
        start = time.perf_counter()
        first = recognize(cfg)
        one_job_s = time.perf_counter() - start
        start = time.perf_counter()
        again = recognize(cfg)
        rerun_s = time.perf_counter() - start
        import pyarrow.parquet as pq

        by_id = {
            r["id"]: r["transcript"]
            for r in pq.read_table(f"{tmp}/recognize/predictions").to_pylist()
        }
        rec_texts = [by_id.get(r["id"], "") for r in rows]
    print(f"{args.clips} clips, {audio_s:.0f} s of audio")
    for name, wall in (("(a) plain loop", plain_s), ("(b) extract + infer", two_jobs_s),
                       ("(c) recognize", one_job_s)):  # fmt: skip
        if wall is not None:
            print(
                f"{name:<22} {wall:7.1f} s  {audio_s / wall:6.1f} audio s/s  x{plain_s / wall:.2f}"
            )
    print(f"recognize phases (s): {first.phases_s}")
    beside = one_job_s - first.phases_s.get("stream", 0.0) - first.phases_s.get("ray", 0.0)
    print(f"recognize beyond its streaming job (Ray start apart): {beside:.1f} s")
    print(f"re-run of the finished output: {rerun_s:.1f} s, {again.new_recordings} new, "
          f"phases {again.phases_s}")  # fmt: skip
    print(
        f"WER (a) {100 * corpus_wer(refs, plain_texts):.1f}%  (c) {100 * corpus_wer(refs, rec_texts):.1f}%"
    )


if __name__ == "__main__":
    main()
