"""`raymer corpus prepare` on fabricated trees with each corpus's exact naming (tiny WAVs,
real-format label files): labels, speakers, texts, folds, problems."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile

from raymer.cli import main
from raymer.corpora import prepare as corpora


def _wav(path: Path, seconds: float = 0.5) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(path, np.zeros(int(16_000 * seconds), np.float32), 16_000)


def _rows(manifest: Path) -> list[dict]:
    return list(csv.DictReader(manifest.open()))


def _prepare(capsys, *argv) -> tuple[int, str, str]:
    code = main(["corpus", "prepare", *map(str, argv)])
    out = capsys.readouterr()
    return code, out.out, out.err


# -- IEMOCAP --------------------------------------------------------------------------------


@pytest.fixture
def iemocap_tree(tmp_path) -> Path:
    root = tmp_path / "IEMOCAP_full_release"
    utts = {  # session -> dialog -> [(utt, code, text)]
        1: {
            "Ses01F_impro01": [
                ("Ses01F_impro01_F000", "neu", "Excuse me."),
                ("Ses01F_impro01_M000", "exc", "Do you have your forms?"),
                ("Ses01F_impro01_F001", "xxx", "Yeah."),
            ],
            "Ses01M_script01_1": [
                ("Ses01M_script01_1_F000", "ang", "What is wrong with you?"),
                ("Ses01M_script01_1_M000", "fru", "Nothing."),
            ],
        },
        2: {
            "Ses02F_impro02": [
                ("Ses02F_impro02_F000", "hap", "I got the job!"),
                ("Ses02F_impro02_M000", "sad", "I will miss you."),
            ]
        },
    }
    for s, dialogs in utts.items():
        sess = root / f"Session{s}"
        for dialog, lines in dialogs.items():
            evaluation, transcript = (
                ["% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]", ""],
                [],
            )
            for k, (utt, code, text) in enumerate(lines):
                _wav(sess / "sentences" / "wav" / dialog / f"{utt}.wav")
                evaluation += [
                    f"[{k * 2 + 0.5:.4f} - {k * 2 + 1.5:.4f}]\t{utt}\t{code}\t[2.5000, 3.0000, 3.5000]",
                    "C-E2:\tNeutral state;\t()",
                    "A-E3:\tval 3; act 2; dom  3;\t()",
                    "",
                ]
                transcript.append(f"{utt} [{k * 2 + 0.5:08.4f}-{k * 2 + 1.5:08.4f}]: {text}")
            ev = sess / "dialog" / "EmoEvaluation"
            ev.mkdir(parents=True, exist_ok=True)
            (ev / f"{dialog}.txt").write_text("\n".join(evaluation) + "\n")
            (ev / "Categorical").mkdir(exist_ok=True)
            (ev / "Categorical" / f"{dialog}_e1_cat.txt").write_text(f"{lines[0][0]} :Neutral;\n")
            tr = sess / "dialog" / "transcriptions"
            tr.mkdir(parents=True, exist_ok=True)
            (tr / f"{dialog}.txt").write_text("\n".join(transcript) + "\n")
    # a wav without a label line, and a label line without a wav
    _wav(root / "Session2/sentences/wav/Ses02F_impro02/Ses02F_impro02_F009.wav")
    with (root / "Session2/dialog/EmoEvaluation/Ses02F_impro02.txt").open("a") as f:
        f.write("[9.0000 - 9.5000]\tSes02F_impro02_M009\tneu\t[2.0000, 2.0000, 2.0000]\n")
    return root


def test_iemocap_four_classes_speakers_texts_and_folds(iemocap_tree, tmp_path, capsys):
    out = tmp_path / "iemocap.csv"
    code, printed, _ = _prepare(capsys, "iemocap", iemocap_tree, "--output", out)
    assert code == 0
    rows = {r["id"]: r for r in _rows(out)}
    # excited merged into happy; fru and xxx outside the 4-class set
    assert {r: rows[r]["label"] for r in rows} == {
        "Ses01F_impro01_F000": "neutral",
        "Ses01F_impro01_M000": "happy",
        "Ses01M_script01_1_F000": "angry",
        "Ses02F_impro02_F000": "happy",
        "Ses02F_impro02_M000": "sad",
    }
    r = rows["Ses01F_impro01_M000"]
    assert r["raw_label"] == "exc" and r["speaker"] == "Ses01M" and r["session"] == "Session1"
    assert r["text"] == "Do you have your forms?" and r["kind"] == "improvised"
    # rated 1-5, rescaled to -1..1, the rating kept
    assert (float(r["valence"]), float(r["arousal"]), float(r["dominance"])) == (-0.25, 0.0, 0.25)
    assert (float(r["valence_raw"]), float(r["arousal_raw"]), float(r["dominance_raw"])) == (
        2.5, 3.0, 3.5,
    )  # fmt: skip
    assert rows["Ses01M_script01_1_F000"]["speaker"] == "Ses01F"  # the utterance's letter
    assert Path(r["path"]).is_file() and r["fold"] == "Session1"
    assert "file without a label line: 1" in printed and "Ses02F_impro02_F009" in printed
    assert "missing file: 1" in printed and "Ses02F_impro02_M009" in printed
    assert "per label: angry 1, happy 2, neutral 1, sad 1" in printed

    every = tmp_path / "all.csv"
    _prepare(capsys, "iemocap", iemocap_tree, "--output", every, "--labels", "all")
    labels = {r["id"]: r["label"] for r in _rows(every)}
    assert labels["Ses01M_script01_1_M000"] == "frustrated"
    assert labels["Ses01F_impro01_M000"] == "excited"
    scripted = tmp_path / "scripted.csv"
    _prepare(capsys, "iemocap", iemocap_tree, "--output", scripted, "--subset", "scripted")
    assert [r["id"] for r in _rows(scripted)] == ["Ses01M_script01_1_F000"]


def test_a_tree_that_is_not_the_corpus_is_refused(tmp_path, capsys):
    _wav(tmp_path / "x" / "a.wav")
    code, _, err = _prepare(capsys, "iemocap", tmp_path / "x", "--output", tmp_path / "m.csv")
    assert code == 2 and "does not look like IEMOCAP" in err and "Session1" in err
    for name, expected in (
        ("ravdess", "Actor_01"),
        ("savee", "AudioData/DC"),
        ("crema-d", "AudioWAV/1001_DFA_ANG_XX.wav"),
        ("tess", "OAF_angry/OAF_back_angry.wav"),
        ("goemotions", "train.tsv"),
    ):
        code, _, err = _prepare(capsys, name, tmp_path / "x", "--output", tmp_path / "m.csv")
        assert code == 2 and expected in err, (name, err)
    assert not (tmp_path / "m.csv").exists()


# -- MSP-Podcast ----------------------------------------------------------------------------


def test_msp_podcast_labels_dimensions_speakers_and_its_own_splits(tmp_path, capsys):
    root = tmp_path / "MSP-PODCAST"
    lines = [  # FileName, EmoClass, EmoAct, EmoVal, EmoDom, SpkrID, Gender, Split_Set
        ("MSP-PODCAST_0001_0008.wav", "A", "6.2", "2.0", "5.4", "127", "Male", "Train"),
        ("MSP-PODCAST_0001_0009.wav", "N", "4.0", "4.0", "4.0", "127", "Male", "Train"),
        ("MSP-PODCAST_0002_0033.wav", "H", "5.0", "7.0", "4.6", "Unknown", "Female", "Development"),
        ("MSP-PODCAST_0002_0034.wav", "S", "1.0", "2.2", "2.8", "Unknown", "Female", "Test1"),
        ("MSP-PODCAST_0003_0001.wav", "C", "3.0", "3.0", "3.0", "88", "Female", "Train"),
        ("MSP-PODCAST_0003_0002.wav", "Q", "3.0", "3.0", "3.0", "88", "Female", "Train"),
        ("MSP-PODCAST_0003_0003.wav", "N", "4.0", "4.0", "4.0", "88", "Female", "Test2"),
    ]  # fmt: skip
    (root / "Labels").mkdir(parents=True)
    header = "FileName,EmoClass,EmoAct,EmoVal,EmoDom,SpkrID,Gender,Split_Set"
    body = "\n".join(",".join(line) for line in lines)
    (root / "Labels" / "labels_consensus.csv").write_text(f"{header}\n{body}\n")
    for line in lines[:-1]:  # the last one is labelled and missing
        _wav(root / "Audios" / line[0])
    _wav(root / "Audios" / "MSP-PODCAST_0009_0001.wav")  # on disk, no label line
    (root / "Transcripts").mkdir()
    (root / "Transcripts" / "MSP-PODCAST_0001_0008.txt").write_text("get out of my office\n")

    out = tmp_path / "msp.csv"
    code, printed, _ = _prepare(capsys, "msp-podcast", root, "--output", out)
    assert code == 0
    rows = {r["id"]: r for r in _rows(out)}
    assert {i: r["label"] for i, r in rows.items()} == {
        "MSP-PODCAST_0001_0008": "angry",
        "MSP-PODCAST_0001_0009": "neutral",
        "MSP-PODCAST_0002_0033": "happy",
        "MSP-PODCAST_0002_0034": "sad",
    }  # contempt is outside the 4-class set; the unknown code and the missing file are problems
    angry = rows["MSP-PODCAST_0001_0008"]
    assert angry["text"] == "get out of my office" and angry["speaker"] == "msp127"
    assert float(angry["arousal"]) == pytest.approx(0.733333, abs=1e-5)  # 6.2 on 1-7
    assert (float(angry["valence"]), float(angry["arousal_raw"])) == (pytest.approx(-2 / 3), 6.2)
    assert float(rows["MSP-PODCAST_0001_0009"]["dominance"]) == 0.0  # the middle of 1-7
    assert float(rows["MSP-PODCAST_0002_0034"]["arousal"]) == -1.0
    # unknown speakers are never one speaker: each utterance stands alone
    unknown = {rows[i]["speaker"] for i in ("MSP-PODCAST_0002_0033", "MSP-PODCAST_0002_0034")}
    assert unknown == {"unknown-MSP-PODCAST_0002_0033", "unknown-MSP-PODCAST_0002_0034"}
    assert {r["fold"] for r in rows.values()} == {"Train", "Development", "Test1"}
    assert "unknown label: 1" in printed and "missing file: 1" in printed
    assert "file without a label line: 1" in printed and "MSP-PODCAST_0009_0001" in printed

    every = tmp_path / "all.csv"
    _prepare(capsys, "msp-podcast", root, "--output", every, "--labels", "all")
    assert {r["id"]: r["label"] for r in _rows(every)}["MSP-PODCAST_0003_0001"] == "contempt"
    code, _, err = _prepare(capsys, "msp-podcast", tmp_path / "x", "--output", tmp_path / "m.csv")
    assert code == 2 and "labels_consensus.csv" in err


# -- RAVDESS --------------------------------------------------------------------------------


def test_ravdess_speech_files_labels_statements_and_speaker_folds(tmp_path, capsys):
    root = tmp_path / "ravdess"
    for actor in range(1, 7):
        for emotion in ("01", "03", "05", "08"):
            _wav(
                root
                / f"Actor_{actor:02d}"
                / f"03-01-{emotion}-02-0{actor % 2 + 1}-01-{actor:02d}.wav"
            )
    _wav(root / "Actor_01" / "03-02-05-01-01-01-01.wav")  # song: not the speech corpus
    _wav(root / "Actor_01" / "03-01-09-01-01-01-01.wav")  # no emotion 09
    _wav(root / "Actor_01" / "notes.wav")
    out = tmp_path / "ravdess.csv"
    code, printed, _ = _prepare(capsys, "ravdess", root, "--output", out, "--folds", 3)
    assert code == 0
    rows = _rows(out)
    assert len(rows) == 24
    r = next(r for r in rows if r["id"] == "03-01-05-02-02-01-01")
    assert r["label"] == "angry" and r["speaker"] == "Actor_01" and r["gender"] == "male"
    assert r["text"] == "Dogs are sitting by the door." and r["intensity"] == "strong"
    assert {x["label"] for x in rows} == {"neutral", "happy", "angry", "surprised"}
    assert "unknown label: 1" in printed and "unexpected file name: 1" in printed
    _folds_are_speaker_independent(rows, 3)


def _folds_are_speaker_independent(rows: list[dict], k: int) -> None:
    folds: dict[str, set] = {}
    for r in rows:
        folds.setdefault(r["fold"], set()).add(r["speaker"])
    assert len(folds) == k
    for a in folds:
        for b in folds:
            if a != b:
                assert not folds[a] & folds[b], (a, b)


# -- SAVEE ----------------------------------------------------------------------------------


def test_savee_prefixes_both_layouts_and_duplicates(tmp_path, capsys):
    root = tmp_path / "savee"
    for speaker in ("DC", "JE", "JK", "KL"):
        for prefix, n in (("a", 1), ("sa", 2), ("su", 3), ("n", 11), ("h", 4), ("d", 5), ("f", 6)):
            _wav(root / "AudioData" / speaker / f"{prefix}{n:02d}.wav")
    _wav(root / "ALL" / "DC_sa02.wav")  # the same clip in the flat layout: a duplicate id
    _wav(root / "AudioData" / "DC" / "x01.wav")
    out = tmp_path / "savee.csv"
    code, printed, _ = _prepare(capsys, "savee", root, "--output", out, "--folds", 4)
    assert code == 0
    rows = {r["id"]: r for r in _rows(out)}
    assert len(rows) == 28
    assert rows["JK_sa02"]["label"] == "sad" and rows["JK_su03"]["label"] == "surprised"
    assert rows["KL_a01"]["label"] == "angry" and rows["KL_a01"]["speaker"] == "KL"
    assert "duplicate id: 1" in printed and "unknown label: 1" in printed
    _folds_are_speaker_independent(list(rows.values()), 4)


# -- CREMA-D --------------------------------------------------------------------------------


def test_crema_d_codes_sentences_and_levels(tmp_path, capsys):
    root = tmp_path / "CREMA-D"
    for actor in (1001, 1002, 1091):
        for sentence, emo, level in (
            ("DFA", "ANG", "XX"),
            ("IEO", "HAP", "HI"),
            ("TSI", "NEU", "XX"),
        ):
            _wav(root / "AudioWAV" / f"{actor}_{sentence}_{emo}_{level}.wav")
    _wav(root / "AudioWAV" / "1001_DFA_XYZ_XX.wav")
    _wav(root / "AudioWAV" / "1040_ITH_SAD_X.wav")  # a real file: the level spelled X
    out = tmp_path / "crema.csv"
    code, printed, _ = _prepare(capsys, "crema-d", root, "--output", out)
    rows = {r["id"]: r for r in _rows(out)}
    assert code == 0 and len(rows) == 10
    x = rows["1040_ITH_SAD_X"]
    assert (x["label"], x["speaker"], x["level"]) == ("sad", "1040", "unspecified")
    assert "kept, level X read as XX (unspecified): 1, e.g. 1040_ITH_SAD_X.wav" in printed
    r = rows["1091_IEO_HAP_HI"]
    assert r["label"] == "happy" and r["speaker"] == "1091" and r["level"] == "high"
    assert (
        r["text"] == "It's eleven o'clock."
        and rows["1002_DFA_ANG_XX"]["text"] == "Don't forget a jacket."
    )
    assert "unknown label: 1" in printed and "XYZ" in printed
    _folds_are_speaker_independent(list(rows.values()), 4)


# -- TESS -----------------------------------------------------------------------------------


def test_tess_folder_quirks_and_texts(tmp_path, capsys):
    root = tmp_path / "TESS Toronto emotional speech set data"
    for speaker in ("OAF", "YAF"):
        for folder, suffix in (
            ("angry", "angry"),
            ("Fear" if speaker == "OAF" else "fear", "fear"),
            ("pleasant_surprise" if speaker == "OAF" else "pleasant_surprised", "ps"),
            ("Sad", "sad"),
        ):
            for word in ("back", "bar"):
                _wav(root / f"{speaker}_{folder}" / f"{speaker}_{word}_{suffix}.wav")
    _wav(root / "OAF_Sad" / "OAF_back_angry.wav")  # in the wrong folder
    _wav(root / "OAF_neutral" / "OA_bite_neutral.wav")  # a real file, its speaker cut short
    _wav(root / "OAF_neutral" / "XY_bite_neutral.wav")  # a name nothing explains
    out = tmp_path / "tess.csv"
    code, printed, _ = _prepare(capsys, "tess", root, "--output", out)
    rows = {r["id"]: r for r in _rows(out)}
    assert code == 0 and len(rows) == 17
    bite = rows["OAF_bite_neutral"]
    assert (bite["speaker"], bite["label"], bite["text"]) == (
        "OAF",
        "neutral",
        "Say the word bite.",
    )
    assert "kept, speaker read from the folder: 1" in printed and "OA -> OAF" in printed
    assert "unexpected file name: 1" in printed and "XY_bite_neutral.wav" in printed
    r = rows["YAF_bar_surprised"]
    assert r["raw_label"] == "ps" and r["speaker"] == "YAF" and r["text"] == "Say the word bar."
    assert {x["label"] for x in rows.values()} == {"angry", "fear", "surprised", "sad", "neutral"}
    assert "file and folder disagree: 1" in printed and "duplicate id: 1" in printed
    _folds_are_speaker_independent(list(rows.values()), 2)


# -- GoEmotions -----------------------------------------------------------------------------


def test_goemotions_multi_label_and_ekman(tmp_path, capsys):
    root = tmp_path / "goemotions"
    root.mkdir()
    (root / "train.tsv").write_text(
        "I love this!\t18\teew5j0j\n"
        "Wow, that is awful and scary\t14,26\teezlygj\n"
        "So annoying, ugh\t3,2\ted7ypvh\n"
        "ok\t27\teeibobj\n"
        "broken line without ids\n"
    )
    (root / "dev.tsv").write_text("Thanks a lot\t15\tedq2ddd\nagain\t15\teew5j0j\n")
    (root / "test.tsv").write_text("what\t99\tefo0000\n")
    out = tmp_path / "go.jsonl"
    code, printed, _ = _prepare(capsys, "goemotions", root, "--output", out)
    assert code == 0
    rows = {r["id"]: r for r in map(json.loads, out.read_text().splitlines())}
    assert rows["eew5j0j"]["labels"] == ["joy"] and rows["eew5j0j"]["label"] == "joy"
    assert rows["eezlygj"]["labels"] == ["fear", "surprise"] and rows["eezlygj"]["label"] is None
    assert rows["ed7ypvh"]["labels"] == ["anger"]  # annoyance and anger: both Ekman anger
    assert rows["eeibobj"]["label"] == "neutral" and rows["edq2ddd"]["fold"] == "dev"
    assert rows["eew5j0j"]["path"] is None and rows["eew5j0j"]["text"] == "I love this!"
    assert "malformed line: 1" in printed and "unknown label: 1" in printed
    assert "duplicate id: 1" in printed
    fine = tmp_path / "fine.jsonl"
    _prepare(capsys, "goemotions", root, "--output", fine, "--labels", "all")
    rows = {r["id"]: r for r in map(json.loads, fine.read_text().splitlines())}
    assert rows["ed7ypvh"]["labels"] == ["annoyance", "anger"]
    # A .csv output is CSV: a list is joined by ";" (extract splits a `labels` cell back)
    as_csv = tmp_path / "go.csv"
    assert _prepare(capsys, "goemotions", root, "--output", as_csv)[0] == 0
    rows = {r["id"]: r for r in _rows(as_csv)}
    assert rows["eezlygj"]["labels"] == "fear;surprise" and rows["eezlygj"]["label"] == ""
    assert rows["eezlygj"]["text"] == "Wow, that is awful and scary"
    assert rows["eew5j0j"]["labels"] == "joy" and rows["eew5j0j"]["path"] == ""


def test_a_csv_labels_cell_is_read_back_as_a_list():
    import pyarrow as pa

    from raymer.pipeline.inputs import ExtractRows

    table = pa.table({"text": ["a", "b", "c"], "labels": ["fear;surprise", "joy", None]})
    out = ExtractRows("/tmp", True, {"labels": "labels"})(table)
    assert out.column("labels").to_pylist() == [["fear", "surprise"], ["joy"], None]


# -- generic manifest and label maps --------------------------------------------------------


def test_generic_manifest_with_a_label_map(tmp_path, capsys):
    for name in ("a.wav", "b.wav", "c.wav"):
        _wav(tmp_path / "clips" / name)
    (tmp_path / "m.csv").write_text(
        "path,id,label,speaker\n"
        "clips/a.wav,a,joy,s1\nclips/b.wav,b,rage,s2\nclips/c.wav,c,boredom,s3\n"
        "clips/missing.wav,d,joy,s1\n"
    )
    (tmp_path / "map.yaml").write_text("joy: happy\nrage: angry\nboredom: null\n")
    out = tmp_path / "out.csv"
    code, printed, _ = _prepare(
        capsys,
        "manifest",
        tmp_path / "m.csv",
        "--output",
        out,
        "--label-map",
        tmp_path / "map.yaml",
    )
    assert code == 0
    rows = {r["id"]: r for r in _rows(out)}
    assert {k: r["label"] for k, r in rows.items()} == {"a": "happy", "b": "angry"}
    assert rows["b"]["raw_label"] == "rage"
    assert "missing file: 1" in printed and "label outside the label map: 1" in printed


def test_bad_options_name_what_applies(tmp_path, capsys):
    code, _, err = _prepare(
        capsys, "ravdess", tmp_path, "--output", tmp_path / "m.csv", "--labels", "all"
    )
    assert code == 2 and "iemocap: 4class, all" in err


def test_the_prepared_manifest_is_read_by_extraction(tmp_path, capsys):
    from raymer.pipeline.inprocess import read_rows

    root = tmp_path / "CREMA-D"
    _wav(root / "AudioWAV" / "1001_DFA_ANG_XX.wav")
    _wav(root / "AudioWAV" / "1002_DFA_SAD_XX.wav")
    out = tmp_path / "elsewhere" / "crema.csv"
    assert _prepare(capsys, "crema-d", root, "--output", out)[0] == 0
    inputs = read_rows(str(out))
    assert not inputs.problems and len(inputs.rows) == 2
    assert {"raw_label", "fold", "sentence", "level"} <= set(inputs.extra_columns)
    assert all(Path(r["path"]).is_file() for r in inputs.rows)
    assert set(corpora.CORPORA) == {
        "iemocap",
        "msp-podcast",
        "ravdess",
        "savee",
        "crema-d",
        "tess",
        "goemotions",
        "manifest",
    }


def test_a_text_manifest_prepares_as_a_text_corpus(tmp_path, capsys):
    """`prepare manifest` on texts with no audio paths: no "missing file" for each row."""
    source = tmp_path / "texts.csv"
    source.write_text("id,text,label\nt1,What a lovely day,joy\nt2,Leave me alone,anger\n")
    out = tmp_path / "prepared.csv"
    code, printed, _ = _prepare(capsys, "manifest", source, "--output", out)
    assert code == 0 and "missing file" not in printed and "h of audio" not in printed
    assert "per label: anger 1, joy 1" in printed
    assert [(r["id"], r["label"], r["text"]) for r in _rows(out)] == [
        ("t1", "joy", "What a lovely day"),
        ("t2", "anger", "Leave me alone"),
    ]


def test_the_shipped_label_map_brings_ravdess_to_four_classes(tmp_path, capsys):
    root = tmp_path / "ravdess"
    for emotion in ("01", "02", "03", "04", "05", "06"):
        _wav(root / "Actor_01" / f"03-01-{emotion}-01-01-01-01.wav")
    label_map = Path(__file__).parents[2] / "configs" / "corpora" / "ravdess-4class.yaml"
    out = tmp_path / "r.csv"
    code, printed, _ = _prepare(capsys, "ravdess", root, "--output", out, "--label-map", label_map)
    assert code == 0
    assert sorted(r["label"] for r in _rows(out)) == ["angry", "happy", "neutral", "neutral", "sad"]
    assert "label outside the label map: 1" in printed  # fearful
