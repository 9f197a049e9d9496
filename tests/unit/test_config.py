from pathlib import Path

import pytest

from raymer.config import (
    ConfigError,
    ExtractConfig,
    RecognizeConfig,
    ServeConfig,
    TrainConfig,
    load_config,
    parse_overrides,
)

CONFIGS = sorted(Path(__file__).parents[2].joinpath("configs").rglob("*.yaml"))


def test_overrides_are_parsed_as_yaml_and_nested():
    assert parse_overrides(["a=1", "b.c=x", "d=true", "e="]) == {
        "a": 1,
        "b": {"c": "x"},
        "d": True,
        "e": None,
    }


def test_override_without_equals_is_refused():
    with pytest.raises(ConfigError, match="key=value"):
        parse_overrides(["batch_size"])


def test_bad_value_names_the_field():
    with pytest.raises(ConfigError, match="batch_size"):
        load_config(ExtractConfig, None, ["batch_size=0"])


def test_unknown_field_is_refused():
    with pytest.raises(ConfigError, match="bach_size"):
        load_config(ExtractConfig, None, ["bach_size=4"])


def test_unknown_compute_type_is_refused():
    with pytest.raises(ConfigError, match="compute_type"):
        load_config(ExtractConfig, None, ["compute_type=int4"])


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(ExtractConfig, tmp_path / "nope.yaml")


def test_overrides_win_over_file_and_keywords(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("batch_size: 3\nbeam_size: 2\n")
    cfg = load_config(ExtractConfig, path, ["batch_size=5"], input="x", output=None)
    assert (cfg.batch_size, cfg.beam_size, cfg.input) == (5, 2, "x")


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_shipped_config_loads(path):
    assert path.read_text().startswith("# raymer "), "configs open with the command that runs them"
    if path.parent.name == "corpora":  # label maps of `raymer corpus prepare --label-map`
        import yaml

        mapping = yaml.safe_load(path.read_text())
        assert mapping and all(
            isinstance(k, str) and (v is None or isinstance(v, str)) for k, v in mapping.items()
        )
        return
    classes = {"extract": ExtractConfig, "train": TrainConfig, "serve": ServeConfig}
    cls = (classes | {"recognize": RecognizeConfig})[path.parent.name]
    cfg = load_config(cls, path)
    assert cfg.model_dump()


def test_configs_exist():
    assert len(CONFIGS) >= 4


def test_frame_rate_must_divide_the_encoder_rate():
    assert load_config(ExtractConfig, None, ["frame_rate_hz=25"]).frame_rate_hz == 25
    with pytest.raises(ConfigError, match="must divide"):
        load_config(ExtractConfig, None, ["frame_rate_hz=3"])


def test_finetune_schedule_and_mode_are_validated():
    from raymer.config import TrainConfig

    cfg = load_config(TrainConfig, None, ["mode=finetune", "finetune.unfreeze_all_at=5"])
    assert cfg.finetune.unfreeze_all_at == 5 and cfg.finetune.unfreeze_top_at == 1
    with pytest.raises(ConfigError, match="finetune: .*unfreeze_all_at=0 comes before"):
        load_config(TrainConfig, None, ["finetune.unfreeze_top_at=2", "finetune.unfreeze_all_at=0"])
    with pytest.raises(ConfigError, match="finetune.encoder_lr: Input should be greater than 0"):
        load_config(TrainConfig, None, ["finetune.encoder_lr=0"])
    with pytest.raises(ConfigError, match="mode: Input should be 'features' or 'finetune'"):
        load_config(TrainConfig, None, ["mode=end2end"])
    with pytest.raises(ConfigError, match="audio_input=temporal works on cached frames only"):
        load_config(TrainConfig, None, ["mode=finetune", "model.audio_input=temporal"])


def test_serve_replicas_are_validated():
    with pytest.raises(ConfigError, match="max_replicas=1 is below min_replicas=2"):
        load_config(ServeConfig, None, ["min_replicas=2", "max_replicas=1"])


def test_a_mapping_override_replaces_and_a_dotted_one_merges():
    sample = "configs/train/sample.yaml"
    assert load_config(TrainConfig, sample, []).data.holdout  # the file holds out templates
    assert load_config(TrainConfig, sample, ["data.holdout={}"]).data.holdout == {}
    assert load_config(TrainConfig, sample, ["data.holdout={speaker: [joe]}"]).data.holdout == {
        "speaker": ["joe"]
    }
    cfg = load_config(TrainConfig, "configs/train/finetune.yaml", ["finetune.top_layers=3"])
    assert cfg.finetune.top_layers == 3 and cfg.finetune.unfreeze_all_at == 4  # rest kept


def test_multi_label_and_init_text_are_checked():
    with pytest.raises(ConfigError, match="multi_label needs loss=bce"):
        load_config(TrainConfig, None, ["model.multi_label=true", "model.loss=ce"])
    with pytest.raises(ConfigError, match="modality=audio has none"):
        load_config(TrainConfig, None, ["model.init_text=runs/x", "model.modality=audio"])
    with pytest.raises(ConfigError, match="inputs"):
        load_config(ExtractConfig, None, ["inputs=video"])


def test_a_run_without_its_paths_is_refused_naming_them():
    from raymer.config import require_paths

    with pytest.raises(ConfigError, match=r"extract needs input and output \(--input/--output"):
        require_paths(load_config(ExtractConfig, None, [], output="out"), "extract")
    with pytest.raises(ConfigError, match="crossval needs features and output"):
        require_paths(load_config(TrainConfig, None, [], features="f"), "crossval")
    require_paths(load_config(TrainConfig, None, [], features="f", output="o"), "train")
    require_paths(load_config(ServeConfig, None, []), "serve")  # serve has a default


def test_shared_parts_keep_each_command_s_defaults_and_refuse_old_keys():
    """decode/speech/segment are one definition held by every command, each with its own
    defaults (in the config, when given in part, and in --help); a flat key from before the
    grouping names its new place."""
    from raymer.cli.common import fields_help
    from raymer.config import (
        ConfigError,
        ExtractConfig,
        RecognizeConfig,
        ServeConfig,
        load_config,
    )

    assert RecognizeConfig(decode={"max_channels": 2}).decode.max_file_mb == 8192.0
    assert ExtractConfig().decode.max_file_mb == 1024.0
    assert ServeConfig(checkpoint="c").decode.max_file_mb == 20.0
    assert type(RecognizeConfig().decode) is type(ServeConfig(checkpoint="c").decode)
    cfg = load_config(RecognizeConfig, overrides=["segment.chunk_s=120"])
    assert cfg.segment.chunk_s == 120 and cfg.segment.min_silence_s == 1.0
    for old, new in (("chunk_s=120", "segment.chunk_s"), ("no_speech_prob=0.5", "speech.")):
        with pytest.raises(ConfigError, match=f"is now `{new}"):
            load_config(RecognizeConfig, overrides=[old])
    with pytest.raises(ConfigError, match="`max_upload_mb` is now `decode.max_file_mb`"):
        load_config(ServeConfig, overrides=["checkpoint=c", "max_upload_mb=5"])
    assert "decode.max_file_mb (default 8192.0)" in fields_help(RecognizeConfig)
    assert "decode.max_file_mb (default 20.0)" in fields_help(ServeConfig)


def test_resources_are_one_part_with_each_command_s_defaults():
    """``resources`` is the same part in the four commands: each keeps its own defaults
    (merged a key at a time, stages included), an old flat key is refused with its place,
    and a stage a command has no use for is refused with the reason and left out of --help,
    while a dumped config (which holds it at its default) loads again."""
    from raymer.cli.common import fields_help
    from raymer.config.parts import ResourcesConfig

    configs = (ExtractConfig, RecognizeConfig, ServeConfig, TrainConfig)
    assert all(c.model_fields["resources"].annotation is ResourcesConfig for c in configs)
    cfg = load_config(RecognizeConfig, overrides=["resources.asr.actors=3"])
    assert (cfg.resources.asr.actors, cfg.resources.asr.num_cpus) == (3, 0.4)
    assert load_config(ExtractConfig).resources.asr.num_cpus == 0.5
    train = load_config(TrainConfig, overrides=["resources.model.actors=3"])
    assert (train.resources.model.actors, train.resources.model.num_cpus) == (3, 0.5)
    moves = {
        ExtractConfig: [("text_actors=2", "resources.model.actors"), ("use_gpu=true", "resources.use_gpu")],
        RecognizeConfig: [("model_num_cpus=0.1", "resources.model.num_cpus"), ("decode_num_cpus=1", "resources.decode_num_cpus")],
        ServeConfig: [("replica_num_cpus=1", "resources.asr.num_cpus"), ("stage_num_cpus=1", "resources.model.num_cpus")],
        TrainConfig: [("num_workers=4", "resources.model.actors"), ("cpus_per_worker=2", "resources.model.num_cpus")],
    }  # fmt: skip
    for cls, pairs in moves.items():
        for old, new in pairs:
            with pytest.raises(ConfigError, match=f"is now `{new}`"):
                load_config(cls, overrides=[old])
    with pytest.raises(ConfigError, match="resources.asr.threads` is not a setting.*encoder"):
        load_config(TrainConfig, overrides=["resources.asr.threads=4"])
    with pytest.raises(ConfigError, match="resources.model.actors` is not a setting.*autoscale"):
        load_config(ServeConfig, overrides=["resources.model.actors=4"])
    assert "resources.asr" not in fields_help(TrainConfig)
    assert "resources.model.actors (default 2)" in fields_help(TrainConfig)
    assert "resources.model.actors" not in fields_help(ServeConfig)
    for cls in configs:
        assert cls(**cls().model_dump()) == cls()  # a dumped config loads again
    gpu = ResourcesConfig(use_gpu=True, model={"num_gpus": 0})
    assert (gpu.device_of(gpu.asr), gpu.device_of(gpu.model), gpu.gpus(gpu.model)) == (
        "cuda", "cpu", 0.0,
    )  # fmt: skip
    assert ResourcesConfig(use_gpu=True, device="cpu").device_of(gpu.asr) == "cpu"


def test_compare_and_crossval_make_a_valid_model_of_each_modality_from_every_shipped_config():
    """One config trains fusion, audio and text models (compare, crossval): each modality's
    settings are checked like any config's, and what a modality cannot read is left out of
    it (prosody for text, init_text for audio), never refused: the sample config has
    prosody on and `make demo` compares all three."""
    from pathlib import Path

    for path in sorted(Path("configs/train").glob("*.yaml")):
        cfg = load_config(TrainConfig, path, ["model.init_text=runs/text"])
        for modality in ("fusion", "audio", "text"):
            one = cfg.updated(**cfg.model.as_modality(modality), **{"run.name": modality})
            assert one.model.modality == modality and one.run.name == modality
            assert one.model.prosody == (cfg.model.prosody if modality != "text" else False)
            assert (one.model.init_text is None) == (modality == "audio"), path
    sample = load_config(TrainConfig, "configs/train/sample.yaml", ["model.prosody=true"])
    assert sample.model.prosody is True  # the case that matters: prosody on, a text model made
    text = sample.updated(**sample.model.as_modality("text"))
    assert text.model.prosody is False
    with pytest.raises(ValueError, match="modality=text reads none"):
        sample.updated(**{"model.modality": "text"})  # set alone, it is refused
    auto = load_config(TrainConfig, "configs/train/sample.yaml")
    assert auto.updated(**{"model.modality": "text"}).model.prosody == "auto"  # read as none
