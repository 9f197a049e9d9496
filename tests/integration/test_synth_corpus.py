"""The sample corpus rendered (espeak-ng voices and the piper voice): the same files twice."""

import csv
import hashlib

from raymer.corpora.synth import synthesize_corpus


def test_corpus_files_and_manifest_are_reproducible(tmp_path):
    def digest(root):
        return {
            p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*.wav"))
        }

    m1 = synthesize_corpus(tmp_path / "a", clips=6, seed=3, speakers=3)
    m2 = synthesize_corpus(tmp_path / "b", clips=6, seed=3, speakers=3)
    assert m1.read_text() == m2.read_text()
    assert digest(tmp_path / "a") == digest(tmp_path / "b")
    rows = list(csv.DictReader(m1.open()))
    assert list(rows[0]) == ["path", "id", "label", "text", "speaker", "clip_type", "template"]
    assert len(rows) == 6 and all((m1.parent / r["path"]).is_file() for r in rows)
