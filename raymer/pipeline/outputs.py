"""An output folder of ``extract`` or ``recognize``: one run at a time, one set of settings,
a marker when a run finished, and nothing deleted that is not provably broken.

- one run at a time: ``raymer.pipeline.lease`` (``Lease``, ``OUTPUT/_lease.json``);
- ``check_settings``: rows already written with other settings (another model, text source,
  frame rate...; ``save_settings`` records them) are never mixed with new ones: the run is refused with the settings that
  differ, or (``redo``) the old output is removed first.
- ``DONE``: ``OUTPUT/_SUCCESS.json`` is written when a run ends, removed when one starts.
- ``truncated_parquet``/``drop_truncated``: a file is only taken for a crash's leftover (and
  removed) when its footer is missing; a read error (S3 throttling, a permission) stops the run instead.
- ``claim``: an output folder belongs to raymer: a run writes ``OWNER`` into a new or empty
  folder, refuses one holding anything it does not write (a user's files are never
  overwritten or deleted), an output inside its input folder and an input inside its output;
  its scratch space (listings, staged rows) lives under ``SCRATCH``, a name no user folder has.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass

import yaml

from raymer import storage
from raymer.errors import UsageError
from raymer.pipeline.lease import LEASE, Lease

logger = logging.getLogger(__name__)

DONE = "_SUCCESS.json"
OWNER = "_raymer.json"  # this folder is the output of a raymer command (which one, since when)
SCRATCH = "_raymer_scratch"  # what a run writes for itself and removes: listings, staged rows
SETTINGS = "_settings.json"  # what check_settings compares: the config and the model's identity
RUN_FILES = (OWNER, SCRATCH, LEASE, DONE, SETTINGS, "config.yaml", "summary.json")


class SettingsMismatch(UsageError):
    """The output holds rows made with other settings."""


class OutputNotOwned(UsageError):
    """The output folder holds what raymer did not write, or overlaps the input."""


def claim(output: str, command: str, names: Iterable[str], input_uri: str | None = None) -> None:
    """Before a run writes anything: ``output`` must be apart from ``input_uri`` and hold
    nothing but what a ``raymer command`` writes (``names`` and ``RUN_FILES``); a new or empty
    folder gets the ``OWNER`` marker, a folder an earlier run made (marked, or from before the
    marker: only raymer's names) is this command's to resume. Refused with the reason
    otherwise, before anything is written or deleted."""
    import pyarrow.fs as pafs

    if input_uri:
        _apart(output, input_uri)
    fs, path = storage.filesystem(output)
    infos = fs.get_file_info(pafs.FileSelector(path, allow_not_found=True))
    found = {info.path.rstrip("/").rsplit("/", 1)[-1] for info in infos}
    ours = set(names) | set(RUN_FILES)
    for name in sorted(found):
        if storage.partial_of(name) in ours:  # a write of ours cut short: never a user's file
            storage.delete_file(storage.join(output, name))
            found.discard(name)
    foreign = sorted(found - ours)
    if foreign:
        shown = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
        raise OutputNotOwned(
            f"the output {output} holds what raymer did not write ({shown}): give a new or "
            f"empty folder, or one an earlier `raymer {command}` made. Nothing was written "
            "or deleted"
        )
    marker = storage.join(output, OWNER)
    if storage.exists(marker):
        made_by = json.loads(storage.read_bytes(marker)).get("command")
        if made_by != command:
            raise OutputNotOwned(
                f"the output {output} is a `raymer {made_by}` output, not a `raymer "
                f"{command}` one: give another folder"
            )
        return
    storage.makedirs(output)
    record = {"command": command, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    storage.write_bytes(marker, json.dumps(record).encode())


def _apart(output: str, input_uri: str) -> None:
    """The output may not be the input folder or inside it (its files would be read as
    input), and the input may not be inside the output (a run's files are its own)."""
    out, inp = storage.absolute(output).rstrip("/"), storage.absolute(input_uri).rstrip("/")

    def inside(a: str, b: str) -> bool:
        return a == b or a.startswith(b + "/")

    if storage.is_dir(inp) and inside(out, inp):
        raise OutputNotOwned(
            f"the output {output} is inside the input folder {input_uri}: give a folder outside it"
        )
    if inside(inp, out):
        raise OutputNotOwned(
            f"the input {input_uri} is inside the output {output}: give a folder apart from it"
        )


def check_settings(
    output: str,
    settings: dict,
    keys: Iterable[str],
    written: bool,
    redo: bool,
    resume: bool = True,
    always: Iterable[str] = (),
) -> bool:
    """Whether the output must be cleared first: rows were ``written`` and the run starts
    over (``resume`` false), or ``redo`` and other settings; raises ``SettingsMismatch`` when
    rows were ``written`` with settings other than ``settings`` (compared on ``keys``,
    against what ``save_settings`` recorded) and the run would add to them. ``always``: keys
    compared even against an output from before ``SETTINGS`` (which cannot have them)."""
    if written and not resume:
        return True
    saved, legacy = _saved_settings(output) if written else (None, False)
    if saved is None:
        return False
    if legacy:  # from before SETTINGS: only what config.yaml could say is compared
        keys = [k for k in keys if k in saved or k in always]
    differ = [
        f"{k}: {saved.get(k)!r} then, {settings.get(k)!r} now"
        for k in keys
        if saved.get(k) != settings.get(k)
    ]
    if not differ:
        return False
    if redo:
        logger.warning("redo: %s was made with other settings (%s)", output, "; ".join(differ))
        return True
    raise SettingsMismatch(
        f"{output} holds rows made with other settings ({'; '.join(differ)}): they would be "
        "mixed with new ones. Re-run with --redo to replace them, or write to another output"
    )


def save_settings(output: str, settings: dict, config_yaml: str) -> None:
    """The run's settings, before it writes a row: ``config.yaml`` (the config, to read or
    run again) and ``SETTINGS`` (what the next run's ``check_settings`` compares, with what
    the config cannot say, such as the checkpoint's content digest)."""
    storage.write_bytes(storage.join(output, "config.yaml"), config_yaml.encode())
    storage.write_bytes(storage.join(output, SETTINGS), json.dumps(settings, indent=2).encode())


def _saved_settings(output: str) -> tuple[dict | None, bool]:
    """What the last run saved, and whether it is an output from before ``SETTINGS`` (its
    ``config.yaml`` then)."""
    uri = storage.join(output, SETTINGS)
    if storage.exists(uri):
        return json.loads(storage.read_bytes(uri)), False
    legacy = storage.join(output, "config.yaml")
    if storage.exists(legacy):
        return yaml.safe_load(storage.read_bytes(legacy)) or {}, True
    return None, False


def publish(output: str, lease: Lease, summary: dict, state: dict | None = None) -> None:
    """A run's end: ``summary.json`` and the ``DONE`` marker, written while the run still
    holds the output's lease (``LeaseLost`` otherwise). ``state``: a run that left nothing
    to do records what it read and wrote (``finished_state``), for ``up_to_date``."""
    lease.check()
    storage.write_bytes(
        storage.join(output, "summary.json"), json.dumps(summary, indent=2).encode()
    )
    mark_done(output, summary | ({STATE: state} if state else {}))


STATE = "finished_state"  # in DONE: what a run with nothing left to do read and wrote


def finished_state(output: str, input_kind: str, input_uri: str) -> dict | None:
    """What a run that failed nothing leaves behind, cheaply told apart from anything else:
    its input's size and modification time (a manifest or one file: one metadata request)
    and every file of the output's folders with its size (one listing). None for a folder
    or a packed input (their listing is the corpus: the next run's resume decides)."""
    if input_kind not in ("manifest", "file", "addresses"):
        return None
    import pyarrow.fs as pafs

    fs, path = storage.filesystem(input_uri)
    info = fs.get_file_info(path)
    if info.type != pafs.FileType.File:
        return None
    mtime = info.mtime.isoformat() if info.mtime else None
    skip = {DONE, LEASE, "summary.json"}  # what publishing and leasing rewrite
    root = storage.absolute(output).rstrip("/")  # names relative to it, whatever the cwd
    files = {
        uri.removeprefix(root + "/"): size
        for uri, size in storage.file_sizes(root).items()
        if uri.rsplit("/", 1)[-1] not in skip and f"/{SCRATCH}/" not in uri
    }
    return {"input": [storage.absolute(input_uri), info.size, mtime], "files": files}


def up_to_date(output: str, input_kind: str, input_uri: str) -> dict | None:
    """The last run's marker (its summary, and its ``STATE``: what a re-run records again)
    when it left nothing to do and nothing changed since: it ended
    (``DONE``) having failed nothing, on the same input file as it is now, and the output
    holds the files it left, at their sizes. A re-run then starts no Ray at all; anything
    else (a file removed or added, the manifest edited, a failure to try again) runs as
    usual and its resume decides. Checked after ``check_settings``."""
    uri = storage.join(output, DONE)
    if not storage.exists(uri):
        return None
    done = json.loads(storage.read_bytes(uri))
    state = done.get(STATE)
    if not state or state != finished_state(output, input_kind, input_uri):
        return None
    return done


def mark_done(output: str, summary: dict) -> None:
    storage.write_bytes(storage.join(output, DONE), json.dumps(summary, indent=2).encode())


def clear_done(output: str) -> None:
    uri = storage.join(output, DONE)
    if storage.exists(uri):
        storage.delete_file(uri)


def truncated_parquet(uri: str) -> bool:
    """True only when the file provably lacks its footer (a writer killed mid-file): shorter
    than a Parquet file can be, or not ending in the ``PAR1`` magic. A read error raises."""
    import pyarrow.fs as pafs

    fs, path = storage.filesystem(uri)
    info = fs.get_file_info(path)
    if info.type == pafs.FileType.NotFound:
        raise FileNotFoundError(uri)
    size = info.size or 0
    if size < 12:
        return True
    with fs.open_input_file(path) as f:
        f.seek(size - 4)
        return f.read(4) != b"PAR1"


def drop_truncated(folder: str) -> None:
    """Before a run reads or adds to ``folder``'s Parquet files: a file cut short by a crash
    (no footer) is removed, so its rows are redone; a file that cannot be read now (a network
    error) stops the run and is kept. extract (features) and recognize (predictions) both."""
    for uri in storage.list_files(folder, (".parquet",)):
        try:
            truncated = truncated_parquet(uri)
        except OSError as err:
            raise OSError(
                f"cannot read {uri} to resume ({err}); nothing was removed: run again when "
                "it can be read"
            ) from err
        if truncated:
            logger.warning("removing %s: cut short (no Parquet footer); its rows are redone", uri)
            storage.delete_file(uri)


# The folders of a `raymer recognize` output.
RECOGNIZE_FOLDERS = ("predictions", "recordings", "errors", "features", "plots", "exports")


@dataclass(frozen=True)
class RecognizeOutput:
    """The folders of a recognize output (URIs); the input listing and the pending rows are
    scratch space, under ``outputs.SCRATCH`` (a name no user folder has)."""

    root: str
    predictions: str
    recordings: str
    errors: str
    features: str
    plots: str
    exports: str
    scratch: str
    inputs: str  # the listing of a folder input (scratch)
    pending: str  # parts of recordings not yet whole (scratch)

    @classmethod
    def at(cls, root: str) -> RecognizeOutput:
        scratch = storage.join(root, SCRATCH)
        named = {name: storage.join(root, name) for name in RECOGNIZE_FOLDERS}
        inner = {n: storage.join(scratch, n) for n in ("inputs", "pending")}
        return cls(root=root, scratch=scratch, **named, **inner)

    def folder(self, name: str) -> str:
        """One of ``RECOGNIZE_FOLDERS`` by name."""
        return getattr(self, name)
