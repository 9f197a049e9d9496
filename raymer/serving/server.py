"""Run the Serve application locally (``raymer serve``), or on the Ray cluster at RAY_ADDRESS."""

from __future__ import annotations

import time
import urllib.request

from raymer.config import ServeConfig

APP_NAME = "raymer"


def check_checkpoint(cfg: ServeConfig) -> None:
    """Fail before Ray starts when the checkpoint is not there, naming what is missing."""
    from raymer.trained import checkpoint

    main, text = checkpoint.models_of(cfg.checkpoint)
    try:
        checkpoint.resolve(main)
        if cfg.text_checkpoint or text:
            checkpoint.resolve(cfg.text_checkpoint or text)
    except FileNotFoundError as err:
        hint = (
            " (run `make demo` first: it trains the sample model)" if "runs/sample" in main else ""
        )
        raise FileNotFoundError(f"cannot serve: {err}{hint}") from None


def start(cfg: ServeConfig, timeout_s: float = 300.0) -> str:
    """Deploy the application and wait until a model replica answers; returns the base URL."""
    from ray import serve

    from raymer.console import quiet_ray
    from raymer.runtime import init_ray
    from raymer.serving.app import build_app

    check_checkpoint(cfg)
    init_ray()
    serve.start(http_options={"host": cfg.host, "port": cfg.port})
    quiet_ray()  # Serve's own loggers, configured by its start
    serve.run(build_app(cfg.model_dump(mode="json")), name=APP_NAME, route_prefix="/")
    quiet_ray()
    host = "127.0.0.1" if cfg.host in ("0.0.0.0", "::") else cfg.host
    url = f"http://{host}:{cfg.port}"
    wait_ready(url, timeout_s)
    return url


def wait_ready(url: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(f"{url}/readyz", timeout=15) as response:
                if response.status == 200:
                    return
        except Exception:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} was not ready within {timeout_s:g} s")
        time.sleep(0.5)


class Stopped(Exception):
    """A stop signal arrived (``on_stop_signals``)."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def on_stop_signals() -> None:
    """SIGTERM and SIGINT raise ``Stopped`` in the main thread, so the caller's ``finally``
    shuts Serve down (draining the requests in flight) and the process exits 0, instead of
    dying in Ray's own handler with a stack trace. Call after Ray started (its handlers are
    replaced)."""
    import signal

    def handler(signum, _frame):
        signal.signal(signum, signal.SIG_IGN)  # a second signal does not cut the drain short
        raise Stopped(signal.Signals(signum).name)

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, handler)


def stop(drain_s: float = 120.0) -> None:
    """Shut Serve down once the requests in flight are answered (the ingress counts them;
    at most ``drain_s`` seconds): Serve's own shutdown closes its proxies' connections."""
    from ray import serve

    try:
        handle = serve.get_app_handle(APP_NAME)
        deadline = time.monotonic() + drain_s
        while handle.in_flight.remote().result(timeout_s=10) and time.monotonic() < deadline:
            time.sleep(0.2)
    except Exception:  # no application, or an ingress that does not answer: shut down as it is
        pass
    serve.shutdown()
