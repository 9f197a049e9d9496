"""What the voice options cost at extraction: time and storage per clip, measured in one
process on the same clips.

    python benchmarks/voice_options.py [--clips 40] [--copies 1] [--config FILE]

Clips: the sample corpus (``raymer corpus synth``, seed 13, varied recording conditions).
(a) baseline: the featurizer as ``raymer extract`` builds it (Whisper transcript and frames,
    one encoder pass; the config's model, beam and window), sequentially;
(b) prosody: the same with ``prosody: true`` (openSMILE's eGeMAPS descriptors in the pass);
(c) augment: making ``copies`` augmented copies of each clip (the decode stage's part); each
    copy then costs what a clip costs in (a) or (b), so extraction with ``copies: k`` is about
    ``k + 1`` times (a) in all.
Prints seconds per clip and the ratio to (a), then the Parquet bytes per clip of the stored
frames without and with the prosody columns (snappy, as Ray Data writes them).
"""

from __future__ import annotations

import argparse
import io
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from raymer.audio import augment, decode_audio
from raymer.config import ExtractConfig, load_config
from raymer.corpora.synth import synthesize_corpus
from raymer.models.builders import build_featurizer


def timed(run, clips: list[np.ndarray]) -> tuple[float, list]:
    run(clips[:1])  # warm-up: model and openSMILE loaded, not timed
    start = time.perf_counter()
    out = [r for clip in clips for r in run([clip])]
    return time.perf_counter() - start, out


def frames_bytes(frames: list[np.ndarray]) -> int:
    table = pa.table({"audio_frames": [f.tolist() for f in frames]})
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="snappy")
    return buf.tell()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=40)
    parser.add_argument("--copies", type=int, default=1)
    parser.add_argument("--config", default="configs/extract/sample.yaml")
    args = parser.parse_args()
    cfg = load_config(ExtractConfig, args.config, ["prosody=false"])
    root = Path(tempfile.mkdtemp(prefix="raymer-voice-"))
    manifest = synthesize_corpus(root, args.clips, seed=13, speakers=8, conditions="varied")
    paths = [root / line.split(",")[0] for line in manifest.read_text().splitlines()[1:]]
    clips = [decode_audio(p) for p in paths]
    audio_s = sum(len(c) for c in clips) / 16_000
    base_s, base = timed(build_featurizer(cfg, "cpu", 2), clips)
    prosody_cfg = cfg.model_copy(update={"prosody": True})
    pros_s, pros = timed(build_featurizer(prosody_cfg, "cpu", 2), clips)
    aug = cfg.augment.model_copy(update={"copies": args.copies})
    start = time.perf_counter()
    for i, clip in enumerate(clips):
        augment.copies(clip, aug, str(i))
    aug_s = time.perf_counter() - start
    n = len(clips)
    print(f"{n} clips, {audio_s:.0f} s of audio, {cfg.asr_model}, beam {cfg.beam_size}")
    print("| step | s per clip | vs baseline |")
    print("| --- | --- | --- |")
    print(f"| (a) featurizer | {base_s / n:.3f} | 1.00x |")
    print(f"| (b) featurizer + prosody | {pros_s / n:.3f} | {pros_s / base_s:.2f}x |")
    print(
        f"| (c) {args.copies} augmented cop{'y' if args.copies == 1 else 'ies'} (making them) "
        f"| {aug_s / n:.3f} | {aug_s / base_s:.2f}x (then each copy: (a) or (b) again) |"
    )
    plain = frames_bytes([r.frames for r in base]) / n
    wide = frames_bytes([r.frames for r in pros]) / n
    print(f"\nstored frames per clip: {plain / 1024:.1f} KiB; with prosody {wide / 1024:.1f} KiB ")
    print(f"({wide / plain:.2f}x); each augmented copy adds a clip's row.")


if __name__ == "__main__":
    main()
