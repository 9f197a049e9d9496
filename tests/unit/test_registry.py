import pytest

from raymer.models.registry import ModelNotFoundError, resolve_model


def test_local_folder_is_accepted(tmp_path):
    assert resolve_model(str(tmp_path)) == str(tmp_path)


def test_unknown_model_without_hub(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotFoundError, match="not a registered name"):
        resolve_model("openai/whisper-large-v3")


@pytest.mark.parametrize(
    "env,offline",
    [
        ({}, False),
        ({"HF_HUB_OFFLINE": "0"}, False),
        ({"HF_HUB_OFFLINE": "false"}, False),
        ({"HF_HUB_OFFLINE": "1"}, True),
        ({"HF_HUB_OFFLINE": "ON"}, True),
        ({"RAYMER_OFFLINE": "true"}, True),
        ({"RAYMER_OFFLINE": "no", "HF_HUB_OFFLINE": ""}, False),
    ],
)
def test_offline_is_a_true_setting_not_any_value(monkeypatch, env, offline):
    from raymer.models.registry import offline as is_offline

    for name in ("HF_HUB_OFFLINE", "RAYMER_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert is_offline() is offline
    if offline:
        with pytest.raises(ModelNotFoundError, match="offline"):
            resolve_model("openai/whisper-large-v3")
    else:  # a hub id goes to the loader, which downloads it where a hub is reachable
        assert resolve_model("openai/whisper-large-v3") == "openai/whisper-large-v3"
    with pytest.raises(ModelNotFoundError, match="not a hub id"):
        resolve_model("no-such-model")
