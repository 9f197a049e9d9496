"""The WebSocket ``/v1/stream``: a live recording over the service (``raymer.inference.live``).

The client sends audio as binary messages: raw PCM (``?format=pcm16``, the default, or
``f32``; ``rate`` and ``channels`` say its layout) or encoded chunks (``?format=encoded``:
a browser's MediaRecorder WebM/Opus, Ogg, ...; the one decoder reads them). The ingress
cuts the audio at its pauses as it arrives and asks the model replicas to judge each
segment; it sends JSON text messages:

- ``{"type": "ready", "format", "rate", "channels", "interim", "limits": {...}}`` first;
- ``{"type": "segment", "final": false, "index", "start", "end", "text", "label",
  "emotions", ...}`` as soon as a segment's pause is heard (``?interim=false``: none);
- ``{"type": "segment", "final": true, ...}`` when its Whisper window is complete: the
  answer the same audio gets as a file;
- ``{"type": "result", "result": {...}}`` after the client's ``{"type": "end"}`` (or at the
  longest stream): the file endpoint's answer for the whole recording; then close 1000.

Without a token in ``Authorization``, a service that has one takes it from the first message
(``{"type": "auth", "token": "..."}``: a browser cannot set headers on a socket). Every
limit closes the stream with a code and a reason (``CLOSE``), its memory let go; the others
and ``/healthz`` go on.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import dataclass

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from raymer.audio.streaming import Encoded, Pcm
from raymer.config import ServeConfig
from raymer.errors import AudioError
from raymer.serving import auth

logger = logging.getLogger(__name__)

# close codes (RFC 6455): done, a policy (auth, origin, host, idle, not reading), data that
# is not audio or a message that is not the protocol's, too big (a message, the stream),
# an error of the service, too many streams now (try again later)
CLOSE = {"done": 1000, "policy": 1008, "unsupported": 1003, "too_big": 1009, "error": 1011}
CLOSE["again"] = 1013
FORMATS = ("pcm16", "f32", "encoded")


@dataclass(frozen=True)
class StreamParams:
    """What a client asked for in the socket's query string."""

    format: str = "pcm16"
    rate: int = 16_000
    pcm_channels: int = 1  # (the query's `channels`)
    interim: bool = True

    def to_api(self) -> dict:
        return {"format": self.format, "rate": self.rate, "channels": self.pcm_channels,
                "interim": self.interim}  # fmt: skip


class Refused(Exception):
    """Why a stream is closed: its close code and reason (at most 123 bytes)."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code, self.reason = CLOSE[code], reason.encode()[:123].decode(errors="ignore")


def params_of(query, interim: bool) -> StreamParams:
    """The query string's ``format``, ``rate``, ``channels`` and ``interim``, checked."""
    form = query.get("format", "pcm16")
    if form not in FORMATS:
        raise Refused("policy", f"format {form!r}: one of {', '.join(FORMATS)}")
    try:
        rate, channels = int(query.get("rate", 16_000)), int(query.get("channels", 1))
    except ValueError:
        raise Refused("policy", "rate and channels are whole numbers") from None
    if not 8_000 <= rate <= 192_000 or not 1 <= channels <= 8:
        raise Refused("policy", f"rate {rate} (8000-192000) or channels {channels} (1-8)")
    said = query.get("interim", "true" if interim else "false").lower()
    if said not in ("true", "false", "1", "0"):
        raise Refused("policy", f"interim={said!r}: true or false")
    return StreamParams(form, rate, channels, said in ("true", "1"))


class Streams:
    """The live streams an ingress replica holds, in all and per client address: a stream
    past ``max_streams`` or ``max_streams_per_client`` is refused (1013)."""

    def __init__(self, cfg: ServeConfig) -> None:
        self.cfg, self.open, self.per = cfg.live, 0, {}
        self.first_come = FirstCome()  # one rule for every stream of this ingress

    def take(self, client: str) -> None:
        if self.open >= self.cfg.max_streams:
            raise Refused("again", f"{self.open} live streams already (max_streams)")
        if self.per.get(client, 0) >= self.cfg.max_streams_per_client:
            raise Refused("again", f"{self.per[client]} live streams from you already")
        self.open += 1
        self.per[client] = self.per.get(client, 0) + 1

    def give(self, client: str) -> None:
        self.open -= 1
        self.per[client] -= 1
        if not self.per[client]:
            del self.per[client]


async def serve_stream(ws: WebSocket, cfg: ServeConfig, settings: dict, streams: Streams, judge):
    """One live stream, from its checks to its close. ``judge()``: a coroutine giving the
    three stages and the ``Judging`` (asked once the stream is accepted)."""
    client = ws.client.host if ws.client else "?"
    await ws.accept()
    try:
        guard(ws, settings)
        streams.take(client)
    except Refused as refused:
        await _close(ws, refused)
        return
    try:
        await _session(ws, cfg, settings, judge, streams.first_come)
    except Refused as refused:
        await _close(ws, refused)
    except WebSocketDisconnect:  # the client left: what it had is let go
        logger.info("a live stream's client left")
    except Exception as err:  # the service's own failure: said, and the stream closed
        logger.warning("live stream failed: %s", err)
        await _close(ws, Refused("error", f"the service failed: {type(err).__name__}: {err}"))
    finally:
        streams.give(client)


def guard(ws: WebSocket, settings: dict) -> None:
    """The HTTP API's guards, for a socket: the Host allow-list without a token, and the
    origin always (a page on another site must not open one: cross-site hijacking)."""
    found = auth.refusal(ws.headers, "WEBSOCKET", settings, hosts=not settings["token_sha256"])
    if found is not None:
        raise Refused("policy", found[1])


async def _session(ws: WebSocket, cfg: ServeConfig, settings: dict, judge, first_come) -> None:
    from raymer.inference.live import Live

    params = params_of(ws.query_params, cfg.live.interim)
    await _authorized(ws, cfg, settings)
    audio = _reader(params, cfg)
    speech, encode, score, judging = await judge()
    live = Live(speech, encode, score, judging, params.interim, defer=True)
    out = _Sender(ws, cfg)
    await out.send({"type": "ready", **params.to_api(), "limits": cfg.live.model_dump()})
    judged = asyncio.Event()  # set after each message's audio: windows may be complete
    finals = asyncio.create_task(_finals(live, out, first_come, judged))
    try:
        message = await _receive(ws, cfg)
        while message is not None:
            if live.heard_s > cfg.live.max_stream_s:
                await _finish(out, live, audio, finals)
                raise Refused(
                    "too_big", f"the stream passed max_stream_s={cfg.live.max_stream_s:g}"
                )
            try:
                samples = audio.push(message)
            except AudioError as err:
                raise Refused("unsupported", f"not audio: {err}") from None
            async with first_come.first():  # a segment's first answer goes before any final
                events = await live.afeed(samples)
            for event in events:
                await out.send(event.to_api())
            judged.set()
            message = await _receive(ws, cfg)
        await _finish(out, live, audio, finals)
        await ws.close(CLOSE["done"], "done")
    finally:
        finals.cancel()
        if isinstance(audio, Encoded):
            audio.abort()


async def _finals(live, out, first_come, judged: asyncio.Event) -> None:
    """The final answers, judged while the stream goes on, a window at a time and only when
    no segment's first answer is waiting (on this ingress): they never delay one by more
    than the window being judged."""
    while True:
        await judged.wait()
        judged.clear()
        while live.windows:
            await first_come.idle()
            for event in await live.afinals(1):
                await out.send(event.to_api())


class FirstCome:
    """The ingress's rule between the two answers of live segments: a first (interim)
    answer is judged before any final one; ``idle`` waits until none is in flight."""

    def __init__(self) -> None:
        self.busy, self.free = 0, asyncio.Event()
        self.free.set()

    @contextlib.asynccontextmanager
    async def first(self):
        self.busy += 1
        self.free.clear()
        try:
            yield
        finally:
            self.busy -= 1
            if not self.busy:
                self.free.set()

    async def idle(self) -> None:
        await self.free.wait()


class _Sender:
    """Sends events one at a time (the reader's and the finals' tasks share the socket),
    each within ``send_timeout_s``: a client that stopped reading is closed, not buffered
    for."""

    def __init__(self, ws: WebSocket, cfg: ServeConfig) -> None:
        self.ws, self.cfg, self.lock = ws, cfg, asyncio.Lock()

    async def send(self, event: dict) -> None:
        async with self.lock:
            try:
                await asyncio.wait_for(
                    self.ws.send_text(json.dumps(event)), timeout=self.cfg.live.send_timeout_s
                )
            except TimeoutError:
                raise Refused("policy", "the client does not read its events") from None


async def _finish(out: _Sender, live, audio, finals: asyncio.Task) -> None:
    """The end: the finals' task stopped (a window it was judging stays queued), the last
    audio and every final answer left, then the recording's."""
    finals.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await finals
    try:
        rest = audio.finish()
    except AudioError as err:
        raise Refused("unsupported", f"not audio: {err}") from None
    first = (await live.afeed(rest) if rest.size else []) + await live.aend()
    for event in first:  # the last segments' first answers before the finals are judged
        await out.send(event.to_api())
    try:
        events = await live.aclose()
    except AudioError as err:
        raise Refused("unsupported", str(err)) from None
    for event in events:
        await out.send(event.to_api())


def _reader(params: StreamParams, cfg: ServeConfig):
    if params.format == "encoded":
        longest = cfg.live.max_stream_s + 60.0  # a live stream's own length and pace
        limits = cfg.decode.model_copy(
            update={"max_duration_s": longest, "decode_timeout_s": 2 * longest}
        )
        return Encoded(limits)
    return Pcm(params.rate, params.pcm_channels, "s16" if params.format == "pcm16" else "f32")


async def _authorized(ws: WebSocket, cfg: ServeConfig, settings: dict) -> None:
    """Nothing to do without a token; else its ``Authorization`` header, or a first message
    ``{"type": "auth", "token"}`` (browsers)."""
    digest = settings["token_sha256"]
    if not digest or auth.authorized(ws.headers.get("authorization", ""), digest):
        return None
    message = await _receive(ws, cfg, text=True)
    token = ""
    if isinstance(message, str):
        try:
            token = str(json.loads(message).get("token", ""))
        except (ValueError, AttributeError):
            token = ""
    if not token or not auth.authorized(f"Bearer {token}", digest):
        raise Refused("policy", 'missing or wrong token (send {"type": "auth", "token": ...})')


async def _receive(ws: WebSocket, cfg: ServeConfig, text: bool = False):
    """The next audio message (None: the client said ``end``); with ``text``, a text message
    may be returned as it is (the auth message)."""
    try:
        message = await asyncio.wait_for(ws.receive(), timeout=cfg.live.idle_timeout_s)
    except TimeoutError:
        raise Refused("policy", f"nothing sent in {cfg.live.idle_timeout_s:g} s") from None
    if message["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(message.get("code", 1000))
    data, said = message.get("bytes"), message.get("text")
    size = len(data) if data is not None else len((said or "").encode())
    if size > cfg.live.max_message_kb * 1024:
        raise Refused("too_big", f"a message of {size:,} bytes (max_message_kb)")
    if data is not None:
        return data
    if text:
        return said
    try:
        kind = json.loads(said or "").get("type")
    except (ValueError, AttributeError):
        kind = None
    if kind != "end":
        raise Refused("unsupported", 'text messages: {"type": "end"} (audio goes as binary)')
    return None


async def _close(ws: WebSocket, refused: Refused) -> None:
    if ws.application_state != WebSocketState.DISCONNECTED:
        with contextlib.suppress(Exception):  # already gone
            await ws.close(refused.code, refused.reason)


def stages_of(model, split, info: dict, cfg: ServeConfig):
    """The three stages (``layout: single``: the ``Model`` replica's, one call each; split:
    the stage deployments') and the ``Judging`` a live recording runs over."""
    from raymer.serving.deployments import judging_of

    judging = judging_of(info, cfg)
    if split is not None:
        return (*split.stages(), judging)

    def stage(name: str):
        async def call(*args):
            return await model.stage.remote(name, *args)

        return call

    return stage("speech"), stage("encode"), stage("score"), judging
