import numpy as np
import pytest

from raymer.trained.batches import Collate
from raymer.trained.checkpoint import ModelSpec
from raymer.training.data import InSpeakers, split_speakers


def collate(batch, labels):
    """The stored-features batch of a features-mode model with these labels."""
    spec = ModelSpec(
        audio_dim=2,
        text_dim=3,
        labels=labels,
        hidden_dim=8,
        num_layers=0,
        num_heads=1,
        dropout=0.0,
        modality="fusion",
    )
    return Collate(spec)(batch)


SPEAKERS = ["a", "a", "b", "c", "d", "e", "e"]


def test_splits_are_disjoint_and_respect_choices():
    train, val, test = split_speakers(SPEAKERS, ["a"], [], 0.25, seed=0)
    assert test == {"a"} and len(val) == 1 and not (train & val) and not (train & test)
    assert train | val | test == set(SPEAKERS)
    assert split_speakers(SPEAKERS, ["a"], [], 0.25, seed=0) == (train, val, test)  # seeded
    train, val, _ = split_speakers(SPEAKERS, ["a"], ["b", "c"], 0.25, seed=0)
    assert val == {"b", "c"} and train == {"d", "e"}


def test_split_refuses_unknown_or_empty():
    with pytest.raises(ValueError, match="not in the features"):
        split_speakers(SPEAKERS, ["zz"], [], 0.2, 0)
    with pytest.raises(ValueError, match="no speaker left"):
        split_speakers(["a", "b"], ["a"], ["b"], 0.2, 0)


def test_filter_drops_held_out_values_and_unlabelled():
    keep = InSpeakers({"a", "b"}, {"template": ["angry-03"]})
    assert keep({"label": "sad", "speaker": "a", "template": "sad-01"})
    assert not keep({"label": "sad", "speaker": "a", "template": "angry-03"})
    assert not keep({"label": "sad", "speaker": "c", "template": "sad-01"})
    assert not keep({"label": None, "speaker": "a", "template": "sad-01"})


def test_the_vectorised_filter_keeps_what_the_row_filter_keeps():
    import pyarrow as pa

    rows = [
        {"label": lab, "speaker": spk, "template": tpl}
        for lab in ("sad", "", None)
        for spk in ("a", "c", "", None)
        for tpl in ("sad-01", "angry-03", None)
    ]
    table = pa.Table.from_pylist(rows)
    for keep in (
        InSpeakers({"a", "unknown"}, {"template": ["angry-03"]}),
        InSpeakers({"c"}),
        InSpeakers({"a"}, split_by="template", target="label"),
    ):
        assert keep.table(table).to_pylist() == [r for r in rows if keep(r)]
    lists = pa.table({"labels": [["joy"], [], None], "speaker": ["a", "a", "a"]})
    multi = InSpeakers({"a"}, target="labels")
    assert multi.table(lists).column("labels").to_pylist() == [["joy"]]


def test_collate_pads_and_masks():
    frames = np.empty(2, dtype=object)
    frames[:] = [[[1.0, 2.0]] * 3, [[3.0, 4.0]]]
    tokens = np.empty(2, dtype=object)
    tokens[:] = [[[0.5] * 3] * 2, []]
    batch = {
        "audio_frames": frames,
        "text_tokens": tokens,
        "label": np.array(["sad", "angry"], dtype=object),
        "id": np.array(["x", "y"], dtype=object),
    }
    out = collate(batch, ["angry", "sad"])
    assert out["audio"].shape == (2, 3, 2) and out["audio_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert out["text"].shape == (2, 2, 3) and out["text_mask"][1].sum() == 0
    assert out["label"].tolist() == [1, 0] and out["id"] == ["x", "y"]
    assert float(out["audio"][1, 1:].abs().sum()) == 0.0


def test_modality_dropout_empties_one_mask_per_dropped_clip():
    import torch

    from raymer.training.batching import drop_modality as _drop_modality

    n = 4000
    batch = {
        "audio_mask": torch.ones(n, 5, dtype=torch.bool),
        "text_mask": torch.ones(n, 3, dtype=torch.bool),
        "id": [str(i) for i in range(n)],  # (a model of dimensions alone has no label)
    }
    out = _drop_modality(batch, 0.4, torch.Generator().manual_seed(0))
    no_audio = ~out["audio_mask"].any(1)
    no_text = ~out["text_mask"].any(1)
    assert not (no_audio & no_text).any()  # never both
    assert abs(no_audio.float().mean() - 0.2) < 0.03 and abs(no_text.float().mean() - 0.2) < 0.03
    assert batch["audio_mask"].all()  # the input batch is left as it was
    again = _drop_modality(batch, 0.4, torch.Generator().manual_seed(0))
    assert torch.equal(again["audio_mask"], out["audio_mask"])


def test_targets_single_and_multi_label():
    from raymer.trained.targets import has_target, targets

    labels = ["anger", "joy", "sadness"]
    batch = {
        "label": np.array(["joy", "anger"], dtype=object),
        "labels": np.array([np.array(["anger", "sadness"]), ["joy"]], dtype=object),
    }
    assert targets(batch, labels).tolist() == [1, 0]
    assert targets(batch, labels, multi_label=True).tolist() == [[1, 0, 1], [0, 1, 0]]
    assert [has_target(v) for v in (None, "", "joy", [], np.array([]), ["joy"])] == [
        False,
        False,
        True,
        False,
        False,
        True,
    ]


def test_collate_of_a_text_corpus_has_empty_audio():
    """Text-only features have no audio frames (null, or NaN in a numpy batch)."""
    batch = {
        "id": np.array(["a", "b"], dtype=object),
        "label": np.array(["joy", "anger"], dtype=object),
        "audio_frames": np.array([np.nan, np.nan], dtype=np.float32),
        "text_tokens": np.array([np.ones((3, 4)), np.ones((2, 4))], dtype=object),
    }
    out = collate(batch, ["anger", "joy"])
    assert out["audio_mask"].sum() == 0 and out["audio"].shape[0] == 2
    assert out["text_mask"].sum(1).tolist() == [3, 2]


def test_augmented_copies_are_read_by_training_only(tmp_path):
    """A copy (``augment`` set) has its clip's id and speaker: the training filter keeps it
    with ``copies``, every other filter and the index of clips leave it out."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from raymer.training.data import read_index

    rows = [
        {"id": "x", "label": "sad", "speaker": "a", "augment": None},
        {"id": "x", "label": "sad", "speaker": "a", "augment": "noise 10.0 dB SNR"},
        {"id": "y", "label": "happy", "speaker": "b", "augment": None},
        {"id": "y", "label": "happy", "speaker": "b", "augment": "gain -3.0 dB"},
    ]
    table = pa.Table.from_pylist(rows)
    train, other = InSpeakers({"a", "b"}, copies=True), InSpeakers({"a", "b"})
    assert train.table(table).num_rows == 4 and [r for r in rows if train(r)] == rows
    assert other.table(table).column("augment").to_pylist() == [None, None]
    assert [r["augment"] for r in rows if other(r)] == [None, None]
    features = table.append_column("audio_embedding", pa.array([[0.1, 0.2]] * 4))
    features = features.append_column("text_embedding", pa.array([[0.3]] * 4))
    (tmp_path / "features").mkdir()
    pq.write_table(features, tmp_path / "features" / "part.parquet")
    index = read_index(str(tmp_path))
    assert index.ids == ["x", "y"] and index.labels == ["sad", "happy"]


def test_the_model_reads_its_own_frame_columns():
    """Stored frames may carry prosody (extra columns) a model trained without it does not
    read: rows and Arrow tables alike give it its first ``audio_dim`` columns."""
    import pyarrow as pa

    wide = [np.arange(8, dtype=np.float32).reshape(2, 4), np.ones((1, 4), np.float32)]
    tokens = [np.ones((2, 3), np.float32)] * 2
    batch = {"id": np.array(["a", "b"]), "audio_frames": np.array(wide + [None], dtype=object)[:2]}
    batch["text_tokens"] = np.array(tokens + [None], dtype=object)[:2]
    out = collate(batch, ["sad"])
    assert out["audio"].shape == (2, 2, 2)
    assert out["audio"][0].tolist() == [[0.0, 1.0], [4.0, 5.0]]
    table = pa.table(
        {
            "id": ["a", "b"],
            "audio_frames": [w.tolist() for w in wide],
            "text_tokens": [t.tolist() for t in tokens],
        }
    )
    spec = ModelSpec(
        audio_dim=2,
        text_dim=3,
        labels=["sad"],
        hidden_dim=8,
        num_layers=0,
        num_heads=1,
        dropout=0.0,
        modality="fusion",
    )
    assert Collate(spec).from_table(table)["audio"].tolist() == out["audio"].tolist()
