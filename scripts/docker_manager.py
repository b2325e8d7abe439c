#!/usr/bin/env python3
"""Seed-compatible entry: ``docker_manager.py list|start|stop|restart|logs|status|build [<id>...]``.

The seed managed pipeline containers with this script; here it is a thin shim over the
``tradesignals`` CLI with the docker runtime chosen (``TRADESIGNALS_RUNTIME=docker`` unless set),
so both go through the same code: images built offline and tagged by content, containers through
the Docker Engine API.
"""

from __future__ import annotations

import os
import sys

ACTIONS = {
    "list": ["pipelines", "status"],
    "status": ["pipelines", "status"],
    "start": ["pipelines", "start"],
    "stop": ["pipelines", "stop"],
    "restart": ["pipelines", "restart"],
    "logs": ["pipelines", "logs"],
    "build": ["images", "build"],
}


def main(argv: list[str]) -> int:
    """Translate the seed's action into the CLI's command and run it; 2 for an unknown action."""
    if not argv or argv[0] not in ACTIONS:
        print(f"usage: docker_manager.py {{{'|'.join(ACTIONS)}}} [<id>...]", file=sys.stderr)
        return 2
    os.environ.setdefault("TRADESIGNALS_RUNTIME", "docker")
    from tradesignals_dagster.cli import main as cli_main

    return cli_main([*ACTIONS[argv[0]], *argv[1:]])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
