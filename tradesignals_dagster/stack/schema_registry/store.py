"""SQLite storage with Confluent Schema Registry's semantics.

Schemas have global ids shared by every subject that registers the same (canonical) schema.
Each subject has numbered versions; soft deletes hide a version but keep it, permanent deletes
need a soft delete first. New versions are checked against the subject's compatibility level
(the subject's own, else the global one, else BACKWARD) with the project's Avro checker.

One connection is shared by all HTTP threads behind a lock, every write is one transaction,
and the database survives restarts.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from tradesignals_dagster.kafka.compatibility import (
    CompatibilityLevel,
    Incompatibility,
    check_compatibility,
    parse_compatibility_level,
)
from tradesignals_dagster.kafka.errors import InvalidCompatibilityLevelError
from tradesignals_dagster.stack.schema_registry import errors
from tradesignals_dagster.stack.schema_registry.schemas import AVRO, PreparedSchema

DEFAULT_LEVEL = CompatibilityLevel.BACKWARD
_GLOBAL = ""  # config scope of the global level; subject names are never empty
_MAX_VERSION = 2**31 - 1

VersionSpec = int | Literal["latest"]

_DDL = """
CREATE TABLE IF NOT EXISTS schemas (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    schema_type TEXT NOT NULL,
    canonical TEXT NOT NULL UNIQUE,
    schema TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS subject_versions (
    subject TEXT NOT NULL,
    version INTEGER NOT NULL,
    schema_id INTEGER NOT NULL REFERENCES schemas(id),
    deleted INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (subject, version)
);
CREATE INDEX IF NOT EXISTS subject_versions_by_schema ON subject_versions(schema_id);
CREATE TABLE IF NOT EXISTS config (
    scope TEXT PRIMARY KEY,
    compatibility TEXT NOT NULL
);
"""


@dataclass(frozen=True)
class SubjectVersion:
    """One version of a subject, with its schema."""

    subject: str
    version: int
    schema_id: int
    schema: str
    schema_type: str = AVRO
    deleted: bool = False

    def to_json(self) -> dict[str, Any]:
        """The body Confluent returns for a subject version (schemaType only when not AVRO)."""
        body: dict[str, Any] = {
            "subject": self.subject,
            "version": self.version,
            "id": self.schema_id,
            "schema": self.schema,
        }
        if self.schema_type != AVRO:
            body["schemaType"] = self.schema_type
        return body


def parse_version(value: object) -> VersionSpec:
    """A version from a URL: a positive integer, or ``latest`` (also spelled ``-1``)."""
    text = str(value).strip()
    if text.lower() == "latest" or text == "-1":
        return "latest"
    try:
        number = int(text)
    except ValueError:
        raise errors.invalid_version(value) from None
    if not 1 <= number <= _MAX_VERSION:
        raise errors.invalid_version(value)
    return number


def describe_incompatibilities(
    subject: str, level: CompatibilityLevel, problems: Sequence[Incompatibility]
) -> str:
    """The 409 message: Confluent's opening sentence, then every problem naming its field."""
    details = " | ".join(f"{p.type.value} at {p.location}: {p.message}" for p in problems)
    return (
        f'Schema being registered is incompatible with an earlier schema for subject "{subject}" '
        f"(compatibility level {level.value}), details: {details}"
    )


class SchemaRegistryStore:
    """The registry's data and rules; every public method is safe to call from any thread."""

    def __init__(self, path: str | Path) -> None:
        """Open (creating if needed) the SQLite database at ``path``."""
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute("PRAGMA foreign_keys=ON")
        self._conn.executescript(_DDL)

    def close(self) -> None:
        """Close the database connection."""
        with self._lock:
            self._conn.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def _query(self, sql: str, *params: object) -> list[tuple[Any, ...]]:
        with self._lock:
            return list(self._conn.execute(sql, params).fetchall())

    # -- reading ---------------------------------------------------------------------------

    def _versions_of(self, subject: str) -> list[SubjectVersion]:
        rows = self._query(
            "SELECT v.version, v.schema_id, s.schema, s.schema_type, v.deleted "
            "FROM subject_versions v JOIN schemas s ON s.id = v.schema_id "
            "WHERE v.subject = ? ORDER BY v.version",
            subject,
        )
        return [SubjectVersion(subject, r[0], r[1], r[2], r[3], bool(r[4])) for r in rows]

    def _visible(self, subject: str, deleted: bool) -> list[SubjectVersion]:
        """The subject's versions a request may see; 40401 when there are none."""
        rows = self._versions_of(subject)
        visible = rows if deleted else [r for r in rows if not r.deleted]
        if not visible:
            raise errors.subject_not_found(subject)
        return visible

    def subjects(self, *, deleted: bool = False, deleted_only: bool = False, prefix: str = "") -> list[str]:
        """Subject names, sorted; soft-deleted subjects only when asked for."""
        rows = self._query(
            "SELECT subject, MIN(deleted) FROM subject_versions GROUP BY subject ORDER BY subject"
        )
        names: list[str] = []
        for subject, all_deleted in rows:
            keep = bool(all_deleted) if deleted_only else deleted or not all_deleted
            if keep and subject.startswith(prefix):
                names.append(subject)
        return names

    def versions(self, subject: str, *, deleted: bool = False, deleted_only: bool = False) -> list[int]:
        """The subject's version numbers, ascending; 40401 if it has none."""
        rows = self._visible(subject, deleted or deleted_only)
        if deleted_only:
            return [r.version for r in rows if r.deleted]
        return [r.version for r in rows]

    def get_version(self, subject: str, version: VersionSpec, *, deleted: bool = False) -> SubjectVersion:
        """One version (``latest`` is the highest visible one); 40401 / 40402 when missing."""
        rows = self._visible(subject, deleted)
        if version == "latest":
            return rows[-1]
        for row in rows:
            if row.version == version:
                return row
        raise errors.version_not_found(subject, version)

    def schema_by_id(self, schema_id: int) -> tuple[str, str]:
        """``(schema, schema_type)`` of a global id still used by some subject version."""
        rows = self._query(
            "SELECT s.schema, s.schema_type FROM schemas s WHERE s.id = ? AND EXISTS "
            "(SELECT 1 FROM subject_versions v WHERE v.schema_id = s.id)",
            schema_id,
        )
        if not rows:
            raise errors.schema_not_found(f"Schema {schema_id} not found")
        return str(rows[0][0]), str(rows[0][1])

    def versions_of_id(self, schema_id: int, *, deleted: bool = False) -> list[tuple[str, int]]:
        """The ``(subject, version)`` pairs that use a schema id."""
        self.schema_by_id(schema_id)
        rows = self._query(
            "SELECT subject, version, deleted FROM subject_versions WHERE schema_id = ? "
            "ORDER BY subject, version",
            schema_id,
        )
        return [(str(r[0]), int(r[1])) for r in rows if deleted or not r[2]]

    def lookup(self, subject: str, schema: PreparedSchema, *, deleted: bool = False) -> SubjectVersion:
        """The version of ``subject`` holding ``schema``; 40401 / 40403 when absent."""
        rows = self._visible(subject, deleted)
        canonical = self._canonical_by_id()
        matches = [r for r in rows if canonical.get(r.schema_id) == schema.canonical]
        if not matches:
            raise errors.schema_not_found()
        live = [r for r in matches if not r.deleted]
        return (live or matches)[-1]

    def _canonical_by_id(self) -> dict[int, str]:
        return {int(r[0]): str(r[1]) for r in self._query("SELECT id, canonical FROM schemas")}

    # -- registering and compatibility -------------------------------------------------------

    def register(self, subject: str, schema: PreparedSchema) -> SubjectVersion:
        """Register ``schema`` under ``subject``, or return the live version that has it.

        Raises the 409 error, naming every incompatible field, when the subject's
        compatibility level forbids the new version; nothing is written then.
        """
        with self._tx() as conn:
            live = [r for r in self._versions_of(subject) if not r.deleted]
            found = conn.execute("SELECT id FROM schemas WHERE canonical = ?", (schema.canonical,)).fetchone()
            schema_id = int(found[0]) if found else None
            for row in live:
                if row.schema_id == schema_id:
                    return row
            level = self.level(subject)
            problems = check_compatibility(
                schema.text,
                [r.schema for r in live],
                level,
                existing_versions=[r.version for r in live],
            )
            if problems:
                raise errors.incompatible_schema(describe_incompatibilities(subject, level, problems))
            if schema_id is None:
                cursor = conn.execute(
                    "INSERT INTO schemas (schema_type, canonical, schema) VALUES (?, ?, ?)",
                    (schema.schema_type, schema.canonical, schema.text),
                )
                schema_id = int(cursor.lastrowid or 0)
            top = conn.execute(
                "SELECT COALESCE(MAX(version), 0) FROM subject_versions WHERE subject = ?",
                (subject,),
            ).fetchone()
            version = int(top[0]) + 1
            conn.execute(
                "INSERT INTO subject_versions (subject, version, schema_id) VALUES (?, ?, ?)",
                (subject, version, schema_id),
            )
            text = conn.execute("SELECT schema FROM schemas WHERE id = ?", (schema_id,)).fetchone()
            return SubjectVersion(subject, version, schema_id, str(text[0]), schema.schema_type)

    def test_compatibility(
        self, subject: str, version: VersionSpec | None, schema: PreparedSchema
    ) -> list[Incompatibility]:
        """Problems ``schema`` would have as the subject's next version.

        With a ``version``, only that version is compared (in the direction of the subject's
        level); without one, the versions the level demands. Empty means compatible.
        """
        level = self.level(subject)
        if version is None:
            live = [r for r in self._versions_of(subject) if not r.deleted]
        else:
            live = [self.get_version(subject, version)]
            level = CompatibilityLevel(level.value.removesuffix("_TRANSITIVE"))
        return check_compatibility(
            schema.text, [r.schema for r in live], level, existing_versions=[r.version for r in live]
        )

    # -- deleting ----------------------------------------------------------------------------

    def delete_subject(self, subject: str, *, permanent: bool = False) -> list[int]:
        """Soft-delete every live version, or permanently delete a soft-deleted subject."""
        with self._tx() as conn:
            rows = self._versions_of(subject)
            if not rows:
                raise errors.subject_not_found(subject)
            live = [r.version for r in rows if not r.deleted]
            if not permanent:
                if not live:
                    raise errors.subject_soft_deleted(subject)
                conn.execute("UPDATE subject_versions SET deleted = 1 WHERE subject = ?", (subject,))
                return live
            if live:
                raise errors.subject_not_soft_deleted(subject)
            conn.execute("DELETE FROM subject_versions WHERE subject = ?", (subject,))
            conn.execute("DELETE FROM config WHERE scope = ?", (subject,))
            return [r.version for r in rows]

    def delete_version(self, subject: str, version: VersionSpec, *, permanent: bool = False) -> int:
        """Soft-delete one version, or permanently delete a soft-deleted one."""
        with self._tx() as conn:
            rows = self._versions_of(subject)
            live = [r for r in rows if not r.deleted]
            if not rows or (not permanent and not live):
                raise errors.subject_not_found(subject)
            candidates = rows if permanent else live
            if version == "latest":
                target = candidates[-1]
            else:
                matching = [r for r in rows if r.version == version]
                if not matching:
                    raise errors.version_not_found(subject, version)
                target = matching[0]
            if not permanent:
                if target.deleted:
                    raise errors.version_soft_deleted(subject, target.version)
                conn.execute(
                    "UPDATE subject_versions SET deleted = 1 WHERE subject = ? AND version = ?",
                    (subject, target.version),
                )
            else:
                if not target.deleted:
                    raise errors.version_not_soft_deleted(subject, target.version)
                conn.execute(
                    "DELETE FROM subject_versions WHERE subject = ? AND version = ?",
                    (subject, target.version),
                )
            return target.version

    # -- compatibility configuration ---------------------------------------------------------

    def _config(self, scope: str) -> CompatibilityLevel | None:
        rows = self._query("SELECT compatibility FROM config WHERE scope = ?", scope)
        return CompatibilityLevel(rows[0][0]) if rows else None

    def level(self, subject: str | None = None) -> CompatibilityLevel:
        """The level in force: the subject's own, else the global one, else BACKWARD."""
        own = self._config(subject) if subject else None
        return own or self._config(_GLOBAL) or DEFAULT_LEVEL

    def get_config(
        self, subject: str | None = None, *, default_to_global: bool = False
    ) -> CompatibilityLevel:
        """The configured level; for a subject without one, 40408 unless ``default_to_global``."""
        if subject is None:
            return self.level()
        own = self._config(subject)
        if own is not None:
            return own
        if default_to_global:
            return self.level()
        raise errors.subject_level_config_not_found(subject)

    def set_config(self, subject: str | None, level: object) -> CompatibilityLevel:
        """Set the global (``subject`` None) or a subject's level; 42203 if unknown."""
        try:
            parsed = parse_compatibility_level(level)
        except InvalidCompatibilityLevelError:
            raise errors.invalid_compatibility_level(level) from None
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO config (scope, compatibility) VALUES (?, ?) "
                "ON CONFLICT(scope) DO UPDATE SET compatibility = excluded.compatibility",
                (subject or _GLOBAL, parsed.value),
            )
        return parsed

    def delete_config(self, subject: str | None = None) -> CompatibilityLevel:
        """Remove a level (the global one falls back to BACKWARD); returns the removed level."""
        scope = subject or _GLOBAL
        with self._tx() as conn:
            previous = self._config(scope)
            if previous is None and subject is not None:
                raise errors.subject_not_found(subject)
            conn.execute("DELETE FROM config WHERE scope = ?", (scope,))
        return previous or DEFAULT_LEVEL
