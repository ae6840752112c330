"""Running the hub and nodes as real processes (the installed console scripts), so
tests can SIGKILL them mid-work and restart them."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

from server_common.readiness import wait_ready

__all__ = ["Process", "free_port", "hub_process", "node_env", "script", "wait_ready"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def script(name: str) -> str:
    return str(Path(sys.executable).with_name(name))


class Process:
    """One server process with its log file; stopped (SIGKILL) when the test ends."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.args, self.env, self.log = args, env, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Process:
        with self.log.open("ab") as fh:
            self.proc = subprocess.Popen(self.args, env=self.env, stdout=fh, stderr=fh)
        return self

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


def hub_process(database_url: str, port: int, data_dir: Path) -> Process:
    env = dict(os.environ) | {
        "NATIONAL_HUB__DATABASE__URL": database_url,
        "NATIONAL_HUB__HUB__KEY_FILE": str(data_dir / "hub" / "hub_key.pem"),
    }
    return Process([script("national-hub"), "serve", "--port", str(port)], env,
                   data_dir / "hub.log")


def node_env(code: str, database_url: str, key_file: Path, hub_url: str,
             hub_public_key: Path) -> dict[str, str]:
    return dict(os.environ) | {
        "LOCAL_NODE__DATABASE__URL": database_url,
        "LOCAL_NODE__COUNCIL__CODE": code,
        "LOCAL_NODE__COUNCIL__KEY_FILE": str(key_file),
        "LOCAL_NODE__HUB__URL": hub_url,
        "LOCAL_NODE__HUB__PUBLIC_KEY_FILE": str(hub_public_key),
        "LOCAL_NODE__HUB__TIMEOUT": "5s",
        "LOCAL_NODE__PUBLISHER__BATCH_SIZE": "50",
        "LOCAL_NODE__PUBLISHER__INTERVAL": "0.2s",
        "LOCAL_NODE__PUBLISHER__HEARTBEAT_INTERVAL": "1s",
        "LOCAL_NODE__PUBLISHER__MAX_BACKOFF": "1s",
    }


