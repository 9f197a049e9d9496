"""The sample corpus rendered (espeak-ng voices and the piper voice): the same files twice."""

import csv
import hashlib

import pytest

from raymer.corpora.synth import synthesize_corpus


def test_corpus_files_and_manifest_are_reproducible(tmp_path):
    def digest(root):
        return {
            p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*.wav"))
        }

    # 20 speakers: the 16 listed voices and 4 drawn ones (pitch, rate, formants of their own)
    m1 = synthesize_corpus(tmp_path / "a", clips=20, seed=3, speakers=20)
    m2 = synthesize_corpus(tmp_path / "b", clips=20, seed=3, speakers=20)
    assert m1.read_text() == m2.read_text()
    assert digest(tmp_path / "a") == digest(tmp_path / "b")
    rows = list(csv.DictReader(m1.open()))
    assert list(rows[0]) == [
        "path", "id", "label", "text", "speaker", "clip_type", "template",
        "intensity", "arousal", "valence",
    ]  # fmt: skip
    assert len(rows) == 20 and all((m1.parent / r["path"]).is_file() for r in rows)
    assert sum(r["speaker"].endswith(("-016", "-017", "-018", "-019")) for r in rows) == 4


def _rss_mb(root_pid: int, skip: frozenset[int] = frozenset()) -> dict[int, float]:
    """Resident memory (MB) of a process and each of its descendants, from /proc, but for
    the subtrees of ``skip`` (processes that were there before: the session's Ray, whose
    workers come and go beside the renderers)."""
    from pathlib import Path

    parents, rss = {}, {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            status = (entry / "status").read_text()
        except OSError:
            continue
        parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
        kb = [line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:")]
        rss[int(entry.name)] = int(kb[0]) / 1024 if kb else 0.0
    tree, grew = {root_pid}, True
    while grew:
        more = {pid for pid, ppid in parents.items() if ppid in tree - skip} - tree
        tree |= more
        grew = bool(more)
    return {pid: rss.get(pid, 0.0) for pid in tree}


@pytest.mark.drill
def test_the_corpus_renderer_s_memory_stays_bounded(ray_session, tmp_path, monkeypatch):
    """420 clips in 100 voices (the listed ones and drawn ones: their own pitch, rate and
    formants), the workers replaced after 105 clips each (the corpus's rule, in smaller
    tasks than the default 5 x 100: two rounds of pools): the renderer processes and this
    one's growth stay under 2.5 GB (one renderer held 5-11 GB at 800 clips when every pitch
    shift built a resampler filter sized by two rates with no common divisor: 18 GB at
    1,050 clips)."""
    import os
    import threading
    import time

    from raymer.corpora import synth

    monkeypatch.setattr(synth, "CHUNK_CLIPS", 35)
    monkeypatch.setattr(synth, "WORKER_CHUNKS", 3)

    peak, done = [0.0], threading.Event()
    before = _rss_mb(
        os.getpid()
    )  # the session's Ray (ray_session) runs under this process: not counted

    def watch():
        while not done.is_set():
            now = _rss_mb(os.getpid(), frozenset(before) - {os.getpid()})
            grown = max(0.0, now.get(os.getpid(), 0.0) - before[os.getpid()])
            renderers = sum(mb for pid, mb in now.items() if pid not in before)
            peak[0] = max(peak[0], grown + renderers)
            time.sleep(0.25)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        manifest = synthesize_corpus(tmp_path / "big", clips=420, seed=5, speakers=100)
    finally:
        done.set()
        watcher.join()
    rows = list(csv.DictReader(manifest.open()))
    assert len(rows) == 420 and len({r["speaker"] for r in rows}) == 100
    assert peak[0] < 2500, f"{peak[0]:.0f} MB"


def test_a_long_recording_and_its_script(tmp_path, capsys):
    """`raymer corpus recording`: sentences of the held-out voices with pauses, exactly the
    length asked, and a script that says where each sentence is (silence between them)."""
    import numpy as np

    from raymer.audio.decode import decode_audio
    from raymer.cli import main
    from raymer.corpora.recording import read_script

    assert main(["corpus", "recording", "--output", str(tmp_path), "--minutes", "0.75"]) == 0
    assert "0.75 min recording" in capsys.readouterr().out
    audio = decode_audio(str(tmp_path / "recording.wav"))
    script = read_script(tmp_path)
    assert len(audio) == 45 * 16_000
    assert 6 <= len(script) <= 12 and len({line["speaker"] for line in script}) > 1
    assert {line["label"] for line in script} <= {"angry", "happy", "neutral", "sad"}
    for line, after in zip(script, script[1:], strict=False):
        assert 0.8 <= after["start_s"] - line["end_s"] <= 3.01, (line, after)
        # (the script's times are rounded to the millisecond: 16 samples)
        gap = audio[int(line["end_s"] * 16_000) + 16 : int(after["start_s"] * 16_000) - 16]
        assert np.abs(gap).max() == 0.0  # the pauses are silence
    for line in script:
        spoken = audio[int(line["start_s"] * 16_000) : int(line["end_s"] * 16_000)]
        assert np.abs(spoken).max() > 0.05, line
    # the same arguments again: nothing rewritten
    stamp = (tmp_path / "recording.wav").stat().st_mtime_ns
    assert main(["corpus", "recording", "--output", str(tmp_path), "--minutes", "0.75"]) == 0
    assert (tmp_path / "recording.wav").stat().st_mtime_ns == stamp
