"""An output folder of ``extract`` or ``recognize``: one run at a time, one set of settings,
a marker when a run finished, and nothing deleted that is not provably broken.

- ``Lease``: ``OUTPUT/_lease.json`` names the run writing there (host, pid, run id) and is
  renewed every ``HEARTBEAT_S``; a second run is refused while the lease is fresh, and takes
  it over once it is older than ``STALE_S`` (its run died), or at once when it names a
  process of this host that is gone (a killed driver). Local and s3://.
- ``check_settings``: rows already written with other settings (another model, text source,
  frame rate...) are never mixed with new ones: the run is refused with the settings that
  differ, or (``redo``) the old output is removed first.
- ``DONE``: ``OUTPUT/_SUCCESS.json`` is written when a run ends, removed when one starts.
- ``truncated_parquet``: a file is only taken for a crash's leftover (and removed) when its
  footer is missing; a read error (S3 throttling, a permission) stops the run instead.
- ``claim``: an output folder belongs to raymer: a run writes ``OWNER`` into a new or empty
  folder, refuses one holding anything it does not write (a user's files are never
  overwritten or deleted), an output inside its input folder and an input inside its output;
  its scratch space (listings, staged rows) lives under ``SCRATCH``, a name no user folder has.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterable

import yaml

from raymer import storage
from raymer.errors import RunError, UsageError

logger = logging.getLogger(__name__)

LEASE = "_lease.json"
DONE = "_SUCCESS.json"
OWNER = "_raymer.json"  # this folder is the output of a raymer command (which one, since when)
SCRATCH = "_raymer_scratch"  # what a run writes for itself and removes: listings, staged rows
RUN_FILES = (OWNER, SCRATCH, LEASE, DONE, "config.yaml", "summary.json")
HEARTBEAT_S = 15.0
STALE_S = 90.0


class OutputInUse(RunError):
    """Another run holds the output's lease."""


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
    foreign = sorted(found - set(names) - set(RUN_FILES))
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


class Lease:
    """``with Lease(output):`` holds ``OUTPUT/_lease.json`` for the run (renewed in a thread)."""

    def __init__(self, output: str, stale_s: float = STALE_S, heartbeat_s: float = HEARTBEAT_S):
        self.uri = storage.join(output, LEASE)
        self.output, self.stale_s, self.heartbeat_s = output, stale_s, heartbeat_s
        self.record = {"run_id": uuid.uuid4().hex, "host": socket.gethostname(), "pid": os.getpid()}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Lease:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def acquire(self) -> None:
        held = self._read()
        if held is not None and held.get("run_id") != self.record["run_id"]:
            age = time.time() - float(held.get("heartbeat", 0))
            if age < self.stale_s and not self._dead_here(held):
                raise OutputInUse(
                    f"another run is writing {self.output}: {held.get('host')} pid "
                    f"{held.get('pid')}, last seen {age:.0f} s ago. Wait for it to end (a run "
                    f"that died leaves its lease, taken over {self.stale_s:g} s after its last "
                    "heartbeat), or write to another output"
                )
            logger.warning(
                "taking over the lease of %s from a run not seen for %.0f s (%s pid %s)",
                self.output,
                age,
                held.get("host"),
                held.get("pid"),
            )
        storage.makedirs(self.output)
        self._write(exclusive=held is None)
        time.sleep(0.05)
        if (self._read() or {}).get("run_id") != self.record["run_id"]:  # lost a race
            raise OutputInUse(f"another run took {self.output} at the same moment")
        self._thread = threading.Thread(target=self._beat, name="raymer-lease", daemon=True)
        self._thread.start()

    @staticmethod
    def _dead_here(held: dict) -> bool:
        """A lease of a process on this host that no longer runs (killed): stale at once."""
        if held.get("host") != socket.gethostname() or not isinstance(held.get("pid"), int):
            return False
        try:
            os.kill(held["pid"], 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if (self._read() or {}).get("run_id") == self.record["run_id"]:
            storage.delete_file(self.uri)

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            try:
                self._write(exclusive=False)
            except Exception as err:  # a missed heartbeat is not a failed run
                logger.warning("could not renew the lease %s: %s", self.uri, err)

    def _write(self, exclusive: bool) -> None:
        data = json.dumps(self.record | {"heartbeat": time.time()}).encode()
        if exclusive and not storage.is_remote(self.uri):
            try:  # local: created only if absent, atomically
                fd = os.open(self.uri, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                raise OutputInUse(f"another run took {self.output} at the same moment") from None
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            return
        storage.write_bytes(self.uri, data)

    def _read(self) -> dict | None:
        try:
            return json.loads(storage.read_bytes(self.uri))
        except FileNotFoundError:
            return None
        except (ValueError, UnicodeDecodeError):
            return {}  # half-written: an old run's, taken over as stale


def check_settings(
    output: str,
    settings: dict,
    keys: Iterable[str],
    written: bool,
    redo: bool,
    resume: bool = True,
) -> bool:
    """Whether the output must be cleared first: rows were ``written`` and the run starts
    over (``resume`` false), or ``redo`` and other settings; raises ``SettingsMismatch`` when
    rows were ``written`` with settings other than ``settings`` (compared on ``keys``,
    against ``OUTPUT/config.yaml``) and the run would add to them."""
    if written and not resume:
        return True
    saved_uri = storage.join(output, "config.yaml")
    if not written or not storage.exists(saved_uri):
        return False
    saved = yaml.safe_load(storage.read_bytes(saved_uri)) or {}
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
