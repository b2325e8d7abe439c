"""A local WebSocket market feed for tests (and demos), bound to 127.0.0.1 on a free port.

:class:`FeedServer` plays a script: connection ``n`` first waits for the client's subscribe
message, then receives ``script[n]`` (a list of text messages). Every connection but the
last is then closed by the server, so a client must reconnect (and subscribe again) to get
the rest; the last stays open until :meth:`FeedServer.stop`. What each connection sent is kept
in :attr:`FeedServer.received`.

Run as a script it streams synthetic option trades forever, for manual runs of the ingest
pipeline: ``python tests/integration/ws_server.py --port 8765 --rate 200``.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from typing import Any

from websockets.exceptions import ConnectionClosed
from websockets.sync.server import Server, ServerConnection, serve


class FeedServer:
    """Scripted feed (see module docstring)."""

    def __init__(self, script: list[list[str]], *, require_subscribe: bool = True) -> None:
        self.script = script
        self.require_subscribe = require_subscribe
        self.received: list[list[str]] = []
        self.connections = 0
        self._lock = threading.Lock()
        self._server: Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    @property
    def url(self) -> str:
        """The feed's ws:// URL."""
        return f"ws://127.0.0.1:{self.port}/feed"

    def start(self) -> FeedServer:
        """Listen on a free loopback port and serve in a daemon thread."""
        self._server = serve(self._handle, "127.0.0.1", 0, ping_interval=None)
        self.port = int(self._server.socket.getsockname()[1])
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Close every connection and the listening socket."""
        if self._server is not None:
            self._server.shutdown()
        if self._thread is not None:
            self._thread.join(5)

    def _handle(self, ws: ServerConnection) -> None:
        with self._lock:
            n = self.connections
            self.connections += 1
            got: list[str] = []
            self.received.append(got)
        try:
            if self.require_subscribe:
                got.append(str(ws.recv(timeout=10)))
            for message in self.script[n] if n < len(self.script) else []:
                ws.send(message)
            if n < len(self.script) - 1:
                ws.close()
                return
            while True:
                got.append(str(ws.recv()))
        except (ConnectionClosed, TimeoutError):
            return


def envelope(trades: Any, kind: str = "trades") -> str:
    """A feed message: ``{"type": kind, "data": trades}``."""
    return json.dumps({"type": kind, "data": trades})


def _stream(port: int, rate: float, symbols: int, seed: int) -> None:
    from tradesignals_dagster.streaming.synthetic import OptionTradeGenerator, SyntheticConfig

    def handler(ws: ServerConnection) -> None:
        gen = OptionTradeGenerator(
            SyntheticConfig(symbols=symbols, seed=seed, start_timestamp=int(time.time() * 1000))
        )
        try:
            ws.recv(timeout=10)
            while True:
                batch = gen.take(max(1, int(rate / 10)))
                for t in batch:
                    t["price"] = f"{t['price'] / 10_000:.4f}"
                ws.send(envelope(batch))
                time.sleep(0.1)
        except (ConnectionClosed, TimeoutError):
            return

    with serve(handler, "127.0.0.1", port) as server:
        print(f"feed on ws://127.0.0.1:{server.socket.getsockname()[1]}/feed", flush=True)
        server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--rate", type=float, default=100.0, help="trades per second")
    parser.add_argument("--symbols", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    _stream(args.port, args.rate, args.symbols, args.seed)
