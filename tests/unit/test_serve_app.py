"""The ingress's security, without a cluster: what a deployment carries, how a token is
compared."""

from __future__ import annotations

import hashlib
import pickle

import pytest

from raymer.config import ServeConfig
from raymer.serving.app import build_app
from raymer.serving.ingress import authorized, resolve_token, token_digest

TOKEN = "s3cret-token-never-shown"


def _everything(app) -> bytes:
    """What Serve and Ray's dashboard see of the application: its deployments' arguments and
    options, the model deployments behind the ingress included."""
    seen, todo = [], [app._bound_deployment]
    while todo:
        deployment = todo.pop()
        seen.append((deployment.init_args, deployment.ray_actor_options))
        for value in [*deployment.init_args, *deployment.init_kwargs.values()]:
            if hasattr(value, "_bound_deployment"):
                todo.append(value._bound_deployment)
        seen.append(repr(deployment.init_kwargs))
    return pickle.dumps(repr(seen))


def test_the_token_reaches_no_deployment_argument_or_runtime_env(tmp_path):
    app = build_app({"checkpoint": str(tmp_path), "auth_token": TOKEN})
    shown = _everything(app)
    assert TOKEN.encode() not in shown
    digest = hashlib.sha256(TOKEN.encode()).hexdigest()
    env = app._bound_deployment.ray_actor_options["runtime_env"]["env_vars"]
    assert env["RAYMER_API_TOKEN_SHA256"] == digest == token_digest(TOKEN)


def test_a_token_is_checked_by_its_digest():
    digest = token_digest(TOKEN)
    assert authorized(f"Bearer {TOKEN}", digest)
    assert authorized(f"bearer {TOKEN}", digest)  # the scheme is case-insensitive (RFC 6750)
    for header in ("", "Bearer", f"Basic {TOKEN}", f"Bearer {TOKEN[:-1]}", f"Bearer {TOKEN}x"):
        assert not authorized(header, digest), header


def test_a_network_facing_service_needs_a_token(tmp_path, monkeypatch):
    monkeypatch.delenv("RAYMER_API_TOKEN", raising=False)
    with pytest.raises(ValueError, match="0.0.0.0 without a token lets anyone"):
        build_app({"checkpoint": str(tmp_path), "host": "0.0.0.0"})
    build_app({"checkpoint": str(tmp_path), "host": "0.0.0.0", "allow_anonymous": True})
    build_app({"checkpoint": str(tmp_path)})  # loopback: open is fine
    secret = tmp_path / "token"
    with pytest.raises(FileNotFoundError, match="auth_token_file .* does not exist"):
        build_app({"checkpoint": str(tmp_path), "auth_token_file": str(secret)})
    secret.write_text(TOKEN + "\n")
    cfg = ServeConfig(checkpoint=str(tmp_path), host="0.0.0.0", auth_token_file=str(secret))
    assert resolve_token(cfg) == TOKEN
    app = build_app(cfg.model_dump(mode="json"))
    assert TOKEN.encode() not in _everything(app)
