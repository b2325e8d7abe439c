"""What the end-to-end fixtures and tests share: where things are, and the running product."""

from __future__ import annotations

import json
import os
import socket
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).parent.parent.parent
RESULTS = ROOT / "test-results"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
START_TIMEOUT_S = 420  # stack + materializing + dg dev, on two shared cores


def chromium_path() -> Path:
    """Debian's Chromium (``.ci/run`` installs it), or ``$TRADESIGNALS_CHROMIUM``."""
    return Path(os.environ.get("TRADESIGNALS_CHROMIUM", "/usr/bin/chromium"))


def free_port() -> int:
    """A port nothing listens on now (bind to 0 on loopback)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Product:
    """A running ``tradesignals dev``: where its UI is and what it logs."""

    port: int
    state: Path
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def graphql(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        """Answer of the webserver's GraphQL API (what the UI itself reads)."""
        req = urllib.request.Request(
            f"{self.url}/graphql",
            data=json.dumps({"query": query, "variables": variables or {}}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=30) as resp:
            body = json.loads(resp.read())
        assert "errors" not in body, body
        return dict(body["data"])

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


READY_QUERY = "{ assetsOrError { ... on AssetConnection { nodes { key { path } } } } }"
