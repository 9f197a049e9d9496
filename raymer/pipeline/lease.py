"""One run at a time per output: ``OUTPUT/_lease.json`` names the run writing there (host,
pid, run id) and is renewed every ``HEARTBEAT_S``; a second run is refused while the lease
is fresh (``OutputInUse``), and takes it over once it is older than ``STALE_S`` (its run
died), or at once when it names a process of this host that is gone (a killed driver); a
run that cannot renew it for ``STALE_S`` stops (``LeaseLost``). Created exclusively, local
and s3://. The rest of an output's rules are ``raymer.pipeline.outputs``.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid

from raymer import storage
from raymer.errors import RunError

logger = logging.getLogger(__name__)

LEASE = "_lease.json"
HEARTBEAT_S = 15.0
STALE_S = 90.0


class OutputInUse(RunError):
    """Another run holds the output's lease."""


class LeaseLost(RunError):
    """This run's lease could not be renewed for longer than the stale time, or another run
    holds it now: the run stops writing."""


class Lease:
    """``with Lease(output):`` holds ``OUTPUT/_lease.json`` for the run (renewed in a thread).

    Taken by an exclusive create (``O_EXCL`` locally, ``If-None-Match: *`` on s3://) when
    there is none, rewritten whole (``storage.write_bytes``) when renewed or taken over. A
    heartbeat that fails is retried; once the lease has gone unrenewed for ``stale_s`` (when
    another run may take it over), or another run's id is found in it, the run is stopped
    with ``LeaseLost`` instead of writing beside a new holder: the thread that took the lease
    is interrupted (the main thread's ``KeyboardInterrupt``, turned into ``LeaseLost`` on
    leaving the ``with``), and ``check()`` raises it anywhere."""

    def __init__(self, output: str, stale_s: float = STALE_S, heartbeat_s: float = HEARTBEAT_S):
        self.uri = storage.join(output, LEASE)
        self.output, self.stale_s, self.heartbeat_s = output, stale_s, heartbeat_s
        self.record = {"run_id": uuid.uuid4().hex, "host": socket.gethostname(), "pid": os.getpid()}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._renewed = 0.0
        self.lost: str | None = None

    def __enter__(self) -> Lease:
        self.acquire()
        return self

    def __exit__(self, kind, value, tb) -> None:
        self.release()
        if self.lost and (kind is None or issubclass(kind, KeyboardInterrupt)):
            raise LeaseLost(self.lost) from value

    def check(self) -> None:
        """Raises ``LeaseLost`` once the lease is lost (call before writing)."""
        if self.lost:
            raise LeaseLost(self.lost)

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
        if held is None:
            try:
                storage.create_exclusive(self.uri, self._data())
            except FileExistsError:
                raise OutputInUse(f"another run took {self.output} at the same moment") from None
        else:
            storage.write_bytes(self.uri, self._data())
            time.sleep(0.05)
            if (self._read() or {}).get("run_id") != self.record["run_id"]:  # lost a race
                raise OutputInUse(f"another run took {self.output} at the same moment")
        self._renewed = time.monotonic()
        self._owner = threading.current_thread() is threading.main_thread()
        if self._owner:  # a lost lease interrupts the run whatever SIGINT handler it had
            import signal

            self._handler = signal.getsignal(signal.SIGINT)
            signal.signal(signal.SIGINT, self._on_interrupt)
        self._thread = threading.Thread(target=self._beat, name="raymer-lease", daemon=True)
        self._thread.start()

    def _on_interrupt(self, signum, frame) -> None:
        """SIGINT while the lease is held: the lost lease's interrupt (``__exit__`` makes it
        ``LeaseLost``), else whatever the process had installed before (Ctrl-C as ever)."""
        import signal

        previous = self._handler
        if self.lost or previous in (None, signal.SIG_DFL, signal.default_int_handler):
            raise KeyboardInterrupt
        if callable(previous):
            previous(signum, frame)

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
        if getattr(self, "_owner", False):
            import signal

            if signal.getsignal(signal.SIGINT) == self._on_interrupt:
                signal.signal(signal.SIGINT, self._handler)
        if self._thread is not None:
            self._thread.join(timeout=5)
        if not self.lost and (self._read() or {}).get("run_id") == self.record["run_id"]:
            storage.delete_file(self.uri)

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            try:
                held = self._read()
                if held and held.get("run_id") not in (None, self.record["run_id"]):
                    self._lose(
                        f"another run ({held.get('host')} pid {held.get('pid')}) took over "
                        f"the lease of {self.output}"
                    )
                    return
                storage.write_bytes(self.uri, self._data())
                self._renewed = time.monotonic()
            except Exception as err:  # retried until the lease would go stale
                unrenewed = time.monotonic() - self._renewed
                logger.warning("could not renew the lease %s: %s", self.uri, err)
                if unrenewed + self.heartbeat_s >= self.stale_s:
                    self._lose(
                        f"could not renew the lease of {self.output} for {unrenewed:.0f} s "
                        f"({err}); another run may take the output over after "
                        f"{self.stale_s:g} s, so this run stopped writing. Run it again to resume"
                    )
                    return

    def _lose(self, why: str) -> None:
        import signal

        self.lost = why
        logger.error("%s", why)
        if self._owner:  # a KeyboardInterrupt in the main thread, even in a blocking call
            signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)

    def _data(self) -> bytes:
        return json.dumps(self.record | {"heartbeat": time.time()}).encode()

    def _read(self) -> dict | None:
        try:
            return json.loads(storage.read_bytes(self.uri))
        except FileNotFoundError:
            return None
        except (ValueError, UnicodeDecodeError):
            return {}  # not a lease raymer wrote whole: taken over as stale
