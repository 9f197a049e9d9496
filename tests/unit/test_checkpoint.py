"""The checkpoint contract (raymer.trained.checkpoint) and the batches made for it (raymer.trained.batches)."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from raymer.config import ExtractConfig, ExtractSettings
from raymer.itemwise import ItemError, run_batch
from raymer.trained import checkpoint
from raymer.trained.batches import Collate, scores_of
from raymer.trained.checkpoint import ModelSpec

OLD = Path(__file__).resolve().parents[1] / "data" / "checkpoint-0.1.0"


def _inputs(spec: ModelSpec, expected: dict) -> tuple[list, list]:
    rng = np.random.default_rng(expected["seed"])
    frames = [
        rng.standard_normal((t, spec.audio_dim)).astype(np.float32) for t in expected["frames"]
    ]
    tokens = [
        rng.standard_normal((t, spec.text_dim)).astype(np.float32) for t in expected["tokens"]
    ]
    return frames, tokens


def test_a_checkpoint_written_by_raymer_0_1_0_train_still_loads_and_scores_the_same():
    """tests/data/checkpoint-0.1.0 was written by `raymer train` before this contract existed
    (its expected.json says how); its scores on fixed inputs were computed by that code."""
    expected = json.loads((OLD / "expected.json").read_text())
    model, spec = checkpoint.load_model(str(OLD))
    assert spec.checkpoint == str(OLD) and spec.mode == "features" and not spec.finetune
    assert spec.extract.asr_model == "whisper-tiny.en" and spec.labels[0] == "angry"
    frames, tokens = _inputs(spec, expected)
    collate = Collate(spec)
    scores = scores_of(model, collate, collate.live(frames=frames, tokens=tokens))
    assert np.allclose(scores.numpy(), expected["scores"], atol=1e-6)


def test_stored_rows_and_live_inputs_make_the_same_batch():
    spec = checkpoint.load_spec(str(OLD))
    frames, tokens = _inputs(spec, json.loads((OLD / "expected.json").read_text()))
    stored = {"id": np.array(["a", "b"], dtype=object), "label": np.array(["sad", "angry"])}
    for name, values in (("audio_frames", frames), ("text_tokens", tokens)):
        column = np.empty(2, dtype=object)
        column[0], column[1] = values[0].tolist(), values[1].tolist()
        stored[name] = column
    collate = Collate(spec)
    live, rows = collate.live(frames=frames, tokens=tokens), collate(stored)
    for key in ("audio", "audio_mask", "text", "text_mask"):
        assert torch.equal(live[key], rows[key]), key
    assert live["label"] is None and rows["label"].tolist() == [3, 0]


def test_resolve_finds_the_checkpoint_of_a_train_or_compare_output(tmp_path):
    run = tmp_path / "compare" / "fusion"
    best = run / "fusion" / "checkpoint_1"
    shutil.copytree(OLD, best)
    (run / checkpoint.TRAIN_SUMMARY_FILE).write_text(json.dumps({"best_checkpoint": str(best)}))
    (tmp_path / "compare" / checkpoint.COMPARISON_FILE).write_text("{}")
    assert checkpoint.resolve(str(best)) == str(best)
    assert checkpoint.resolve(str(run)) == str(best)
    assert checkpoint.resolve(str(tmp_path / "compare")) == str(best)
    main, text = checkpoint.models_of(str(tmp_path / "compare"))
    assert main.endswith("fusion") and text.endswith("text")
    assert checkpoint.models_of(str(run)) == (str(run), None)
    with pytest.raises(FileNotFoundError, match="neither a checkpoint"):
        checkpoint.resolve(str(tmp_path))


def test_save_writes_what_load_reads(tmp_path):
    spec = checkpoint.load_spec(str(OLD))
    state = checkpoint.read_state(str(OLD))
    checkpoint.save(tmp_path / "ck", spec, state, state={"epoch": 1}, config="seed: 0\n")
    saved = json.loads((tmp_path / "ck" / checkpoint.SPEC_FILE).read_text())
    assert "checkpoint" not in saved  # where a spec was read from is not part of it
    again = checkpoint.load_spec(str(tmp_path / "ck"))
    assert again.model_dump() == spec.model_dump()
    assert (tmp_path / "ck" / checkpoint.STATE_FILE).exists()


def test_every_checkpoint_has_safetensors_and_a_model_card(tmp_path):
    import yaml
    from safetensors.torch import load_file

    from raymer.contract.card import CardFacts

    spec = checkpoint.load_spec(str(OLD))
    state = checkpoint.read_state(str(OLD))
    facts = CardFacts(
        features="s3://corpus/extract",
        train_clips=1234,
        speakers={"train": ["a", "b"], "validation": ["c"], "test": ["d"]},
        epochs=7,
        metrics={
            "validation": {"ua": 0.61, "wa": 0.6, "macro_f1": 0.59, "n": 80},
            "test (held-out speakers d)": {"ua": 0.55, "wa": 0.56, "macro_f1": 0.5, "n": 40},
        },
    )
    checkpoint.save(tmp_path / "ck", spec, state, card=facts)
    stored = load_file(tmp_path / "ck" / checkpoint.WEIGHTS_FILE)
    assert stored.keys() == state.keys()
    assert all(torch.equal(stored[k], state[k]) for k in state)
    card = (tmp_path / "ck" / "README.md").read_text()
    front = yaml.safe_load(card.split("---")[1])
    from raymer import __version__

    assert front["labels"] == spec.labels and front["raymer_version"] == __version__
    assert front["metrics"]["test (held-out speakers d)"]["ua"] == 0.55
    assert front["created"].startswith("20")
    for part in (
        "s3://corpus/extract",
        "training clips: 1,234",
        "test speakers (1): d",
        "| validation | 0.610 | 0.600 | 0.590 | 80 |",
        "| asr_model | `whisper-tiny.en` |",
        "| beam_size | `1` |",
    ):
        assert part in card, part
    bare = tmp_path / "bare"
    checkpoint.save(bare, spec, state)  # no facts: still a card, saying what it lacks
    assert "No test score yet" in (bare / "README.md").read_text()


def test_export_is_self_contained_and_loads_like_the_run(tmp_path):
    run = tmp_path / "compare"
    for name in ("fusion", "text"):
        shutil.copytree(OLD, run / name)
    (run / checkpoint.COMPARISON_FILE).write_text("{}")
    written = checkpoint.export(str(run), str(tmp_path / "out"))
    out = tmp_path / "out"
    assert written == [str(out), str(out / "text")]
    for folder in (out, out / "text"):
        names = sorted(p.name for p in folder.iterdir() if p.is_file())
        assert names == ["README.md", "model.json", "model.safetensors"]  # no pickle, no state
    assert checkpoint.models_of(str(out)) == (str(out), str(out / "text"))
    model, spec = checkpoint.load_model(str(out))
    original, _ = checkpoint.load_model(str(OLD))
    for (k, a), (_, b) in zip(
        model.state_dict().items(), original.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), k
    assert spec.labels == checkpoint.load_spec(str(OLD)).labels
    assert str(out) in (out / "README.md").read_text()  # the card names where it now is


def test_a_spec_refuses_unknown_or_bad_fields_by_name():
    values = json.loads((OLD / "model.json").read_text())
    with pytest.raises(ValidationError, match="colour"):
        ModelSpec(**values, colour="blue")
    with pytest.raises(ValidationError, match="modality"):
        ModelSpec(**(values | {"modality": "video"}))
    with pytest.raises(ValidationError, match="frame_rate_hz"):
        ModelSpec(**(values | {"extract": {"frame_rate_hz": 3.0}}))


def test_extraction_settings_are_extract_configs_own_defaults():
    """A spec without extraction settings (features made elsewhere) gets ExtractConfig's
    defaults, from the one class that defines them, but prosody and the text encoder: a
    record that does not name them was made without prosody and with MiniLM (extract's own
    defaults, prosody and mpnet-base, came later)."""
    values = json.loads((OLD / "model.json").read_text())
    values.pop("extract")
    spec = ModelSpec(**values)
    defaults = ExtractConfig().model_dump(include=set(ExtractSettings.model_fields))
    assert defaults.pop("prosody") and not spec.extract.prosody
    assert defaults.pop("text_model") == "mpnet-base" and spec.extract.text_model == "minilm-l6"
    defaults |= {"prosody": False, "text_model": "minilm-l6"}
    assert spec.extract.model_dump() == defaults
    assert ModelSpec(**values, extract=None).extract == spec.extract
    assert issubclass(ExtractConfig, ExtractSettings)


def test_logits_become_scores_and_labels():
    logits = torch.tensor([[2.0, 0.0, -2.0]])
    sig = checkpoint.label_scores(logits, "bce")[0].tolist()
    soft = checkpoint.label_scores(logits, "ce")[0].tolist()
    assert sig[0] == pytest.approx(1 / (1 + np.exp(-2))) and sum(soft) == pytest.approx(1.0)
    assert checkpoint.labels_on(["a", "b", "c"], sig) == ["a"]  # 0.5 exactly is off
    assert checkpoint.top_label(["a", "b", "c"], [0.1, 0.7, 0.7]) == "b"  # first of a tie


def test_run_batch_isolates_the_bad_item():
    calls = []

    def square(items):
        calls.append(list(items))
        if "x" in items:
            raise ValueError("not a number: x")
        return [i * i for i in items]

    out = run_batch(square, [2, "x", 3], "squaring")
    assert out[0] == 4 and out[2] == 9
    assert out[1] == ItemError("squaring failed: ValueError: not a number: x")
    assert calls == [[2, "x", 3], [2], ["x"], [3]]
    assert run_batch(square, [], "squaring") == []
    short = run_batch(lambda items: [1], [1, 2], "counting")  # a result short: item by item
    assert short == [1, 1]


class _Payload:
    """What a hostile model.pt could carry: an object run on unpickling."""

    def __reduce__(self):
        return (print, ("this ran while loading a checkpoint",))


def test_a_legacy_checkpoint_is_read_as_tensors_only(tmp_path, capsys):
    import pickle

    torch.save({"w": torch.zeros(2), "evil": _Payload()}, tmp_path / checkpoint.MODEL_FILE)
    with pytest.raises(pickle.UnpicklingError, match="[Ww]eights only"):
        checkpoint.read_state(str(tmp_path))
    assert "this ran" not in capsys.readouterr().out
    torch.save({"w": torch.ones(2)}, tmp_path / checkpoint.MODEL_FILE)
    assert checkpoint.read_state(str(tmp_path))["w"].tolist() == [1.0, 1.0]


def test_a_re_run_of_a_run_of_another_model_is_refused_before_any_worker(tmp_path):
    """The same run name in the same output goes on from its checkpoints: where they hold
    another model (other features: here a wider audio input), the run is refused with what
    differs instead of failing to load them in the workers."""
    from raymer.config import TrainConfig
    from raymer.errors import UsageError
    from raymer.training.trainer import refuse_another_model

    spec = ModelSpec(**json.loads((OLD / "model.json").read_text()))
    cfg = TrainConfig(output=str(tmp_path), run={"name": "fusion"})
    refuse_another_model(cfg, spec)  # nothing there yet
    saved = tmp_path / "fusion" / "checkpoint_000003"
    saved.mkdir(parents=True)
    (saved / "model.json").write_text(spec.model_dump_json())
    refuse_another_model(cfg, spec)  # the same model: it goes on
    wider = spec.model_copy(update={"audio_dim": spec.audio_dim + 25, "prosody_dim": 25})
    with pytest.raises(UsageError, match=r"another model \(audio_dim: 384 then, 409 now"):
        refuse_another_model(cfg, wider)
