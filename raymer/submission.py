"""``raymer submit`` and ``raymer jobs``: the same commands as Ray jobs on a cluster.

``submit`` checks the command's settings here (a bad value fails before anything is sent),
writes them resolved into ``job.yaml``, stages the ``raymer`` package beside it as the job's
``working_dir`` (so the cluster runs this code, not whatever it has installed), submits
``python -m raymer.cli COMMAND --config job.yaml`` through Ray's Job Submission SDK, follows
the logs and exits with the job's status.

Ray's token authentication (``RAY_AUTH_MODE=token``, on by default from Ray 2.60 for new
clusters) is handled by the SDK from the standard places: ``RAY_AUTH_TOKEN``,
``RAY_AUTH_TOKEN_PATH`` or ``~/.ray/auth_token``. The token is never printed.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from raymer import storage
from raymer.config import (
    COMMAND_CONFIGS,
    JOBS_ADDRESS,
    ConfigError,
    load_config,
    require_paths,
)
from raymer.errors import RunError, UsageError

# Settings that travel with every job when they are set here: where S3 is and how Ray and
# the model hub behave. Credentials and tokens never do (is_secret): the cluster's nodes
# have their own, from a mounted secret or an instance role.
FORWARDED_ENV = (
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
    "RAYMER_S3_ENDPOINT",
    "HF_HUB_OFFLINE",
    "RAYMER_OFFLINE",
    "RAYMER_CACHE",
)
TERMINAL = {"SUCCEEDED", "FAILED", "STOPPED"}


class SubmissionError(RunError):
    """The cluster cannot be reached, refused the request, or the job failed."""


def address(value: str | None) -> str:
    """--address, else RAY_ADDRESS when it is a dashboard URL, else the local dashboard."""
    value = value or os.environ.get("RAY_ADDRESS") or JOBS_ADDRESS
    if not value.startswith(("http://", "https://")):
        raise ConfigError(
            f"address {value!r} is not the dashboard's URL (http://HEAD:8265): jobs are "
            "submitted to the dashboard, not to the GCS port"
        )
    return value.rstrip("/")


def client(addr: str):
    """A JobSubmissionClient, with the two common failures said plainly."""
    from ray.job_submission import JobSubmissionClient

    try:
        return JobSubmissionClient(addr)
    except Exception as err:
        raise _failure(addr, err) from None


def _failure(addr: str, err: Exception) -> Exception:
    """A missing or wrong token is the caller's to fix (exit 2); the rest a failed call."""
    cls = UsageError if _is_auth(str(err)) else SubmissionError
    return cls(_explain(addr, err))


def _is_auth(text: str) -> bool:
    return "401" in text or "403" in text or "uthenticat" in text or "token" in text.lower()


def _explain(addr: str, err: Exception) -> str:
    text = str(err)
    if _is_auth(text):
        return (
            f"the Ray cluster at {addr} requires its authentication token: set RAY_AUTH_MODE=token "
            "and the token in RAY_AUTH_TOKEN, in a file named by RAY_AUTH_TOKEN_PATH, or in "
            "~/.ray/auth_token (`ray get-auth-token` on the head prints it)"
        )
    if "onnect" in text or "refused" in text.lower():
        return (
            f"cannot reach the Ray dashboard at {addr} (is the head running? {type(err).__name__})"
        )
    return f"{addr}: {type(err).__name__}: {text.splitlines()[0] if text else ''}"


# Names whose values are secrets: never sent in a job's runtime_env (the dashboard and the
# job's info show it to anyone who can reach them) nor written into job.yaml.
SECRET_WORDS = ("TOKEN", "SECRET", "PASSWORD", "PASSWD", "CREDENTIAL", "API_KEY", "PRIVATE")
SECRETS_HOWTO = (
    "give the nodes the secret as a file (auth_token_file=PATH: a Kubernetes secret mounted "
    "there, cluster/rayservice.yaml) or in their own environment (a secret as env, an instance "
    "role for AWS): docs/cluster.md, 'Secrets'"
)


def is_secret(name: str) -> bool:
    return any(word in name.upper() for word in SECRET_WORDS)


def resolve_settings(command: str, config: str | None, overrides: list[str], **flags) -> dict:
    """The command's config, validated here; local paths made absolute (a cluster whose
    nodes share this file system reads them; on any other, use s3://). A secret setting
    (``auth_token``) is refused: ``job.yaml`` travels in the job's working_dir."""
    cfg = load_config(COMMAND_CONFIGS[command], config, overrides, **flags)
    require_paths(cfg, command)
    data = cfg.model_dump(mode="json")
    secret = [k for k, v in data.items() if v and k == "auth_token"]
    if secret:
        raise ConfigError(
            f"{secret[0]} would be written into job.yaml, uploaded with the job where anyone "
            f"with the dashboard can read it: {SECRETS_HOWTO}"
        )
    for key in ("input", "output", "features", "checkpoint", "text_checkpoint"):
        value = data.get(key)
        if isinstance(value, str) and value and not storage.is_remote(value):
            data[key] = str(Path(value).resolve())
    return data


def local_paths(settings: dict) -> list[str]:
    return [
        v
        for k in ("input", "output", "features", "checkpoint", "text_checkpoint")
        if isinstance(v := settings.get(k), str) and v and not storage.is_remote(v)
    ]


def stage(settings: dict) -> Path:
    """A working_dir: the raymer package (this code) and job.yaml."""
    import raymer

    root = Path(tempfile.mkdtemp(prefix="raymer-job-"))
    shutil.copytree(
        Path(raymer.__file__).parent,
        root / "raymer",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
    )
    (root / "job.yaml").write_text(yaml.safe_dump(settings, sort_keys=False))
    return root


def env_vars(extra: list[str]) -> dict[str, str]:
    """FORWARDED_ENV that are set, plus each --env NAME (its value from here) or NAME=VALUE."""
    env = {k: os.environ[k] for k in FORWARDED_ENV if os.environ.get(k)}
    for item in extra:
        name, sep, value = item.partition("=")
        if is_secret(name):
            raise ConfigError(
                f"--env {name}: a secret would go into the job's runtime_env, which the Ray "
                f"dashboard and `ray job list` show: {SECRETS_HOWTO}"
            )
        if not sep:
            if name not in os.environ:
                raise ConfigError(f"--env {name}: not set in this environment")
            value = os.environ[name]
        env[name] = value
    return env


def submit(
    command: str,
    settings: dict,
    addr: str,
    env: dict[str, str],
    wait: bool = True,
    extra_args: list[str] | None = None,
    out=sys.stdout,
) -> int:
    """Submit ``raymer COMMAND`` with ``settings``; follow it when ``wait``. Returns the exit
    status: 0 when the job succeeded (or was submitted, without ``wait``), 1 otherwise."""
    jobs = client(addr)
    working_dir = stage(settings)
    entry = ["python", "-m", "raymer.cli", command, "--config", "job.yaml", *(extra_args or [])]
    try:
        job_id = jobs.submit_job(
            entrypoint=" ".join(entry),
            runtime_env={"working_dir": str(working_dir), "env_vars": env},
            metadata={"raymer_command": command},
        )
    except Exception as err:
        raise _failure(addr, err) from None
    finally:
        shutil.rmtree(working_dir, ignore_errors=True)
    print(f"submitted {command} as job {job_id} to {addr}", file=out, flush=True)
    if not wait:
        print(f"follow it: raymer jobs logs {job_id} --follow --address {addr}", file=out)
        return 0
    return follow(jobs, job_id, out)


def follow(jobs, job_id: str, out=sys.stdout) -> int:
    """Print the job's logs as they come, then its final status; 0 when it succeeded."""

    async def tail() -> None:
        async for lines in jobs.tail_job_logs(job_id):
            print(lines, end="", file=out, flush=True)

    try:
        asyncio.run(tail())
    except KeyboardInterrupt:
        print(
            f"\nstopped following; job {job_id} goes on (raymer jobs stop {job_id})",
            file=out,
        )
        return 130
    status = wait_status(jobs, job_id)
    info = jobs.get_job_info(job_id)
    message = f": {info.message}" if status != "SUCCEEDED" and info.message else ""
    print(f"job {job_id} {status}{message}", file=out, flush=True)
    return 0 if status == "SUCCEEDED" else 1


def wait_status(jobs, job_id: str, timeout_s: float = 60.0) -> str:
    deadline = time.monotonic() + timeout_s
    while True:
        status = str(jobs.get_job_status(job_id).value)
        if status in TERMINAL or time.monotonic() > deadline:
            return status
        time.sleep(0.5)


def list_jobs(jobs) -> list[dict[str, Any]]:
    rows = []
    for job in jobs.list_jobs():
        rows.append(
            {
                "job": job.submission_id or job.job_id,
                "status": str(job.status.value),
                "command": (job.metadata or {}).get("raymer_command", ""),
                "entrypoint": job.entrypoint,
                "start": job.start_time,
            }
        )
    return sorted(rows, key=lambda r: r["start"] or 0)


def jobs_table(rows: list[dict[str, Any]]) -> str:
    lines = [f"{'job':34} {'status':10} {'command':9} started"]
    for r in rows:
        started = (
            time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r["start"] / 1000))
            if r["start"]
            else "-"
        )
        lines.append(f"{r['job']:34} {r['status']:10} {r['command'] or '-':9} {started}")
    return "\n".join(lines)
