"""The output folder's rules without Ray: a lease per run, settings that must match, and
only a provably truncated file is removed."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from raymer.pipeline.lease import LEASE, Lease, OutputInUse
from raymer.pipeline.outputs import SettingsMismatch, check_settings, truncated_parquet


def test_one_run_at_a_time_and_a_dead_runs_lease_is_taken_over(tmp_path):
    with Lease(str(tmp_path), heartbeat_s=0.1) as first:
        held = json.loads((tmp_path / LEASE).read_text())
        assert held["run_id"] == first.record["run_id"]
        with pytest.raises(OutputInUse, match="another run is writing .* pid"):
            Lease(str(tmp_path)).acquire()
        time.sleep(0.35)  # the heartbeat renews it
        assert json.loads((tmp_path / LEASE).read_text())["heartbeat"] > held["heartbeat"]
    assert not (tmp_path / LEASE).exists()  # released
    # a run killed without releasing: its lease goes stale, and the next run takes it over
    (tmp_path / LEASE).write_text(json.dumps({"run_id": "dead", "heartbeat": time.time() - 600}))
    with Lease(str(tmp_path), stale_s=60) as taker:
        assert json.loads((tmp_path / LEASE).read_text())["run_id"] == taker.record["run_id"]
    # a fresh lease of a process of this host that is gone (a killed driver): taken at once
    gone = subprocess.Popen(["true"])
    gone.wait()
    held = {"run_id": "killed", "heartbeat": time.time(), "host": socket.gethostname()}
    (tmp_path / LEASE).write_text(json.dumps(held | {"pid": gone.pid}))
    with Lease(str(tmp_path)):
        pass
    (tmp_path / LEASE).write_text(json.dumps(held | {"pid": os.getpid(), "run_id": "alive"}))
    with pytest.raises(OutputInUse):
        Lease(str(tmp_path)).acquire()


def test_rows_made_with_other_settings_are_never_mixed(tmp_path):
    (tmp_path / "config.yaml").write_text("asr_model: whisper-base\nbeam_size: 1\nbatch_size: 8\n")
    keys = ("asr_model", "beam_size")
    same = {"asr_model": "whisper-base", "beam_size": 1, "batch_size": 32}
    assert check_settings(str(tmp_path), same, keys, written=True, redo=False) is False
    other = same | {"beam_size": 5}
    with pytest.raises(SettingsMismatch, match="beam_size: 1 then, 5 now.*--redo"):
        check_settings(str(tmp_path), other, keys, written=True, redo=False)
    assert check_settings(str(tmp_path), other, keys, written=True, redo=True) is True
    assert check_settings(str(tmp_path), other, keys, written=False, redo=False) is False


def test_only_a_file_without_its_footer_counts_as_truncated(tmp_path):
    whole = tmp_path / "whole.parquet"
    pq.write_table(pa.table({"id": ["a", "b"]}), whole)
    assert truncated_parquet(str(whole)) is False
    cut = tmp_path / "cut.parquet"
    cut.write_bytes(whole.read_bytes()[:-30])
    assert truncated_parquet(str(cut)) is True
    tiny = tmp_path / "tiny.parquet"
    tiny.write_bytes(b"PAR1")
    assert truncated_parquet(str(tiny)) is True
    with pytest.raises(OSError):  # cannot be read: an error, never "truncated"
        truncated_parquet(str(tmp_path / "gone.parquet"))
    from raymer.pipeline.outputs import drop_truncated

    drop_truncated(str(tmp_path))  # what extract and recognize do before they resume
    assert sorted(p.name for p in tmp_path.iterdir()) == ["whole.parquet"]


def test_an_output_is_claimed_when_new_and_resumed_only_by_its_own_command(tmp_path):
    from raymer.pipeline.outputs import OWNER, OutputNotOwned, claim

    out = tmp_path / "new" / "run"
    claim(str(out), "extract", ("features", "errors"))
    assert json.loads((out / OWNER).read_text())["command"] == "extract"
    (out / "features").mkdir()
    (out / "config.yaml").write_text("input: x\n")
    claim(str(out), "extract", ("features", "errors"))  # its own output: resumed
    with pytest.raises(OutputNotOwned, match="is a `raymer extract` output, not a `raymer rec"):
        claim(str(out), "recognize", ("predictions", "errors", "features"))
    legacy = tmp_path / "legacy"  # written before the marker: raymer's names only
    (legacy / "features").mkdir(parents=True)
    (legacy / "_SUCCESS.json").write_text("{}")
    claim(str(legacy), "extract", ("features", "errors"))
    assert (legacy / OWNER).is_file()


def test_a_folder_holding_the_users_files_is_refused_and_left_as_it_was(tmp_path):
    """`raymer extract --input data/manifest.csv --output data` with the audio in
    data/inputs/ (once, a successful run deleted data/inputs/), and the same with the
    manifest elsewhere: refused before anything is written, data/ untouched."""
    from raymer.config import ExtractConfig, load_config
    from raymer.pipeline.extract import extract
    from raymer.pipeline.outputs import OutputNotOwned

    data = tmp_path / "data"
    (data / "inputs").mkdir(parents=True)
    (data / "inputs" / "a.wav").write_bytes(b"RIFF")
    (data / "manifest.csv").write_text("path,id\ninputs/a.wav,a\n")
    (tmp_path / "elsewhere.csv").write_text(f"path,id\n{data / 'inputs' / 'a.wav'},a\n")
    before = sorted(p.relative_to(data) for p in data.rglob("*"))
    for manifest, why in (
        (data / "manifest.csv", "is inside the output"),
        (tmp_path / "elsewhere.csv", r"holds what raymer did not write \(inputs, manifest.csv\)"),
    ):
        cfg = load_config(ExtractConfig, None, [], input=str(manifest), output=str(data))
        with pytest.raises(OutputNotOwned, match=why):
            extract(cfg)
        assert sorted(p.relative_to(data) for p in data.rglob("*")) == before


def test_an_output_inside_its_input_folder_or_around_its_input_is_refused(tmp_path):
    from raymer.pipeline.outputs import OutputNotOwned, claim

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for output in (corpus, corpus / "out"):
        with pytest.raises(OutputNotOwned, match="is inside the input folder"):
            claim(str(output), "recognize", (), str(corpus))
    manifest = tmp_path / "runs" / "manifest.csv"
    manifest.parent.mkdir()
    manifest.write_text("path\n")
    with pytest.raises(OutputNotOwned, match="is inside the output"):
        claim(str(tmp_path / "runs"), "extract", (), str(manifest))
    assert not any((tmp_path / "runs").glob("_raymer*")) and not (corpus / "out").exists()
    claim(str(tmp_path / "apart"), "recognize", (), str(corpus))  # beside it: fine


WRITER = """
import sys
from raymer import storage
target = sys.argv[1]
n = 0
while True:
    n += 1
    storage.write_bytes(target, bytes([65 + n % 26]) * (4 << 20))
    print(n, flush=True)
"""


def test_a_write_killed_midway_leaves_a_whole_file_and_the_next_run_resumes(tmp_path):
    """A real SIGKILL while a 4 MB file is rewritten in a loop: the file is always one whole
    version (never a mix or a cut), and the leftover temporary file does not stop the next
    run from claiming its output (it is removed as raymer's own)."""
    import signal
    import sys

    from raymer.pipeline.outputs import OWNER, claim

    claim(str(tmp_path), "extract", ("features", "errors"))
    target = tmp_path / "summary.json"
    for delay in (0.3, 0.45, 0.6):
        writer = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(target)], stdout=subprocess.PIPE, text=True
        )
        writer.stdout.readline()  # one version written whole
        time.sleep(delay)
        writer.send_signal(signal.SIGKILL)
        writer.wait()
        data = target.read_bytes()
        assert len(data) == 4 << 20 and data == data[:1] * len(data)
    (tmp_path / ".summary.json.abc123.tmp").write_bytes(b"cut")  # as a kill leaves it
    claim(str(tmp_path), "extract", ("features", "errors"))  # resumed, not refused
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([OWNER, "summary.json"])
    # a user's hidden file that only looks alike is not raymer's: refused, kept
    (tmp_path / ".notes.txt.tmp").write_text("mine")
    from raymer.pipeline.outputs import OutputNotOwned

    with pytest.raises(OutputNotOwned, match=r"\.notes\.txt\.tmp"):
        claim(str(tmp_path), "extract", ("features", "errors"))
    assert (tmp_path / ".notes.txt.tmp").read_text() == "mine"


def test_the_lease_is_created_by_one_of_two_racing_runs(tmp_path):
    import threading

    from raymer import storage

    wins, losses = [], []
    barrier = threading.Barrier(8)

    def race(i: int) -> None:
        barrier.wait()
        try:
            storage.create_exclusive(str(tmp_path / LEASE), f"{i}".encode())
            wins.append(i)
        except FileExistsError:
            losses.append(i)

    threads = [threading.Thread(target=race, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(wins) == 1 and len(losses) == 7
    assert (tmp_path / LEASE).read_text() == str(wins[0])
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_a_run_that_cannot_renew_its_lease_stops_writing(tmp_path):
    """A heartbeat that keeps failing past the stale time (here: the lease's name taken by a
    folder, so neither a read nor a rename works) stops the run with LeaseLost instead of
    letting it write beside the next holder; so does a lease another run took over. Even in
    a process whose own SIGINT handler swallows Ctrl-C: the lease puts it back afterwards."""
    import signal

    from raymer.pipeline.lease import LeaseLost

    def swallow(signum, frame):
        swallowed.append(signum)

    swallowed: list[int] = []
    before = signal.signal(signal.SIGINT, swallow)
    try:
        lease = Lease(str(tmp_path), stale_s=0.6, heartbeat_s=0.1)
        with pytest.raises(LeaseLost, match="could not renew the lease"), lease:
            signal.raise_signal(signal.SIGINT)  # a Ctrl-C while the lease holds: the process's
            assert swallowed == [signal.SIGINT]
            (tmp_path / LEASE).unlink()
            (tmp_path / LEASE).mkdir()
            time.sleep(3)  # interrupted long before
            pytest.fail("the run went on writing")
        assert signal.getsignal(signal.SIGINT) is swallow
    finally:
        signal.signal(signal.SIGINT, before)
    assert lease.lost
    (tmp_path / LEASE).rmdir()
    lease = Lease(str(tmp_path), heartbeat_s=0.1)
    with pytest.raises(LeaseLost, match="took over the lease"), lease:
        record = {"run_id": "other", "host": "elsewhere", "pid": 1, "heartbeat": time.time()}
        (tmp_path / LEASE).write_text(json.dumps(record))
        time.sleep(3)
        pytest.fail("the run went on writing")
    assert json.loads((tmp_path / LEASE).read_text())["run_id"] == "other"  # not deleted


def test_settings_key_on_the_checkpoints_content_not_its_path(tmp_path):
    import shutil
    from pathlib import Path

    from raymer.pipeline.outputs import save_settings
    from raymer.trained import checkpoint

    stored = Path(__file__).resolve().parents[1] / "data" / "checkpoint-0.1.0"
    ckpt = tmp_path / "ckpt"
    shutil.copytree(stored, ckpt)
    before = checkpoint.digest(str(ckpt))
    moved = tmp_path / "moved"
    shutil.copytree(ckpt, moved)
    assert checkpoint.digest(str(moved)) == before  # the same model elsewhere
    weights = ckpt / checkpoint.MODEL_FILE  # a checkpoint from before safetensors
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1  # retrained in place
    weights.write_bytes(bytes(data))
    after = checkpoint.digest(str(ckpt))
    assert after != before
    out = tmp_path / "out"
    save_settings(str(out), {"model_sha256": before, "vad_threshold": 0.5}, "vad_threshold: 0.5\n")
    keys = ("model_sha256", "vad_threshold")
    same = {"model_sha256": before, "vad_threshold": 0.5}
    assert check_settings(str(out), same, keys, written=True, redo=False) is False
    with pytest.raises(SettingsMismatch, match="model_sha256"):
        check_settings(str(out), same | {"model_sha256": after}, keys, written=True, redo=False)
