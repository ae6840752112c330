"""Waiting for a server's ``/readyz``: for tools that start servers as processes (the
demo, the benchmark, process tests). Synchronous and stdlib-only on purpose."""

from __future__ import annotations

import ssl
import time
import urllib.request
from pathlib import Path


def wait_ready(url: str, timeout: float = 30, interval: float = 0.1,
               ca_file: Path | None = None) -> None:
    """Return once ``{url}/readyz`` answers 200; TimeoutError after ``timeout`` s. An
    https url is checked against ``ca_file`` (else the system's trusted CAs)."""
    context = ssl.create_default_context(cafile=ca_file) if url.startswith("https") else None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/readyz", timeout=2, context=context) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass  # not listening yet, or 503 while the database or schema is not ready
        time.sleep(interval)
    raise TimeoutError(f"{url} not ready after {timeout} s")
