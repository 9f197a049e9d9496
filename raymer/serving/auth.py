"""Who may call ``raymer serve``: the bearer token (read, hashed, compared in constant time,
required off loopback) and, without a token, the anonymous guard (a Host outside
``allowed_hosts`` 421, another site's page 403), after the method check that routing would
make (405 before any guard)."""

from __future__ import annotations

import hashlib
import hmac
import os

from fastapi import Request
from fastapi.responses import Response

from raymer.config import ServeConfig
from raymer.errors import UsageError
from raymer.serving.ingress import error

API_TOKEN_ENV = "RAYMER_API_TOKEN"


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def authorized(header: str, digest: str) -> bool:
    """Compares in constant time (hmac), on digests: no timing tells a token's prefix."""
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not given:
        return False
    return hmac.compare_digest(token_digest(given.strip()), digest)


def resolve_token(cfg: ServeConfig) -> str | None:
    """The bearer token: ``auth_token``, the file ``auth_token_file`` names, or
    ``$RAYMER_API_TOKEN``; None: the API is open."""
    if cfg.auth_token:
        return cfg.auth_token
    if cfg.auth_token_file:
        from raymer import storage

        try:
            token = storage.read_bytes(cfg.auth_token_file).decode().strip()
        except FileNotFoundError:
            raise FileNotFoundError(
                f"auth_token_file {cfg.auth_token_file} does not exist: mount the token there, "
                "or set allow_anonymous: true to serve without one"
            ) from None
        if not token:
            raise UsageError(f"auth_token_file {cfg.auth_token_file} is empty")
        return token
    return os.environ.get(API_TOKEN_ENV) or None


SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
TOKEN_DIGEST_ENV = "RAYMER_API_TOKEN_SHA256"  # what the replica gets: never the token itself
CORS_ENV = "RAYMER_CORS_ORIGINS"
HOSTS_ENV = "RAYMER_ALLOWED_HOSTS"


def replica_settings() -> dict:
    """Auth and CORS of this replica, from its environment (set by ``app.build_app``
    through the Api deployment's runtime_env: Serve pickles the ingress by value, so module
    state set at run time would not be shared between the middleware and the class). The
    runtime_env is shown by Ray's dashboard, so it holds the token's SHA-256, not the
    token."""
    origins = os.environ.get(CORS_ENV, "")
    hosts = os.environ.get(HOSTS_ENV, "localhost,127.0.0.1,[::1]")
    return {
        "cors": [o for o in origins.split(",") if o],
        "hosts": [h for h in hosts.split(",") if h],
        "token_sha256": os.environ.get(TOKEN_DIGEST_ENV) or None,
    }


SAME_SITE_FETCHES = ("same-origin", "none")  # Sec-Fetch-Site of the page itself, or a typed URL


def anonymous_refusal(request: Request, settings: dict) -> Response | None:
    """Without a token, what a web page the user visits could do to a service on their
    machine is refused, and nothing else: a ``Host`` not in ``allowed_hosts`` (a
    DNS-rebinding page reading the answers) gets 421; a POST that a browser sends for
    another site's page gets 403. A browser says so itself: it sends ``Origin`` with every
    POST (a form's too) and ``Sec-Fetch-Site``; an origin other than this service's and not
    in ``cors_origins``, or a cross-site fetch without one, is refused. A script (``curl``,
    ``requests``, the client) sends neither, and is answered as with a token, whatever its
    content type (a multipart upload included)."""
    found = refusal(request.headers, request.method, settings)
    return None if found is None else error(*found)


def refusal(headers, method: str, settings: dict, hosts: bool = True) -> tuple[int, str] | None:
    """``anonymous_refusal``'s rule on a request's headers: (status, why), or None. A
    WebSocket (``method`` ``WEBSOCKET``) is checked for its origin as a POST is: a page on
    another site must not open a socket to this service (``hosts`` False: the ``Host`` is
    not checked, as with a token)."""
    host = headers.get("host", "")
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    allowed = settings["hosts"]
    if hosts and "*" not in allowed and name.lower() not in allowed:
        return 421, f"this service does not answer for host {host!r} (allowed_hosts)"
    if method in SAFE_METHODS:
        return None
    origin = headers.get("origin")
    cors = "*" in settings["cors"] or origin in settings["cors"]
    if origin and origin not in (f"http://{host}", f"https://{host}") and not cors:
        return 403, f"requests from {origin} are not allowed (cors_origins)"
    fetch = headers.get("sec-fetch-site", "").strip().lower()
    if not origin and fetch and fetch not in SAME_SITE_FETCHES:
        return 403, f"a {fetch} request from a web page is not allowed (cors_origins)"
    return None


METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def wrong_method(app, request: Request) -> Response | None:
    """405 (with ``Allow``) for a path the API has but not with this method: answered
    before any guard, as routing would. Asks the app's own routes whether the path would be
    served with each method (their ``matches``: included routers and prefixes alike)."""
    from starlette.routing import Match

    def served(method: str) -> bool:
        scope = {**request.scope, "method": method}
        return any(r.matches(scope)[0] is Match.FULL for r in app.router.routes)

    if request.method == "OPTIONS" or served(request.method):
        return None
    allow = [m for m in METHODS if m != request.method and served(m)]
    if not allow:
        return None  # no such path: routing answers 404
    response = error(405, f"{request.method} is not a method of {request.url.path}")
    response.headers["Allow"] = ", ".join(allow)
    return response


LOOPBACK = ("127.0.0.1", "localhost", "::1")


def listening_host(cfg: ServeConfig) -> str:
    """The address Serve's HTTP proxies listen on: the running Serve's own (``serve deploy``
    takes it from the config file's ``http_options``, whatever ``host`` says), else
    ``cfg.host``."""
    try:
        import ray
        from ray.serve.context import _get_global_client

        if ray.is_initialized():
            client = _get_global_client(raise_if_no_controller_running=False)
            if client is not None and client.http_config.host:
                return client.http_config.host
    except Exception:  # no Serve yet (this process starts it with cfg.host)
        pass
    return cfg.host


def check_exposure(cfg: ServeConfig, token: str | None, host: str | None = None) -> None:
    """Refuse to open the API to the network without a token, unless asked to: ``host`` is
    the address Serve listens on (``listening_host``); either it or ``cfg.host`` off
    loopback needs a token."""
    exposed = [h for h in (cfg.host, host) if h and h not in LOOPBACK]
    if exposed and not token and not cfg.allow_anonymous:
        raise UsageError(
            f"serving on {exposed[-1]} without a token lets anyone who reaches port {cfg.port} "
            "use the API: set auth_token, auth_token_file or RAYMER_API_TOKEN, or "
            "allow_anonymous=true"
        )
