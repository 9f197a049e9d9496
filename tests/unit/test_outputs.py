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
