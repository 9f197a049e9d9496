import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from raymer.pipeline.inprocess import read_rows
from raymer.pipeline.manifest import ManifestError


def _write_all_formats(tmp_path, rows):
    csv = tmp_path / "m.csv"
    header = list(rows[0])
    csv.write_text(
        "\n".join([",".join(header)] + [",".join(str(r[k]) for k in header) for r in rows]) + "\n"
    )
    jsonl = tmp_path / "m.jsonl"
    jsonl.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    parquet = tmp_path / "m.parquet"
    pq.write_table(pa.Table.from_pylist(rows), parquet)
    return [csv, jsonl, parquet]


ROWS = [
    {
        "path": "audio/a.wav",
        "id": "001",
        "label": "happy",
        "speaker": "s1",
        "text": "hi there",
        "take": 1,
    },
    {"path": "/abs/b.wav", "id": "002", "label": "sad", "speaker": "s2", "text": "bye", "take": 2},
    {"path": "audio/c.wav", "id": "001", "label": "sad", "speaker": "s2", "text": "dup", "take": 3},
]


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_manifest_formats(tmp_path, fmt):
    path = {p.suffix[1:]: p for p in _write_all_formats(tmp_path, ROWS)}[fmt]
    inputs = read_rows(str(path))
    assert [r["id"] for r in inputs.rows] == ["001", "002"]  # ids stay strings, "001" not 1
    assert inputs.rows[0]["path"] == str(tmp_path / "audio" / "a.wav")  # relative to the manifest
    assert inputs.rows[1]["path"] == "/abs/b.wav"
    assert inputs.rows[0]["reference_text"] == "hi there"
    assert inputs.extra_columns == ["take"] and inputs.rows[1]["take"] == 2
    assert len(inputs.problems) == 1 and "duplicate id" in inputs.problems[0][2]


def test_manifest_without_path_column(tmp_path):
    bad = tmp_path / "m.csv"
    bad.write_text("file,label\na.wav,happy\n")
    with pytest.raises(ManifestError, match="no `path` column"):
        read_rows(str(bad))


def test_missing_input(tmp_path):
    with pytest.raises(ManifestError, match="does not exist"):
        read_rows(str(tmp_path / "nope.csv"))


def test_wrong_manifest_format(tmp_path):
    bad = tmp_path / "m.txt"
    bad.write_text("x")
    with pytest.raises(ManifestError, match="neither a directory nor a manifest"):
        read_rows(str(bad))


def test_directory_is_globbed_recursively(tmp_path, tone_wav):
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "x.flac").write_bytes(b"..")
    (tmp_path / "a" / "notes.txt").write_text("not audio")
    inputs = read_rows(str(tmp_path))
    assert sorted(r["id"] for r in inputs.rows) == ["a/b/x", "tone"]


def test_a_manifest_without_paths_is_a_text_corpus(tmp_path):
    rows = [
        {"path": None, "id": "t1", "label": "joy", "labels": ["joy"], "text": "What a day!"},
        {"path": None, "id": "t2", "label": None, "labels": ["anger", "joy"], "text": "Ugh, yay"},
        {"path": None, "id": "t3", "label": "joy", "labels": ["joy"], "text": ""},
        {"path": None, "id": "t1", "label": "joy", "labels": ["joy"], "text": "again"},
    ]
    manifest = tmp_path / "texts.jsonl"
    manifest.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    inputs = read_rows(str(manifest))
    assert inputs.text_only and [r["id"] for r in inputs.rows] == ["t1", "t2"]
    assert inputs.rows[1]["reference_text"] == "Ugh, yay"
    assert inputs.rows[1]["labels"] == ["anger", "joy"] and "labels" in inputs.extra_columns
    kept = inputs.rows[0]["reference_text"]
    assert [(p[0], p[2]) for p in inputs.problems] == [
        ("t3", "manifest row 3 has no text to embed"),
        ("t1", f"duplicate id: t1 is already the text {kept!r}"),
    ]
    # Asked for audio, the same manifest is refused row by row: no paths.
    audio = read_rows(str(manifest), "audio")
    assert not audio.text_only and not audio.rows and len(audio.problems) == 4


def test_text_inputs_need_a_text_column(tmp_path):
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,id\na.wav,1\n")
    with pytest.raises(ManifestError, match="no `text` column"):
        read_rows(str(manifest), "text")
    with pytest.raises(ManifestError, match="folder of audio"):
        read_rows(str(tmp_path), "text")


def test_one_id_rule_in_every_reader_and_the_same_on_every_run(tmp_path):
    """A manifest without ids: extract's reader, recognize's reader and `corpus prepare`'s
    (read_inputs) name each row the same way, run after run: its own id, else its path
    without the extension, else a digest of its content (never a random name, which a
    re-run could not resume)."""
    import pyarrow as pa

    from raymer.pipeline.inprocess import read_rows
    from raymer.pipeline.inputs import ExtractRows, ManifestRows
    from raymer.pipeline.manifest import row_id

    manifest = tmp_path / "m.csv"
    manifest.write_text("path,text,id\ncalls/a.wav,hello,\ncalls/b.flac,,given-b\n")
    table = pa.table(
        {"path": ["calls/a.wav", "calls/b.flac"], "text": ["hello", None], "id": [None, "given-b"]}
    )
    recognize_ids = ManifestRows(str(tmp_path), frozenset())(table).column("id").to_pylist()
    extract_ids = ExtractRows(str(tmp_path), False, {})(table).column("id").to_pylist()
    prepare_ids = [r["id"] for r in read_rows(str(manifest), "audio").rows]
    assert recognize_ids == extract_ids == prepare_ids == ["calls/a", "given-b"]
    # a row with neither an id nor a path (an error row, named the same way every run)
    bare = pa.table({"path": [None], "text": ["only words"], "id": [None]})
    first = ManifestRows(str(tmp_path), frozenset())(bare).column("id").to_pylist()
    again = ManifestRows(str(tmp_path), frozenset())(bare).column("id").to_pylist()
    assert first == again == [row_id(None, None, "only words")]
    assert first[0].startswith("row-")
    # texts: the same text gets the same id in extract's reader and in read_inputs
    texts = tmp_path / "t.csv"
    texts.write_text("text\nI am so happy\n")
    text_ids = [r["id"] for r in read_rows(str(texts), "text").rows]
    table = pa.table({"text": ["I am so happy"]})
    assert ExtractRows(str(tmp_path), True, {})(table).column("id").to_pylist() == text_ids


def test_one_duplicate_rule_in_every_reader(tmp_path):
    """Rows sharing an id: extract's and recognize's grouping (``one_per_id``, run by Ray
    Data) and ``corpus prepare``'s reader (``read_rows``) keep the same row, the first by
    path whatever the order, and say the same sentence of each other."""
    from raymer.pipeline.inprocess import read_rows
    from raymer.pipeline.inputs import one_per_id

    manifest = tmp_path / "m.csv"
    manifest.write_text("id,path\nx,zz/b.wav\nx,aa/a.wav\ny,c.wav\n")
    prepared = read_rows(str(manifest), "audio")
    kept = {r["id"]: r["path"] for r in prepared.rows}
    assert kept == {"x": str(tmp_path / "aa" / "a.wav"), "y": str(tmp_path / "c.wav")}
    group = pa.table({"id": ["x", "x"], "path": [kept["x"][:-8] + "zz/b.wav", kept["x"]]})
    errors = tmp_path / "errors"
    errors.mkdir()
    one = one_per_id(group, str(errors), "reference_text")
    assert one.column("path").to_pylist() == [kept["x"]]
    (written,) = pq.read_table(errors).to_pylist()
    (problem,) = prepared.problems
    assert problem == (written["id"], written["path"], written["error"])
    assert written["error"] == f"duplicate id: x is already {kept['x']}"
    assert written["stage"] == "manifest"
