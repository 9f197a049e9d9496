"""A corpus shipped as shards with the audio inside (Parquet in the Hugging Face
``datasets`` layout and with a plain binary column, WebDataset tars) or as Lhotse manifests
(supervisions: spans of a long recording), local and on moto's S3: ``raymer extract`` and ``raymer
recognize`` give the clips the answers they get as files; a shard cut short, a row without
audio and a row of bytes that are not audio are error rows that say why, every good clip is
written once, and a re-run resumes; what is written opens in pandas, Polars, DuckDB and
`datasets`."""

from __future__ import annotations

import csv

import boto3
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import soundfile

from raymer import storage

AUDIO = pa.struct([("bytes", pa.binary()), ("path", pa.string())])


@pytest.fixture(scope="module")
def corpus(piper_corpus, tmp_path_factory) -> dict:
    """The piper corpus's 12 clips as a manifest of files and as shards: two in the
    ``datasets`` layout (4 rows a row group), the last two clips in a shard with a plain
    binary column; a broken shard (cut short), and a shard of a row with no bytes and a
    row of bytes that are not audio."""
    rows = list(csv.DictReader(piper_corpus.open()))  # (the fixture: its manifest)
    root = tmp_path_factory.mktemp("shards")
    shards = root / "shards"
    shards.mkdir()

    def data(row):
        return (piper_corpus.parent / row["path"]).read_bytes()

    from datasets import Audio, Dataset

    for k, part in enumerate((rows[:5], rows[5:10])):  # written by `datasets` itself
        audio = [{"bytes": data(r), "path": r["path"].rsplit("/", 1)[-1]} for r in part]
        dataset = Dataset.from_dict(
            {
                "audio": audio,
                "id": [r["id"] for r in part],
                "text": [r["text"] for r in part],
                "label": [r["label"] for r in part],
            }
        ).cast_column("audio", Audio(decode=False))
        dataset.to_parquet(str(shards / f"train-{k:05d}.parquet"), batch_size=4)
    last = rows[10:]
    plain = pa.table(
        {
            "id": [r["id"] for r in last],
            "flac": pa.array([data(r) for r in last], pa.binary()),  # a plain binary column
            "text": [r["text"] for r in last],
            "label": [r["label"] for r in last],
        }
    )
    pq.write_table(plain, shards / "train-00002.parquet")
    bad = pa.table(
        {
            "audio": pa.array([{"bytes": b"", "path": None}, {"bytes": b"not audio" * 50, "path": None}], AUDIO),
            "id": ["empty", "noise"],
            "text": ["", ""],
            "label": ["", ""],
        }
    )  # fmt: skip
    pq.write_table(bad, shards / "train-00003.parquet")
    cut = (shards / "train-00000.parquet").read_bytes()
    (shards / "train-00004.parquet").write_bytes(cut[: len(cut) // 2])  # a shard cut short
    return {
        "rows": rows,
        "root": root,
        "shards": shards,
        "manifest": piper_corpus,
        "tars": _tars(rows, data, root / "tars"),
        "lhotse": _lhotse(rows, piper_corpus.parent, root / "lhotse"),
    }


def _lhotse(rows: list[dict], base, folder):
    """Lhotse manifests (written by ``lhotse``): the first six clips one after the other in
    one recording (0.7 s apart), a supervision per clip over its span (its text, speaker
    and ``custom.emotion``); one supervision running past the recording's end and one of a
    recording the manifest does not have."""
    from lhotse import Recording, RecordingSet, SupervisionSegment, SupervisionSet

    folder.mkdir()
    gap = np.zeros(int(0.7 * 16_000), np.float32)
    pieces, spans, at = [], [], 0.5
    pieces.append(np.zeros(8000, np.float32))
    for r in rows[:6]:
        audio, rate = soundfile.read(base / r["path"], dtype="float32")
        assert rate == 16_000
        spans.append((r, at, len(audio) / rate))
        pieces += [audio, gap]
        at += len(audio) / rate + len(gap) / rate
    soundfile.write(folder / "long.wav", np.concatenate(pieces), 16_000, subtype="FLOAT")
    recording = Recording.from_file(str(folder / "long.wav"), recording_id="long")
    RecordingSet.from_recordings([recording]).to_file(folder / "demo_recordings_all.jsonl.gz")
    supervisions = [
        SupervisionSegment(
            id=r["id"], recording_id="long", start=start, duration=length, channel=0,
            text=r["text"], speaker=r["speaker"], custom={"emotion": r["label"]},
        )
        for r, start, length in spans
    ]  # fmt: skip
    supervisions += [
        SupervisionSegment(id="past", recording_id="long", start=at - 1.0, duration=5.0),
        SupervisionSegment(id="elsewhere", recording_id="gone", start=0.0, duration=1.0),
    ]
    SupervisionSet.from_segments(supervisions).to_file(folder / "demo_supervisions_all.jsonl.gz")
    return folder / "demo_supervisions_all.jsonl.gz"


def _tars(rows: list[dict], data, folder):
    """The same clips as WebDataset tars (written by ``webdataset``): two of the clips, and
    a tar with a sample that has no audio, then a sample cut short by the tar's end."""
    import tarfile

    import webdataset as wds

    folder.mkdir()
    for k, part in enumerate((rows[:7], rows[7:])):
        with wds.TarWriter(str(folder / f"train-{k:05d}.tar")) as sink:
            for r in part:
                meta = {"text": r["text"], "label": r["label"], "speaker": r["speaker"]}
                sink.write({"__key__": r["id"], "wav": data(r), "json": meta})
    odd = folder / "train-00002.tar"
    with wds.TarWriter(str(odd)) as sink:
        sink.write({"__key__": "silent", "json": {"text": "", "label": ""}})
        sink.write({"__key__": "kept", "wav": data(rows[0]), "json": {"label": rows[0]["label"]}})
        sink.write({"__key__": "lost", "wav": data(rows[1]), "json": {"label": "sad"}})
    with tarfile.open(odd) as tar:
        last = tar.getmembers()[-1].offset_data
    odd.write_bytes(odd.read_bytes()[: last + 1000])  # the last sample's audio cut short
    return folder


def _extract(input_uri: str, output: str):
    from raymer.config import ExtractConfig, load_config
    from raymer.pipeline.extract import extract

    cfg = load_config(
        ExtractConfig, "configs/extract/tiny.yaml", [], input=input_uri, output=output
    )
    return extract(cfg)


def _features(uri: str) -> dict[str, dict]:
    fs, path = storage.filesystem(uri)
    table = pq.read_table(path, filesystem=fs)
    return {r["id"]: r for r in table.to_pylist()}


@pytest.fixture(scope="module")
def as_files(ray_session, corpus, tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("files") / "features"
    assert _extract(str(corpus["manifest"]), str(out)).clips_ok == 12
    return _features(str(out / "features"))


def test_shards_are_extracted_as_their_files_are(corpus, as_files, tmp_path):
    out = tmp_path / "features"
    summary = _extract(str(corpus["shards"]), str(out))
    assert (summary.clips_ok, summary.clips_failed) == (12, 3)
    found = _features(str(out / "features"))
    assert sorted(found) == sorted(as_files)  # every good clip, once, by its id
    for rid, mine in found.items():
        theirs = as_files[rid]
        assert mine["transcript"] == theirs["transcript"], rid
        assert (
            mine["label"] == theirs["label"] and mine["reference_text"] == theirs["reference_text"]
        )
        assert np.allclose(mine["audio_embedding"], theirs["audio_embedding"], atol=1e-5)
        assert np.allclose(mine["text_embedding"], theirs["text_embedding"], atol=1e-5)
        shard, _, row = mine["path"].rpartition("#row=")
        assert shard.startswith(str(corpus["shards"])) and row.isdigit()
    errors = {r["id"]: r for r in pq.read_table(out / "errors" / "errors.parquet").to_pylist()}
    assert errors["empty"]["error"].endswith("the row holds no audio (its bytes are empty)")
    assert (
        errors["noise"]["stage"] == "decode" and "cannot use this audio" in errors["noise"]["error"]
    )
    broken = str(corpus["shards"] / "train-00004.parquet")
    assert errors[broken]["path"] == broken and errors[broken]["stage"] == "read"
    assert errors[broken]["error"].startswith(f"cannot read shard {broken}")
    assert summary.line().endswith("| from 5 Parquet shards")
    again = _extract(str(corpus["shards"] / "train-*.parquet"), str(out))  # a glob, resumed
    assert (again.clips_ok, again.skipped) == (0, 12)
    assert pq.read_table(out / "features").num_rows == 12
    import pandas
    import polars

    frame = pandas.read_parquet(out / "features")
    assert sorted(frame["id"]) == sorted(found)
    polar = polars.read_parquet(str(out / "features" / "*.parquet"))
    assert sorted(polar["id"].to_list()) == sorted(found)
    import datasets
    import duckdb

    files = str(out / "features" / "*.parquet")
    hub = datasets.load_dataset(
        "parquet", data_files=files, split="train", cache_dir=str(tmp_path / "hf")
    )
    assert sorted(hub["id"]) == sorted(found) and len(hub[0]["text_embedding"]) > 0
    ((count, words),) = duckdb.sql(
        f"select count(*), count(transcript) from read_parquet('{files}')"
    ).fetchall()
    assert count == words == 12


def test_webdataset_tars_are_extracted_as_their_files_are(corpus, as_files, tmp_path):
    out = tmp_path / "features"
    summary = _extract(str(corpus["tars"]), str(out))
    assert (summary.clips_ok, summary.clips_failed) == (13, 2)
    found = _features(str(out / "features"))
    assert sorted(found) == sorted([*as_files, "kept"])
    for rid, theirs in as_files.items():
        mine = found[rid]
        assert (mine["transcript"], mine["label"]) == (theirs["transcript"], theirs["label"])
        assert np.allclose(mine["audio_embedding"], theirs["audio_embedding"], atol=1e-5)
        assert f".tar#member={rid}.wav@" in mine["path"]
    assert found["kept"]["transcript"] == as_files[corpus["rows"][0]["id"]]["transcript"]
    errors = {r["id"]: r for r in pq.read_table(out / "errors" / "errors.parquet").to_pylist()}
    odd = str(corpus["tars"] / "train-00002.tar")
    assert errors["silent"]["error"] == f"{odd}: silent has no audio (silent.json)"
    assert errors[odd]["error"].startswith(f"cannot read shard {odd} after 2 samples")


def test_lhotse_supervisions_are_extracted_as_their_clips_are(corpus, as_files, tmp_path):
    """Each supervision decoded as its span of the long recording: the same samples as its
    clip's file, so the same transcript and features; its text, speaker and emotion as the
    manifest's text, speaker and label; a supervision past the end and one of a recording
    the manifest lacks are error rows that say so."""
    out = tmp_path / "features"
    summary = _extract(str(corpus["lhotse"]), str(out))
    assert (summary.clips_ok, summary.clips_failed) == (6, 2)
    found = _features(str(out / "features"))
    for r in corpus["rows"][:6]:
        mine, theirs = found[r["id"]], as_files[r["id"]]
        assert mine["transcript"] == theirs["transcript"], r["id"]
        assert (mine["label"], mine["speaker"]) == (r["label"], r["speaker"])
        assert mine["reference_text"] == r["text"] and mine["recording_id"] == "long"
        assert mine["duration_s"] == pytest.approx(theirs["duration_s"], abs=1e-3)
        # the same samples (tested in test_audio) in the same fitted window; batched with
        # other clips than its file was, CTranslate2's int8 kernels may move the frames in
        # their last digits (seen: max 0.023 on entries up to 6.9, cosine 0.99996)
        a, b = np.asarray(mine["audio_embedding"]), np.asarray(theirs["audio_embedding"])
        assert a @ b / (np.linalg.norm(a) * np.linalg.norm(b)) > 0.9995, r["id"]
        assert np.abs(a - b).max() <= 0.01 * np.abs(b).max(), r["id"]
    errors = {
        r["id"]: r["error"] for r in pq.read_table(out / "errors" / "errors.parquet").to_pylist()
    }
    assert "runs past the end of recording long" in errors["past"]
    assert errors["elsewhere"].startswith("no recording gone (a file or URL) in ")


def test_corpus_prepare_lists_packed_corpora_by_address(corpus, as_files, tmp_path):
    """``corpus prepare manifest`` over shards, tars and Lhotse manifests: a manifest whose
    rows are the clips' addresses (a Parquet row, a tar member, a supervision's span of its
    recording) with labels mapped and folds dealt; the rows their readers cannot read are
    its problems. Extract and inspect read such a manifest as they read the packed input."""
    import yaml

    from raymer.corpora.prepare import prepare
    from raymer.pipeline.inspect import inspect_corpus

    mapping = tmp_path / "map.yaml"
    labels = sorted({r["label"] for r in corpus["rows"]})
    mapping.write_text(yaml.safe_dump({lab: lab.upper() for lab in labels}))
    prepared, said = prepare(
        "manifest", str(corpus["shards"]), str(tmp_path / "shards.csv"), label_map=str(mapping)
    )
    broken = str(corpus["shards"] / "train-00004.parquet")
    assert "bad manifest row" in said and broken in said
    rows = {r["id"]: r for r in csv.DictReader((tmp_path / "shards.csv").open())}
    assert sorted(rows) == sorted(as_files)  # (empty and noise: no label, left out)
    assert "no label" in said
    assert all(
        r["path"].rpartition("#row=")[0].startswith(str(corpus["shards"])) for r in rows.values()
    )
    out = tmp_path / "features"
    summary = _extract(str(tmp_path / "shards.csv"), str(out))
    assert (summary.clips_ok, summary.clips_failed) == (12, 0)
    assert summary.line().endswith("| from a manifest of shard addresses")
    found = _features(str(out / "features"))
    for rid, theirs in as_files.items():
        assert found[rid]["transcript"] == theirs["transcript"]
        assert found[rid]["label"] == theirs["label"].upper()
        assert np.allclose(found[rid]["audio_embedding"], theirs["audio_embedding"], atol=1e-5)
    seconds = sum(r["duration_s"] for r in as_files.values())
    assert f"12 utterances, {seconds / 3600:.2f} h of audio" in said
    # tars: a member's address; the sample without audio and the tar's break are problems,
    # the 13 others surveyed from their bytes (by range) with nothing to refuse
    tars, said = prepare("manifest", str(corpus["tars"]), str(tmp_path / "tars.jsonl"))
    assert "silent has no audio" in said and "after 2 samples" in said
    assert "13 utterances" in said and "unreadable audio" not in said
    assert all("#member=" in r["path"] for r in tars.rows)
    assert tars.surveyed_s == pytest.approx(
        seconds + as_files[corpus["rows"][0]["id"]]["duration_s"], abs=0.15
    )  # (the 12, and `kept`: a copy of the first)
    # Lhotse: a supervision's recording, span and channel; a span past the end and a
    # recording the manifest lacks are problems; the hours are the spans'
    sups, said = prepare("manifest", str(corpus["lhotse"]), str(tmp_path / "lhotse.jsonl"))
    assert "runs past the end of recording long" in said and "no recording gone" in said
    spans = sum(as_files[r["id"]]["duration_s"] for r in corpus["rows"][:6])
    assert f"6 utterances, {spans / 3600:.2f} h of audio" in said
    assert {r["offset_s"] is not None and r["path"].endswith("long.wav") for r in sups.rows} == {
        True
    }
    survey = inspect_corpus(str(tmp_path / "lhotse.jsonl"))  # a manifest of spans, read as spans
    assert not survey.sharded and (survey.clips, survey.readable) == (6, 6)
    assert survey.hours * 3600 == pytest.approx(spans, abs=0.01)


def test_a_survey_of_shards_reads_each_row_s_header(corpus, as_files, tmp_path):
    from raymer.pipeline.inspect import inspect_corpus

    survey = inspect_corpus(str(corpus["shards"]), str(tmp_path / "survey"))
    assert survey.sharded and (survey.clips, survey.readable) == (15, 12)
    seconds = sum(r["duration_s"] for r in as_files.values())
    assert survey.hours * 3600 == pytest.approx(seconds, abs=0.12)
    assert survey.counts["container"] == {"wav": 12}
    flagged = {
        r["id"]: r["stage"] for r in pq.read_table(tmp_path / "survey" / "problems").to_pylist()
    }
    broken = str(corpus["shards"] / "train-00004.parquet")
    assert flagged == {"empty": "read", "noise": "decode", broken: "read"}


def test_shards_on_s3_are_read_as_local_ones(corpus, as_files, s3_endpoint):
    """Shards on moto's S3 (a folder URI): listed, read and fetched as local ones are."""
    s3 = boto3.client("s3", endpoint_url=s3_endpoint)
    s3.create_bucket(Bucket="shards")
    for k in range(3):
        name = f"train-{k:05d}.parquet"
        s3.upload_file(str(corpus["shards"] / name), "shards", f"corpus/{name}")
    from raymer.pipeline.inspect import inspect_corpus

    # every clip's bytes read from the shards on S3 (as extract's and recognize's fetch reads
    # them) and its header probed: the clips and their lengths as the files give them
    survey = inspect_corpus("s3://shards/corpus/", "s3://shards/survey")
    assert survey.sharded and (survey.clips, survey.readable) == (12, 12)
    seconds = sum(r["duration_s"] for r in as_files.values())
    assert survey.hours * 3600 == pytest.approx(seconds, abs=0.12)
    assert survey.input == "s3://shards/corpus/" and survey.problems == {}
    for k in range(2):  # WebDataset tars too: indexed in one streamed read, fetched by range
        name = f"train-{k:05d}.tar"
        s3.upload_file(str(corpus["tars"] / name), "shards", f"tars/{name}")
    tars = inspect_corpus("s3://shards/tars/")
    assert (tars.clips, tars.readable) == (12, 12)
    assert tars.hours * 3600 == pytest.approx(seconds, abs=0.12)


def test_recognize_answers_shards_as_it_answers_files(corpus, trained, tmp_path):
    import raymer
    from raymer.config.recognize import RecognizeConfig
    from raymer.pipeline.recognize import recognize

    # the files' answers from the library (one path: recognize answers a file as it does)
    library = raymer.Recognizer.from_checkpoint(trained.output, threads=1)
    paths = [corpus["manifest"].parent / r["path"] for r in corpus["rows"]]
    answers = {
        "files": {
            r["id"]: (a["transcript"], a["label"])
            for r, a in zip(corpus["rows"], library.predict(paths), strict=True)
        }
    }
    for name, source in (("shards", corpus["shards"]), ("lhotse", corpus["lhotse"])):
        out = tmp_path / name
        summary = recognize(
            RecognizeConfig(
                input=str(source),
                checkpoint=str(trained.output),
                output=str(out),
                plots=False,
                resources={"asr": {"actors": 1, "num_cpus": 0.5, "threads": 1}},
            )
        )
        rows = pq.read_table(out / "predictions").to_pylist()
        answers[name] = {r["id"]: (r["transcript"], r["label"]) for r in rows}
        answers[f"{name} failed"] = summary.failed
    assert answers["shards"] == answers["files"] and len(answers["files"]) == 12
    assert answers["shards failed"] == 3
    spans = {r["id"] for r in corpus["rows"][:6]}  # a supervision: its span heard alone
    assert answers["lhotse"] == {k: v for k, v in answers["files"].items() if k in spans}
    assert answers["lhotse failed"] == 2
    import datasets
    import duckdb

    for table in ("predictions", "recordings"):  # the tools people open tables with
        files = str(tmp_path / "shards" / table / "*.parquet")
        ((count,),) = duckdb.sql(
            f"select count(distinct id) from read_parquet('{files}')"
        ).fetchall()
        hub = datasets.load_dataset(
            "parquet", data_files=files, split="train", cache_dir=str(tmp_path / "hf")
        )
        assert count == len(set(hub["id"])) == 12, table
