"""Settings of ``raymer serve`` and where ``raymer submit`` finds a cluster."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from raymer.config.command import CommandConfig, Part, min_confidence, part
from raymer.config.parts import DecodeConfig, ResourcesConfig, SegmentConfig, SpeechConfig

# Where `raymer submit` and `raymer jobs` find a cluster's dashboard by default.
JOBS_ADDRESS = "http://127.0.0.1:8265"


class LiveConfig(Part):
    """Live recordings over the WebSocket ``/v1/stream`` (``raymer.serving.live``): its
    limits, each closing a stream with its code and reason when passed."""

    max_streams: int = Field(
        16, ge=1, description="Live streams an ingress replica holds at once; beyond: 1013."
    )
    max_streams_per_client: int = Field(
        4, ge=1, description="Live streams from one client address at once; beyond: 1013."
    )
    max_stream_s: float = Field(
        3600.0, gt=0, description="Longest live stream (seconds of audio); then 1009."
    )
    idle_timeout_s: float = Field(
        15.0, gt=0, description="A stream that sends nothing this long is closed (1008)."
    )
    max_message_kb: int = Field(
        256, ge=1, le=16384, description="Largest message a client may send (KB); beyond: 1009."
    )
    send_timeout_s: float = Field(
        10.0,
        gt=0,
        description="A client that does not read an event in this time is closed (1008): the "
        "service never buffers for a client that stopped reading.",
    )
    interim: bool = Field(
        True,
        description="Send each segment's interim answer when its pause is heard (a client "
        "may turn it off with ?interim=false), before its final one.",
    )


class ServeConfig(CommandConfig):
    """Settings of ``raymer serve``: the trained model behind an HTTP API, on Ray Serve."""

    RENAMED = {"max_upload_mb": "decode.max_file_mb", "segments_over_s": "segment.segment_over_s"}
    UNUSED = {
        "resources.asr.actors": "replicas autoscale between min_replicas and max_replicas",
        "resources.model.actors": "replicas autoscale between min_replicas and max_replicas",
        "resources.decode_num_cpus": "uploads are decoded in the ingress (decode_threads)",
    }

    checkpoint: str = Field(
        "runs/sample/compare",
        description="Checkpoint folder, train output, or a `raymer compare` output (its fusion "
        "model, and its text model for /v1/recognize/text); local or s3://. Default: what "
        "`make demo` trains.",
    )
    text_checkpoint: str | None = Field(
        None, description="Text-only model for /v1/recognize/text (default: from a compare output)."
    )
    host: str = Field("127.0.0.1", description="Address to listen on.")
    port: int = Field(8000, ge=1, le=65535, description="HTTP port.")
    min_replicas: int = Field(1, ge=0, description="Fewest model replicas (autoscaling).")
    max_replicas: int = Field(2, ge=1, description="Most model replicas (autoscaling).")
    target_ongoing_requests: float = Field(
        2.0, gt=0, description="Autoscaling target: ongoing requests per model replica."
    )
    upscale_delay_s: float = Field(3.0, ge=0, description="Load must last this long to scale up.")
    downscale_delay_s: float = Field(
        20.0, ge=0, description="Idleness must last this long to scale down."
    )
    max_ongoing_requests: int = Field(
        8, ge=1, description="Requests a model replica works on at once (its batch)."
    )
    max_queued_requests: int = Field(
        16, ge=1, description="Requests waiting for a model replica; beyond this: 503."
    )
    batch_max_size: int = Field(8, ge=1, description="Most clips per model batch (@serve.batch).")
    batch_wait_timeout_s: float = Field(
        0.05, ge=0, description="How long a batch waits to fill before it runs."
    )
    layout: Literal["single", "split"] = Field(
        "single",
        description="single: one Model deployment runs Whisper, the text encoder and the head "
        "of each request; split: a deployment per stage (Speech, Text, Head), composed by the "
        "ingress (benchmarks/serve_load.py compares them). resources.asr is what each Model "
        "(single) or Speech (split) replica gets, resources.model each Text and Head replica.",
    )
    resources: ResourcesConfig = part(
        ResourcesConfig,
        asr={"actors": 1, "num_cpus": 0.5, "num_gpus": 1.0, "threads": 1},
        model={"actors": 1, "num_cpus": 0.1, "num_gpus": 1.0, "threads": 1},
    )  # asr: each Model replica (layout single) or Speech replica (split); model: Text, Head
    decode: DecodeConfig = part(
        DecodeConfig, max_file_mb=20.0, max_duration_s=300.0, decode_timeout_s=20.0
    )  # an upload over max_file_mb or max_duration_s is answered 413
    upload_timeout_s: float = Field(
        30.0, gt=0, description="An upload must arrive whole within this time (else 408)."
    )
    max_uploads: int = Field(
        64,
        ge=1,
        description="Uploads received at once; beyond this: 503 (a slow client "
        "holds one place for at most upload_timeout_s).",
    )
    max_uploads_per_client: int = Field(
        8,
        ge=1,
        description="Uploads received at once from one client address; beyond this: 429 "
        "(one client cannot take every place of max_uploads).",
    )
    decode_threads: int = Field(
        2, ge=1, description="Uploads decoded at once, in threads beside the event loop."
    )
    ready_timeout_s: float = Field(
        2.0, gt=0, description="/readyz answers 503 when no model replica answers in this time."
    )
    ready_cache_s: float = Field(
        2.0,
        ge=0,
        description="/readyz answers from a check at most this old (a flood of probes never "
        "reaches the model replicas).",
    )
    max_text_chars: int = Field(2000, ge=1, description="Longest text for /v1/recognize/text.")
    request_timeout_s: float = Field(
        60.0, gt=0, description="A request not answered in this time gets 504."
    )
    segment: SegmentConfig = part(SegmentConfig)  # longer audio also gets per-segment answers
    live: LiveConfig = part(LiveConfig)  # the WebSocket /v1/stream
    speech: SpeechConfig = part(SpeechConfig)
    min_confidence: float = min_confidence()
    auth_token: str | None = Field(
        None,
        description="Bearer token required on /v1/* (the RAYMER_API_TOKEN environment "
        "variable sets it too); none: open.",
    )
    auth_token_file: str | None = Field(
        None,
        description="A file holding the bearer token (a mounted secret; local or s3://), "
        "read when the application is built.",
    )
    allow_anonymous: bool = Field(
        False,
        description="Serve on a non-loopback host without a token (anyone who reaches the "
        "port can use the API); without it such a start is refused.",
    )
    cors_origins: list[str] = Field(
        default_factory=list, description="Origins allowed by CORS (e.g. ['*']); none: no CORS."
    )
    allowed_hosts: list[str] = Field(
        default_factory=lambda: ["localhost", "127.0.0.1", "[::1]"],
        description="Host header values answered when the API has no token (else 421): a web "
        "page rebinding its own name to this address cannot read the answers. '*': any.",
    )

    @model_validator(mode="after")
    def _replicas(self) -> ServeConfig:
        if self.max_replicas < self.min_replicas:
            raise ValueError(
                f"max_replicas={self.max_replicas} is below min_replicas={self.min_replicas}"
            )
        return self
