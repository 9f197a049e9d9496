"""`raymer submit` never sends a secret where the cluster shows it: a job's runtime_env (the
dashboard, `ray job list`) or job.yaml (uploaded with the job)."""

from __future__ import annotations

import pytest

from raymer import cli
from raymer.config import ConfigError
from raymer.submission import env_vars, resolve_settings


@pytest.mark.parametrize(
    "name", ["RAYMER_API_TOKEN", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "DB_PASSWORD"]
)
def test_a_secret_is_never_put_in_the_runtime_env(monkeypatch, name):
    monkeypatch.setenv(name, "s3cret")
    for item in (name, f"{name}=s3cret"):
        with pytest.raises(ConfigError, match=rf"--env {name}: a secret .*auth_token_file"):
            env_vars([item])


def test_other_settings_still_travel(monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9000")
    monkeypatch.setenv("MY_FLAG", "1")
    env = env_vars(["MY_FLAG", "OTHER=2"])
    assert env["AWS_ENDPOINT_URL"] == "http://127.0.0.1:9000"
    assert env["MY_FLAG"] == "1" and env["OTHER"] == "2"


def test_a_token_is_never_written_into_job_yaml(tmp_path, capsys):
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    with pytest.raises(ConfigError, match="auth_token would be written into job.yaml"):
        resolve_settings("serve", None, ["auth_token=s3cret"], checkpoint=str(ckpt))
    settings = resolve_settings(
        "serve", None, [f"auth_token_file={tmp_path / 'token'}"], checkpoint=str(ckpt)
    )
    assert settings["auth_token"] is None and settings["auth_token_file"].endswith("token")
    # through the command line: refused before anything is sent (exit 2), the value unprinted
    status = cli.main(
        ["submit", "serve", "--address", "http://127.0.0.1:1", f"checkpoint={ckpt}",
         "auth_token=s3cret"]
    )  # fmt: skip
    assert status == 2 and "s3cret" not in capsys.readouterr().err
