"""moto_server on 127.0.0.1 for a benchmark's ``s3://`` figures (the venv's own moto)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path


def moto_server(port: int) -> tuple[subprocess.Popen, str]:
    """Start moto_server on ``port``; its endpoint and credentials go into this process's
    environment before Ray starts, so Ray's workers inherit them. Returns (process, URL)."""
    exe = str(Path(sys.executable).parent / "moto_server")
    proc = subprocess.Popen([exe, "-H", "127.0.0.1", "-p", str(port)], stderr=subprocess.DEVNULL)
    time.sleep(3)
    endpoint = f"http://127.0.0.1:{port}"
    os.environ |= {"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x"}
    os.environ |= {"AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": endpoint}
    return proc, endpoint
