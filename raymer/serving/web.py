"""The FastAPI application the ingress (``app.Api``) is bound to: its description, the
guard every request passes first (a method the route does not take, then the Host and
origin rules without a token, then the token, and CORS), the API's error shape for
FastAPI's and Starlette's own errors, and the page.

No `from __future__ import annotations` here: FastAPI reads the real types.
"""

from importlib import resources

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from raymer import __version__
from raymer.serving import auth, ingress

OPEN_PATHS = {"/", "/healthz", "/readyz", "/docs", "/openapi.json", "/docs/oauth2-redirect"}

api = FastAPI(
    title="raymer",
    version=__version__,
    description="Emotion recognition from speech and its transcript (co-attention fusion of "
    "Whisper and MiniLM features). Upload audio to /v1/recognize; text to /v1/recognize/text; "
    "stream live audio over the WebSocket /v1/stream (its messages and close codes: the "
    "README's Live section, and raymer.serving.live).",
)


def page_html(auth: bool) -> str:
    """The page the service serves at ``/`` (``auth``: it asks for the token)."""
    html = resources.files("raymer.serving").joinpath("page.html").read_text()
    return html.replace("__AUTH__", "true" if auth else "false")


class TextRequest(BaseModel):
    text: str = Field(
        ...,
        min_length=1,
        pattern=r"\S",
        description="The text to score (at least one character that is not a space).",
        examples=["I can't believe it!"],
    )


@api.middleware("http")
async def _cors_and_auth(request: Request, call_next):
    settings = auth.replica_settings()
    origin = request.headers.get("origin")
    allowed = settings["cors"]
    cors = origin and ("*" in allowed or origin in allowed)
    preflight = request.method == "OPTIONS" and cors
    # the app serving this request (a replica's copy of ``api``, whose routes the ingress
    # class added; this module's own ``api`` may have none there)
    wrong = auth.wrong_method(request.app, request)
    if wrong is not None:  # before any guard: the method is not the route's
        return ingress.with_cors(wrong, origin if cors else None)
    refused = None if settings["token_sha256"] else auth.anonymous_refusal(request, settings)
    if refused is not None:
        return refused
    if preflight:
        response = Response(status_code=204)
    else:
        digest = settings["token_sha256"]
        guarded = digest and request.url.path not in OPEN_PATHS and request.method != "OPTIONS"
        if guarded and not auth.authorized(request.headers.get("authorization", ""), digest):
            response = ingress.error(
                401, "missing or wrong bearer token (send 'Authorization: Bearer TOKEN')"
            )
            response.headers["WWW-Authenticate"] = "Bearer"
            return ingress.with_cors(response, origin if cors else None)
        response = await call_next(request)
    return ingress.with_cors(response, origin if cors else None)


@api.exception_handler(StarletteHTTPException)
async def _http_error(request: Request, err: StarletteHTTPException) -> JSONResponse:
    """FastAPI's and Starlette's own errors (an unknown path 404, a wrong method 405, a body
    it cannot parse 400) in the API's error shape, not ``{"detail": ...}``."""
    response = ingress.error(err.status_code, str(err.detail))
    for name, value in (err.headers or {}).items():
        response.headers[name] = value
    return response


@api.exception_handler(RequestValidationError)
async def _invalid(request: Request, err: RequestValidationError) -> JSONResponse:
    """A body outside the documented schema: 422 in the API's own error shape; a body that
    is not JSON at all: 400."""
    if any(e.get("type") == "json_invalid" for e in err.errors()):
        return ingress.error(400, 'the body is not valid JSON: send {"text": "..."}')
    problems = []
    for e in err.errors():
        where = ".".join(str(p) for p in e.get("loc", ()) if p != "body")
        empty = where == "text" and e.get("type") in ("string_too_short", "string_pattern_mismatch")
        problems.append("the text is empty" if empty else f"{where or 'body'}: {e.get('msg')}")
    return ingress.error(422, "; ".join(problems) or "invalid request body")


@api.exception_handler(Exception)
async def _unexpected(request: Request, err: Exception) -> JSONResponse:
    """Whatever goes wrong is answered in JSON, like every other error."""
    return ingress.error(500, f"internal error: {type(err).__name__}")
