"""The raymer command's exit status and error output: by whose fault it is (raymer.errors)."""

from __future__ import annotations

import pytest

from raymer import cli
from raymer.errors import RunError, UsageError
from raymer.models.errors import ModelError


@pytest.mark.parametrize(
    "error,status,says",
    [
        (UsageError("batch_size must be positive"), 2, "raymer: error: batch_size must"),
        (FileNotFoundError("input /x.csv does not exist"), 2, "input /x.csv does not exist"),
        (ModelError("init_text: another shape"), 2, "raymer: error: init_text: another shape"),
        (RunError("the job failed: worker died"), 1, "raymer: error: the job failed"),
        (TimeoutError("not ready within 300 s"), 1, "not ready within 300 s"),
        (KeyError("frames"), 1, "raymer: error: KeyError: 'frames'"),
        (ValueError("boom"), 1, "raymer: error: ValueError: boom"),
    ],
)
def test_exit_status_and_message_by_fault(monkeypatch, capsys, error, status, says):
    def fails(args):
        raise error

    monkeypatch.setattr("raymer.cli.extract.cmd_extract", fails)
    assert cli.main(["extract", "--input", "x", "--output", "y"]) == status
    err = capsys.readouterr().err
    assert says in err and "Traceback" not in err
    bug = not isinstance(error, UsageError | ModelError | RunError | OSError)
    assert ("looks like a bug" in err) is bug


@pytest.mark.parametrize("where", ["before", "after"])
def test_verbose_shows_the_traceback(monkeypatch, capsys, where):
    def fails(args):
        raise KeyError("frames")

    monkeypatch.setattr("raymer.cli.extract.cmd_extract", fails)
    argv = ["extract", "--input", "x", "--output", "y"]
    argv = ["--verbose", *argv] if where == "before" else [*argv, "--verbose"]
    assert cli.main(argv) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "KeyError" in err and "looks like a bug" not in err


def test_a_usage_error_from_argparse_exits_2(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["extract", "--no-such-flag"])
    assert exit_.value.code == 2


def test_the_help_states_the_exit_status(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    assert "exit status: 0 success, 1 a run that failed, 2 a usage or config error" in " ".join(
        capsys.readouterr().out.split()
    )
