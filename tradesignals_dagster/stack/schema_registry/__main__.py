"""``python -m tradesignals_dagster.stack.schema_registry --host H --port N --db PATH``.

Prints ``listening on http://HOST:PORT`` on stdout once the socket is bound (with the real
port when ``--port 0`` asked the kernel to choose), then serves until SIGTERM or Ctrl-C.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from tradesignals_dagster.stack.schema_registry.server import (
    DEFAULT_MAX_BODY_BYTES,
    LOCALHOST,
    create_server,
)
from tradesignals_dagster.stack.schema_registry.store import SchemaRegistryStore


def build_parser() -> argparse.ArgumentParser:
    """The command-line options."""
    parser = argparse.ArgumentParser(
        prog="python -m tradesignals_dagster.stack.schema_registry",
        description="A Confluent-API schema registry for AVRO schemas, stored in SQLite.",
    )
    parser.add_argument("--host", default=LOCALHOST, help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8081, help="port to bind; 0 picks a free one")
    parser.add_argument("--db", type=Path, required=True, help="SQLite database file")
    parser.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    parser.add_argument(
        "--max-body-bytes",
        type=int,
        default=DEFAULT_MAX_BODY_BYTES,
        help=f"largest request body accepted; larger ones get 413 (default {DEFAULT_MAX_BODY_BYTES})",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Serve the registry until interrupted; returns the exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=str(args.log_level).upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    store = SchemaRegistryStore(args.db)
    try:
        server = create_server(store, args.host, args.port, args.max_body_bytes)
    except (OSError, ValueError) as exc:
        store.close()
        print(f"cannot listen on {args.host}:{args.port}: {exc}", flush=True)
        return 1

    def stop(signum: int, frame: FrameType | None) -> None:
        # shutdown() waits for serve_forever() to return, so it must run on another thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    print(f"listening on {server.url}", flush=True)
    logging.getLogger("tradesignals_dagster.stack.schema_registry").info(
        "schema registry on %s, database %s", server.url, args.db
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        store.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
