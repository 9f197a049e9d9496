"""Hour-long recordings: ``raymer recognize`` and ``raymer.Recognizer`` against faster-whisper's
``BatchedInferencePipeline`` (the ASR users would otherwise run), one run.

    python benchmarks/long_recordings.py --checkpoint runs/sample/compare [--minutes 10 30 60]
        [--seed 11] [--only baseline,library,recognize] [--stereo]

Each recording is ``raymer.corpora.recording.synthesize_recording``: sentences of the held-out
voices (six espeak-ng voices and sentences no default was chosen on) one after the other
with pauses of 0.8-3 s, 16 kHz mono WAV, with its script. Each way runs in a process of its
own, on the same file, with the checkpoint's Whisper model and beam:

- ``baseline``: ``BatchedInferencePipeline.transcribe`` (batch 8, the checkpoint's beam, 2
  threads, language detected), ASR only, the model loaded before the clock;
- ``library``: ``Recognizer.predict`` (ASR and emotion per segment, 2 threads), models loaded
  before the clock;
- ``recognize``: the ``raymer recognize`` command (its defaults, plots off), Ray's start
  included.

``--stereo``: the recording as a two-party call, its sentences taken in turn by the left
(agent) and the right (customer) channel, each channel silent while the other speaks; the
library and ``recognize`` hear it with ``segment.channels: split`` (a stream per channel),
the baseline transcribes the two channels mixed. ``speakers`` then gives the share of
sentences whose most-overlapping segment names their channel's party.

Prints per way and length: wall seconds, real-time factor (audio s per wall s), speed against
the baseline, WER against the script, per-sentence label accuracy (each sentence's label
against the label of the segment that overlaps it most), and the peak private resident
memory (``RssAnon + RssFile``, sampled every 0.2 s; Ray's shared object-store pages a worker
maps are the store's, bounded by its size, and left out) of each process doing the work:
the process itself, and for ``recognize`` every Ray process it started, by role (the driver,
the decode tasks, the Whisper and model actors).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

RAYMER = str(Path(sys.executable).with_name("raymer"))

BASELINE = """
import json, sys, time
from faster_whisper import BatchedInferencePipeline, WhisperModel, decode_audio
from raymer.models.registry import resolve_model
path, model, beam = sys.argv[1], sys.argv[2], int(sys.argv[3])
pipe = BatchedInferencePipeline(WhisperModel(resolve_model(model), device="cpu",
                                             compute_type="int8", cpu_threads=2))
start = time.perf_counter()
segments, _ = pipe.transcribe(decode_audio(path), beam_size=beam, batch_size=8)
text = " ".join(s.text.strip() for s in segments)
wall = time.perf_counter() - start
print(json.dumps({"wall_s": wall, "text": text, "segments": []}))
"""

LIBRARY = """
import json, sys, time
import raymer
split = {"channels": "split", "channel_names": ["agent", "customer"]}
rec = raymer.Recognizer.from_checkpoint(
    sys.argv[1], threads=2, segment=split if sys.argv[3] == "stereo" else None
)
start = time.perf_counter()
r = rec.predict(sys.argv[2])
wall = time.perf_counter() - start
segs = [{"start": s["start"], "end": s["end"], "label": s["label"], "speaker": s.get("speaker")}
        for s in r["segments"]]
print(json.dumps({"wall_s": wall, "text": r["transcript"], "segments": segs}))
"""


def _tree(root: int) -> dict[int, str]:
    """``root`` and every process below it: pid -> its command line."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
                ppid = int(stat.rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry.name))
            except (OSError, ValueError, IndexError):
                continue
    out, todo = {}, [root]
    while todo:
        pid = todo.pop()
        try:
            out[pid] = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        todo += children.get(pid, [])
    return out


def _private_kb(pid: int) -> int:
    """Resident memory of its own (anonymous and file pages): ``VmRSS`` less ``RssShmem``, the
    pages of Ray's shared object store a worker has mapped (the blocks it wrote or read,
    which belong to the store, bounded by its size, not to the process)."""
    fields = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("RssAnon", "RssFile"):
                fields[key] = int(value.split()[0])
    except OSError:
        pass
    return sum(fields.values())


def _sampled(proc: subprocess.Popen, role_of) -> dict[str, float]:
    """Peak private memory (MB) of ``proc`` and the processes below it, by role
    (``role_of(cmdline)``; None: not counted), sampled every 0.2 s until it exits."""
    peaks: dict[int, tuple[str, int]] = {}
    while proc.poll() is None:
        for pid, cmdline in _tree(proc.pid).items():
            role, kb = role_of(cmdline), _private_kb(pid)
            if role and kb:
                old = peaks.get(pid, ("other ray worker", 0))
                # a worker's title names what it runs now: keep the last named role
                named = role if role != "other ray worker" else old[0]
                peaks[pid] = (named, max(kb, old[1]))
        time.sleep(0.2)
    by_role: dict[str, float] = {}
    for role, kb in peaks.values():
        by_role[role] = max(by_role.get(role, 0.0), kb / 1024)
    return by_role


def _role(cmdline: str) -> str | None:
    """What a process of a ``raymer recognize`` run does (None: Ray's own services)."""
    for name, role in (("SpeechStage", "whisper actor"), ("EmotionStage", "model actor"),
                       ("segment_batch", "decode task"), ("raymer recognize", "driver")):  # fmt: skip
        if name in cmdline:
            return role
    if cmdline.startswith("ray::"):
        return "other ray worker"
    return None


def run_recognize(manifest: Path, checkpoint: str, output: Path, stereo: bool = False) -> dict:
    """The command, its processes' peak memory sampled every 0.2 s until it exits."""
    env = os.environ | {"RAY_USAGE_STATS_ENABLED": "0", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    cmd = [RAYMER, "recognize", str(manifest), "--checkpoint", checkpoint, "--output",
           str(output), "plots=false"]  # fmt: skip
    if stereo:
        cmd += ["segment.channels=split", "segment.channel_names=[agent,customer]"]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    peaks: dict[str, float] = {}
    watcher = threading.Thread(target=lambda: peaks.update(_sampled(proc, _role)), daemon=True)
    watcher.start()
    out, err = proc.communicate()
    wall = time.perf_counter() - start
    watcher.join()
    if proc.returncode != 0:
        raise RuntimeError(f"recognize failed: {err.decode()[-2000:]}")
    import pyarrow.parquet as pq

    rows = sorted(pq.read_table(output / "predictions").to_pylist(), key=lambda r: r["segment"])
    return {
        "wall_s": wall,
        "text": " ".join(r["transcript"] for r in rows if r["transcript"]),
        "segments": [
            {
                "start": r["start_s"],
                "end": r["end_s"],
                "label": r["label"],
                "speaker": r.get("speaker"),
            }
            for r in rows
        ],  # fmt: skip
        "rss_mb": peaks,
    }


def run_script(code: str, *args: str) -> dict:
    env = os.environ | {"OMP_NUM_THREADS": "2"}
    proc = subprocess.Popen([sys.executable, "-c", code, *args], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    peaks: dict[str, float] = {}
    watcher = threading.Thread(
        target=lambda: peaks.update(_sampled(proc, lambda c: "process" if " -c " in c else None)),
        daemon=True,
    )
    watcher.start()
    out, err = proc.communicate()
    watcher.join()
    if proc.returncode != 0:
        raise RuntimeError(err[-2000:])
    return json.loads(out.strip().splitlines()[-1]) | {"rss_mb": peaks}


def label_accuracy(script: list[dict], segments: list[dict], key: str = "label") -> float | None:
    """Each sentence's ``key`` (its label; ``speaker``: its party) against the segment
    overlapping it most (None: no segments)."""
    if not segments:
        return None
    right = 0
    for line in script:
        best = max(
            segments, key=lambda s: min(s["end"], line["end_s"]) - max(s["start"], line["start_s"])
        )
        right += best[key] == line[key]
    return right / len(script)


PARTIES = ("agent", "customer")


def stereo_call(folder: Path, wav: Path, script: list[dict]) -> Path:
    """``call.wav``: the recording as a two-party call, sentence k on channel k % 2 (the
    other channel silent then), written a minute at a time; each line of ``script`` gets its
    ``speaker``."""
    import numpy as np
    import soundfile

    for k, line in enumerate(script):
        line["speaker"] = PARTIES[k % 2]
    call = folder / "call.wav"
    if call.is_file():
        return call
    rate = soundfile.info(wav).samplerate
    spans = [
        (int(x["start_s"] * rate), int(x["end_s"] * rate), k % 2) for k, x in enumerate(script)
    ]
    with soundfile.SoundFile(call, "w", rate, 2) as out:
        for at, block in enumerate(soundfile.blocks(wav, blocksize=60 * rate, dtype="float32")):
            first = at * 60 * rate
            left = np.zeros_like(block)
            for a, b, side in spans:  # each sentence to its channel (pauses, silent, right)
                if side == 0 and b > first and a < first + len(block):
                    left[max(a - first, 0) : min(b - first, len(block))] = 1.0
            out.write(np.stack([block * left, block * (1.0 - left)], 1))
    return call


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--minutes", type=float, nargs="+", default=[10, 30, 60])
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--only", default="baseline,library,recognize")
    parser.add_argument("--keep", help="folder for the recordings (kept: a re-run reuses them)")
    parser.add_argument("--stereo", action="store_true", help="each recording as a 2-party call")
    args = parser.parse_args()
    from raymer.corpora.recording import read_script, synthesize_recording
    from raymer.trained import checkpoint
    from raymer.wer import word_errors

    spec = checkpoint.load_spec(args.checkpoint)
    ways = args.only.split(",")
    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs; {spec.extract.asr_model}, "
          f"beam {spec.extract.beam_size}; checkpoint {spec.checkpoint}")  # fmt: skip
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.keep or tmp)
        for minutes in args.minutes:
            folder = root / f"long-{minutes:g}min-seed{args.seed}"
            wav = synthesize_recording(folder, minutes, seed=args.seed)
            script = read_script(folder)
            reference = " ".join(line["text"] for line in script)
            mix = wav
            if args.stereo:
                wav = stereo_call(folder, wav, script)
            manifest = folder / "manifest.csv"
            with open(manifest, "w", newline="") as f:
                csv.writer(f).writerows([["path", "id"], [str(wav), "recording"]])
            found = {}
            if "baseline" in ways:
                found["baseline"] = run_script(BASELINE, str(mix), spec.extract.asr_model,
                                               str(spec.extract.beam_size))  # fmt: skip
            if "library" in ways:
                kind = "stereo" if args.stereo else "mono"
                found["library"] = run_script(LIBRARY, args.checkpoint, str(wav), kind)
            if "recognize" in ways:
                output = Path(tmp) / f"recognize-{minutes:g}"
                found["recognize"] = run_recognize(manifest, args.checkpoint, output, args.stereo)
            base = found.get("baseline", {}).get("wall_s")
            for way, r in found.items():
                errors, words = word_errors(reference, r["text"])
                rows.append({
                    "minutes": minutes, "way": way, "wall_s": r["wall_s"],
                    "rtf": minutes * 60 / r["wall_s"],
                    "vs_baseline": base / r["wall_s"] if base else None,
                    "wer": errors / max(1, words),
                    "label_accuracy": label_accuracy(script, r["segments"]),
                    "speakers": label_accuracy(script, r["segments"], "speaker")
                    if args.stereo and way != "baseline" else None,
                    "segments": len(r["segments"]), "sentences": len(script),
                    "rss_mb": r["rss_mb"],
                })  # fmt: skip
                _print(rows[-1])
    print(json.dumps(rows))


def _print(row: dict) -> None:
    acc = row["label_accuracy"]
    speed = f"x{row['vs_baseline']:.2f}" if row["vs_baseline"] else "-"
    rss = ", ".join(f"{k} {v:,.0f}" for k, v in sorted(row["rss_mb"].items()))
    print(
        f"{row['minutes']:>4g} min  {row['way']:<10} {row['wall_s']:7.1f} s  "
        f"{row['rtf']:5.1f}x real time  {speed:>6} baseline  WER {100 * row['wer']:.1f}%  "
        f"labels {'-' if acc is None else f'{100 * acc:.0f}%'} "
        + (f"speakers {100 * row['speakers']:.0f}% " if row.get("speakers") is not None else "")
        + f"({row['segments']} segments, {row['sentences']} sentences)  peak MB: {rss}",
        flush=True,
    )


if __name__ == "__main__":
    main()
