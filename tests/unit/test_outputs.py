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

from raymer.pipeline.outputs import (
    LEASE,
    Lease,
    OutputInUse,
    SettingsMismatch,
    check_settings,
    truncated_parquet,
)


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
