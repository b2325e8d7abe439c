"""The plan: what would change, what will not be done silently, and how to show it."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

ChangeKind = Literal[
    "create_topic",
    "reset_topic",
    "alter_topic_config",
    "add_partitions",
    "delete_topic",
    "set_compatibility",
    "register_schema",
    "create_database",
    "create_table",
    "add_column",
    "modify_ttl",
]
NoticeKind = Literal[
    "shrink_partitions",
    "replication_factor",
    "not_enough_brokers",
    "orphan_topic",
    "reset_on_start",
    "incompatible_schema",
    "schema_is_old_version",
    "table_needs_rewrite",
    "column_not_in_schema",
]


@dataclass(frozen=True)
class Change:
    """One thing ``apply`` will do."""

    kind: ChangeKind
    target: str
    summary: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Notice:
    """Something that differs but is not applied; ``blocking`` ones stop ``apply`` entirely."""

    kind: NoticeKind
    target: str
    summary: str
    blocking: bool = False
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class Plan:
    """The difference between the registry and the live cluster and schema registry."""

    changes: list[Change] = field(default_factory=list)
    notices: list[Notice] = field(default_factory=list)

    @property
    def blockers(self) -> list[Notice]:
        """Notices that make ``apply`` refuse to do anything."""
        return [n for n in self.notices if n.blocking]

    @property
    def empty(self) -> bool:
        """Nothing to do."""
        return not self.changes

    def for_target(self, target: str) -> Plan:
        """The part of the plan about one topic or subject."""
        return Plan(
            [c for c in self.changes if c.target == target],
            [n for n in self.notices if n.target == target],
        )

    def extend(self, other: Plan) -> None:
        """Append another plan's changes and notices."""
        self.changes.extend(other.changes)
        self.notices.extend(other.notices)

    def render(self) -> str:
        """The plan as a person reads it, terraform-style symbols first."""
        symbol = {
            "create_topic": "+",
            "reset_topic": "-/+",
            "alter_topic_config": "~",
            "add_partitions": "~",
            "delete_topic": "-",
            "set_compatibility": "~",
            "register_schema": "+",
            "create_database": "+",
            "create_table": "+",
            "add_column": "~",
            "modify_ttl": "~",
        }
        lines = [f"  {symbol[c.kind]:>3} {c.target}: {c.summary}" for c in self.changes]
        for n in self.notices:
            tag = "refused" if n.blocking else "note"
            lines.append(f"  {'!':>3} {n.target}: {tag}: {n.summary}")
        if not self.changes:
            lines.insert(0, "No changes: the cluster, schema registry and ClickHouse match the registry.")
        else:
            lines.insert(0, f"{len(self.changes)} change(s):")
        if self.blockers:
            lines.append(f"apply would be refused: {len(self.blockers)} blocking problem(s)")
        return "\n".join(lines)

    def to_json(self) -> str:
        """The plan for scripts and CI."""
        return json.dumps(
            {
                "changes": [asdict(c) for c in self.changes],
                "notices": [asdict(n) for n in self.notices],
                "blocked": bool(self.blockers),
            },
            indent=2,
        )
