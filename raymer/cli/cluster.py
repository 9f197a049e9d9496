"""The cluster side of the ``raymer`` command: ``submit``, ``jobs`` and ``copy``.

``raymer.cli.build_parser`` adds them with ``add_cluster_commands``; the work is in
``raymer.submission`` (Ray's Job Submission SDK) and ``raymer.storage``.
"""

from __future__ import annotations

import argparse
import sys

from raymer.cli.common import fields_help
from raymer.config import COMMAND_CONFIGS, JOBS_ADDRESS, ConfigError, TrainConfig

# Each submitted command's flags (beside --address, --config, --env, --no-wait, overrides);
# those that name a field of its config (COMMAND_CONFIGS) set that field.
JOB_FLAGS = {
    "extract": [
        ("--input", "manifest or directory; s3:// on a cluster"),
        ("--output", "output root; s3:// on a cluster"),
    ],
    "train": [("--features", "extraction output"), ("--output", "run root (checkpoints)")],
    "compare": [("--features", "extraction output"), ("--output", "root of the 3 runs")],
    "crossval": [
        ("--features", "extraction output"),
        ("--output", "root of the fold runs"),
        ("--modalities", "fusion,audio,text"),
        ("--folds", "groups to test"),
    ],
    "recognize": [
        ("--input", "directory, manifest or audio file; s3:// on a cluster"),
        ("--checkpoint", "checkpoint, train or compare output; s3:// on a cluster"),
        ("--output", "output root; s3:// on a cluster"),
    ],
    "serve": [
        ("--checkpoint", "checkpoint, train or compare output; s3:// on a cluster"),
        ("--port", "HTTP port"),
        ("--host", "address to listen on (0.0.0.0 to reach it from outside the head)"),
    ],
}


def cmd_submit(args: argparse.Namespace) -> int:
    from raymer import submission

    fields = COMMAND_CONFIGS[args.job_command].model_fields
    names = [flag[2:] for flag, _ in JOB_FLAGS[args.job_command] if flag[2:] in fields]
    flags = {n: getattr(args, n) for n in names}
    addr = submission.address(args.address)
    settings = submission.resolve_settings(args.job_command, args.config, args.overrides, **flags)
    for path in submission.local_paths(settings):
        print(
            f"note: {path} is a local path: every node of the cluster must see it "
            "(shared file system); otherwise use s3://",
            file=sys.stderr,
        )
    extra = []
    if args.job_command == "crossval":
        extra += [f"--modalities={args.modalities}"] if args.modalities else []
        extra += [f"--folds={args.folds}"] if args.folds else []
    if args.job_command == "serve":
        extra.append("--detach")  # the application outlives the job that deployed it
    env = submission.env_vars(args.env or [])
    return submission.submit(
        args.job_command, settings, addr, env, wait=not args.no_wait, extra_args=extra
    )


def cmd_jobs(args: argparse.Namespace) -> int:
    import json

    from raymer import submission

    jobs = submission.client(submission.address(args.address))
    if args.action == "list":
        rows = submission.list_jobs(jobs)
        print(json.dumps(rows, indent=2) if args.json else submission.jobs_table(rows))
        return 0
    if not args.job:
        raise ConfigError(f"jobs {args.action} needs a job id (see `raymer jobs list`)")
    if args.action == "status":
        info = jobs.get_job_info(args.job)
        print(f"{args.job} {info.status.value}" + (f": {info.message}" if info.message else ""))
        return 0 if str(info.status.value) != "FAILED" else 1
    if args.action == "logs":
        if args.follow:
            return submission.follow(jobs, args.job)
        print(jobs.get_job_logs(args.job), end="")
        return 0
    stopped = jobs.stop_job(args.job)
    print(f"{args.job}: {'stop requested' if stopped else 'already finished'}")
    return 0


def cmd_copy(args: argparse.Namespace) -> int:
    from raymer import storage

    try:
        n = storage.copy_tree(args.source, args.destination)
    except OSError as err:  # pyarrow's S3 errors: no bucket, no credentials, no endpoint
        raise FileNotFoundError(f"cannot copy {args.source} to {args.destination}: {err}") from None
    print(f"copied {n} file{'s' * (n != 1)}: {args.source} -> {args.destination}")
    return 0


def add_cluster_commands(sub) -> None:
    """``submit``, ``jobs`` and ``copy`` on the subparsers ``sub``."""
    _add_submit(sub)
    _add_jobs(sub)
    _add_copy(sub)


def _add_submit(sub) -> None:
    sb = sub.add_parser(
        "submit",
        help="run extract / train / compare / crossval / recognize / serve as a job on a Ray cluster",
        description="Submit a command to a Ray cluster through its dashboard (Job Submission "
        "SDK): the settings are checked here and sent resolved, with this raymer code as the "
        "job's working_dir; follows the logs and exits with the job's status. Token "
        "authentication: RAY_AUTH_MODE=token with RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or "
        "~/.ray/auth_token (docs/cluster.md).",
    )
    job_sub = sb.add_subparsers(dest="job_command", required=True, metavar="COMMAND")
    for job, flags in JOB_FLAGS.items():
        cls = COMMAND_CONFIGS[job]
        jp = job_sub.add_parser(
            job,
            help=f"`raymer {job}` as a Ray job",
            description=f"`raymer {job}` as a Ray job on the cluster at --address.",
            epilog=fields_help(cls),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        jp.add_argument(
            "--address",
            help=f"dashboard URL (default: $RAY_ADDRESS when it is a URL, else {JOBS_ADDRESS})",
        )
        jp.add_argument(
            "--config", help=f"YAML config (configs/{'train' if cls is TrainConfig else job}/)"
        )
        for flag, text in flags:
            jp.add_argument(flag, type=int if flag == "--port" else str, help=text)
        jp.add_argument(
            "--env",
            action="append",
            metavar="NAME[=VALUE]",
            help="environment variable for the job (repeatable; NAME alone takes its value "
            "from here). AWS_ENDPOINT_URL and AWS_DEFAULT_REGION travel when set.",
        )
        jp.add_argument("--no-wait", action="store_true", help="submit and return the job id")
        jp.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
        jp.set_defaults(func=cmd_submit)


def _add_jobs(sub) -> None:
    jb = sub.add_parser(
        "jobs",
        help="list, inspect, follow or stop the jobs of a Ray cluster",
        description="The cluster's jobs through its dashboard: list; status JOB; logs JOB "
        "[--follow]; stop JOB.",
    )
    jb.add_argument("action", choices=["list", "status", "logs", "stop"])
    jb.add_argument("job", nargs="?", help="job id (from submit or list)")
    jb.add_argument("--address", help="dashboard URL (default as for submit)")
    jb.add_argument("--follow", action="store_true", help="logs: follow until the job ends")
    jb.add_argument("--json", action="store_true", help="list: JSON")
    jb.set_defaults(func=cmd_jobs)


def _add_copy(sub) -> None:
    cp = sub.add_parser(
        "copy",
        help="copy a file or folder between local paths and s3:// (e.g. a corpus to a cluster)",
        description="Copy a file or a folder (recursively) between local paths and s3:// URIs, "
        "with the same storage settings as every other command (AWS_* environment, "
        "AWS_ENDPOINT_URL for S3-compatible stores). The bucket must exist.",
    )
    cp.add_argument("source", help="local path or s3:// URI")
    cp.add_argument("destination", help="local path or s3:// URI")
    cp.set_defaults(func=cmd_copy)
