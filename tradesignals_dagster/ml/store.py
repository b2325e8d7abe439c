"""Versioned model artifacts in the object store, and the ``current`` pointer.

Layout under the store's root (beside the datasets)::

    _models/<model>/versions/<version>/model.bin   the trainer's bytes
    _models/<model>/versions/<version>/card.json   the model card (with the artifact's sha256)
    _models/<model>/current.json                   {"version": ..., "promoted_at": ...}

A version is the hash of its inputs (:func:`model_version`), so retraining on the same
partitions with the same code and parameters writes the same version. Only
:meth:`ModelStore.promote` moves ``current``; a failing run never calls it, so the promoted model
stays. An artifact whose bytes do not match the card's checksum is a :class:`CorruptArtifact`.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import time
from typing import Any

from pyarrow import fs as pafs

from tradesignals_dagster.datasets.store import ObjectStore
from tradesignals_dagster.ml.errors import CorruptArtifact, NoPromotedModel

MODELS_FOLDER = "_models"


def feature_code_hash() -> str:
    """Hash of the feature and trainer code: a change to either makes a new version."""
    from tradesignals_dagster.ml import features, trainers

    digest = hashlib.sha256()
    for module in (features, trainers):
        digest.update(inspect.getsource(module).encode())
    return digest.hexdigest()


def model_version(partitions: list[dict[str, Any]], code_hash: str, spec: dict[str, Any]) -> str:
    """The version of a model trained on ``partitions`` (day, files, sizes, rows) with feature
    code ``code_hash`` and registry entry ``spec`` (features, params, target, trainer...): the
    first 16 hex digits of their SHA-256. Same inputs, same version."""
    payload = {"partitions": partitions, "code": code_hash, "spec": spec}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


class ModelStore:
    """One model's artifacts in an :class:`ObjectStore`."""

    def __init__(self, store: ObjectStore, model_id: str) -> None:
        self.store = store
        self.model_id = model_id

    def _path(self, *parts: str) -> str:
        return self.store.path(MODELS_FOLDER, self.model_id, *parts)

    def uri(self, version: str) -> str:
        """Where a version's files are, for the model card."""
        return self.store.uri(MODELS_FOLDER, self.model_id, "versions", version)

    def _write(self, path: str, data: bytes) -> None:
        self.store.ensure_dir(path.rsplit("/", 1)[0])

        def put() -> None:
            with self.store.filesystem.open_output_stream(path) as out:
                out.write(data)

        self.store.call("write to", put)

    def _read(self, path: str) -> bytes | None:
        info = self.store.call("read", lambda: self.store.filesystem.get_file_info(path))
        if info.type == pafs.FileType.NotFound:
            return None

        def get() -> bytes:
            with self.store.filesystem.open_input_stream(path) as src:
                return bytes(src.read())

        return bytes(self.store.call("read", get))

    def write(self, version: str, artifact: bytes, card: dict[str, Any]) -> None:
        """Write the artifact, then its card (with the artifact's checksum and size)."""
        card = {
            **card,
            "artifact_sha256": hashlib.sha256(artifact).hexdigest(),
            "artifact_bytes": len(artifact),
        }
        self._write(self._path("versions", version, "model.bin"), artifact)
        self._write(
            self._path("versions", version, "card.json"), json.dumps(card, indent=2, default=str).encode()
        )

    def card(self, version: str) -> dict[str, Any] | None:
        """The card of ``version``, or None when there is none."""
        raw = self._read(self._path("versions", version, "card.json"))
        if raw is None:
            return None
        try:
            card = json.loads(raw)
        except ValueError as exc:
            raise CorruptArtifact(
                f"model '{self.model_id}' version {version}: card.json at {self.uri(version)} is not JSON"
            ) from exc
        return card if isinstance(card, dict) else None

    def artifact(self, version: str) -> bytes:
        """The artifact of ``version``, checked against its card's checksum."""
        card = self.card(version)
        data = self._read(self._path("versions", version, "model.bin"))
        if card is None or data is None:
            raise CorruptArtifact(
                f"model '{self.model_id}' version {version} is incomplete at {self.uri(version)} "
                "(model.bin or card.json missing)"
            )
        if hashlib.sha256(data).hexdigest() != card.get("artifact_sha256"):
            raise CorruptArtifact(
                f"model '{self.model_id}' version {version}: model.bin at {self.uri(version)} does not "
                "match the checksum in its card (corrupt or overwritten); retrain or promote another version"
            )
        return data

    def current(self) -> str | None:
        """The promoted version, or None before the first promotion."""
        raw = self._read(self._path("current.json"))
        if raw is None:
            return None
        try:
            version = json.loads(raw)["version"]
        except (ValueError, KeyError, TypeError) as exc:
            raise CorruptArtifact(f"model '{self.model_id}': current.json is not a version pointer") from exc
        return str(version)

    def require_current(self) -> str:
        """The promoted version, or :class:`NoPromotedModel`."""
        version = self.current()
        if version is None:
            raise NoPromotedModel(f"model '{self.model_id}' has no promoted version yet")
        return version

    def promote(self, version: str) -> None:
        """Point ``current`` at ``version`` (after checking its artifact is intact)."""
        self.artifact(version)
        pointer = {"version": version, "promoted_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        self._write(self._path("current.json"), json.dumps(pointer).encode())
