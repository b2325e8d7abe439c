"""The object store Parquet datasets are written to: :func:`object_store` from the settings.

``TRADESIGNALS_OBJECT_STORE_URL`` is ``s3://bucket/prefix`` (credentials from the usual AWS
environment variables or profile, ``TRADESIGNALS_OBJECT_STORE_ENDPOINT`` for an S3-compatible
server) or ``file:///dir`` (a plain directory). Unset, the local stack's S3 server is used when
``tradesignals stack up`` recorded one (with the credentials it generated, read from its 0600
file), else ``<state_dir>/datasets``. Everything goes through :mod:`pyarrow.fs`, so exports,
checks and readers take one code path whatever the backend.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pyarrow import fs as pafs

from tradesignals_dagster.datasets.errors import (
    BucketMissing,
    CredentialsRefused,
    InvalidDatasetInput,
    ObjectStoreError,
    ObjectStoreUnreachable,
    ReadOnlyStore,
)
from tradesignals_dagster.settings import Settings

CHECKSUM_ENV = {
    "AWS_REQUEST_CHECKSUM_CALCULATION": "when_required",
    "AWS_RESPONSE_CHECKSUM_VALIDATION": "when_required",
}
"""The AWS SDK's newer default checksums break S3-compatible servers (s3proxy answers
XAmzContentSHA256Mismatch / 501); ``when_required`` is the SDK's documented opt-out and
AWS S3 itself accepts it. Set (unless already set) before the first S3 filesystem is made."""
PROBE_PREFIX = "_tradesignals_probe-"
"""Write probes go straight under the root (no sub-directory: S3-on-filesystem servers list
directories as objects and would keep an empty one)."""
_UNREACHABLE = ("NETWORK_CONNECTION", "curlCode: 7", "curlCode: 28", "Couldn't connect", "Timeout")
_NO_BUCKET = ("NoSuchBucket", "NO_SUCH_BUCKET", "bucket does not exist")
_REFUSED = (
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "INVALID_ACCESS_KEY_ID",
    "SIGNATURE_DOES_NOT_MATCH",
    "AccessDenied",
    "ACCESS_DENIED",
    "HTTP response code: 403",
)


@dataclass(frozen=True)
class S3Credentials:
    """An access key pair; the secret is never part of a message or ``repr``."""

    access_key: str
    secret_key: str

    def __repr__(self) -> str:
        return f"S3Credentials(access_key={self.access_key!r}, secret_key=***)"


@dataclass(frozen=True)
class ObjectStore:
    """A pyarrow filesystem and the root (``bucket/prefix`` or ``/dir``) datasets live under."""

    filesystem: pafs.FileSystem
    root: str
    url: str
    kind: str
    endpoint: str | None = None
    credentials: S3Credentials | None = None

    def path(self, *parts: str) -> str:
        """The filesystem path of ``parts`` under the root (what pyarrow.fs calls take)."""
        return "/".join([self.root.rstrip("/"), *(p.strip("/") for p in parts if p)])

    def uri(self, *parts: str) -> str:
        """``s3://bucket/prefix/...`` or ``file:///dir/...``, for metadata and Athena."""
        path = self.path(*parts)
        return f"s3://{path}" if self.kind == "s3" else Path(path).as_uri()

    @property
    def bucket(self) -> str | None:
        """The bucket, for S3 stores."""
        return self.root.split("/", 1)[0] if self.kind == "s3" else None

    def ensure_dir(self, path: str) -> None:
        """Create ``path``'s directory on a local store (S3 has no directories to make)."""
        if self.kind == "file":
            self.call("create a directory in", lambda: self.filesystem.create_dir(path, recursive=True))

    def check(self, *, write: bool = True) -> None:
        """Reach the store (and write and delete a probe object when ``write``), or raise a
        clear error: unreachable, bucket missing, credentials refused, read-only."""
        info = self.call("reach", lambda: self.filesystem.get_file_info(self.bucket or self.root))
        if info.type == pafs.FileType.NotFound:
            if self.kind == "s3":
                raise BucketMissing(f"The bucket '{self.bucket}' does not exist at {self.where()}.")
            Path(self.root).mkdir(parents=True, exist_ok=True)
        if not write:
            return
        probe = self.path(f"{PROBE_PREFIX}{uuid.uuid4().hex}")
        try:
            with self.filesystem.open_output_stream(probe) as out:
                out.write(b"probe")
        except OSError as exc:
            error = self.classify("write to", exc)
            if type(error) is ObjectStoreError or isinstance(error, CredentialsRefused):
                raise ReadOnlyStore(
                    f"The object store {self.where()} can be read but refused a write under "
                    f"{self.url} ({_first_line(exc)}); nothing was written."
                ) from exc
            raise error from exc
        self.call("delete the probe from", lambda: self.filesystem.delete_file(probe))

    def call(self, what: str, fn: Any) -> Any:
        """Run ``fn`` and turn pyarrow's OSError into this area's errors."""
        try:
            return fn()
        except OSError as exc:
            raise self.classify(what, exc) from exc

    def classify(self, what: str, exc: OSError) -> ObjectStoreError:
        """The error class and message for a failed ``what`` (e.g. "list") on this store."""
        text = str(exc)
        where = self.where()
        reason = _first_line(exc)
        if any(s in text for s in _UNREACHABLE):
            return ObjectStoreUnreachable(
                f"The object store {where} did not answer while trying to {what} it ({reason}). "
                "Start it with `tradesignals stack up`, or check TRADESIGNALS_OBJECT_STORE_URL / "
                "TRADESIGNALS_OBJECT_STORE_ENDPOINT."
            )
        if any(s in text for s in _NO_BUCKET):
            return BucketMissing(f"The bucket '{self.bucket}' does not exist at {where} ({reason}).")
        if any(s in text for s in _REFUSED):
            return CredentialsRefused(
                f"The object store {where} refused the credentials while trying to {what} it "
                f"({reason}): check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_PROFILE."
            )
        if isinstance(exc, PermissionError) or "Read-only" in text or "read-only" in text:
            return ReadOnlyStore(f"The object store {where} is read-only ({reason}).")
        return ObjectStoreError(f"Could not {what} the object store {where}: {reason}")

    def where(self) -> str:
        """The store for messages: its URL and, if any, its endpoint (never credentials)."""
        return f"{self.url} (endpoint {self.endpoint})" if self.endpoint else self.url


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


def local_stack_credentials(settings: Settings) -> S3Credentials | None:
    """The credentials the local stack's S3 server was started with, from its 0600 file."""
    s3 = settings.stack_info().get("s3") or {}
    path = s3.get("credentials_file")
    if not path:
        return None
    try:
        data = json.loads(Path(path).read_text())
        return S3Credentials(str(data["access_key"]), str(data["secret_key"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def object_store(settings: Settings, *, credentials: S3Credentials | None = None) -> ObjectStore:
    """The object store ``settings`` name (see the module docstring). Nothing is contacted here;
    call :meth:`ObjectStore.check` to find out whether it answers and can be written."""
    url = settings.object_store_url
    endpoint = settings.object_store_endpoint
    if not url:
        stack = settings.stack_info()
        if stack.get("object_store_url"):
            url = str(stack["object_store_url"])
            endpoint = endpoint or (stack.get("s3") or {}).get("endpoint")
            credentials = credentials or local_stack_credentials(settings)
        else:
            url = (Path(settings.state_dir).resolve() / "datasets").as_uri()
    parts = urlsplit(url)
    if parts.scheme == "s3":
        return _s3_store(url, endpoint, credentials, settings)
    if parts.scheme == "file" or not parts.scheme:
        directory = Path(parts.path if parts.scheme else url).expanduser()
        if not directory.is_absolute():
            directory = Path(os.getcwd()) / directory
        return ObjectStore(pafs.LocalFileSystem(), str(directory), directory.as_uri(), "file")
    raise InvalidDatasetInput(
        f"TRADESIGNALS_OBJECT_STORE_URL '{parts.scheme}://{parts.hostname or ''}{parts.path}' is "
        "neither s3://bucket/prefix nor file:///directory."
    )


def _s3_store(
    url: str, endpoint: str | None, credentials: S3Credentials | None, settings: Settings
) -> ObjectStore:
    parts = urlsplit(url)
    if not parts.hostname:
        raise InvalidDatasetInput(
            f"TRADESIGNALS_OBJECT_STORE_URL '{url}' names no bucket (s3://bucket/prefix)."
        )
    for key, value in CHECKSUM_ENV.items():
        os.environ.setdefault(key, value)
    options: dict[str, Any] = {
        "connect_timeout": settings.request_timeout_s,
        "request_timeout": max(settings.request_timeout_s, 30.0),
        "retry_strategy": pafs.AwsStandardS3RetryStrategy(max_attempts=2),
    }
    if settings.object_store_region:
        options["region"] = settings.object_store_region
    if endpoint:
        ends = urlsplit(endpoint if "://" in endpoint else f"https://{endpoint}")
        options["endpoint_override"] = ends.netloc
        options["scheme"] = ends.scheme
        options.setdefault("region", "us-east-1")
    if credentials is not None:
        options["access_key"] = credentials.access_key
        options["secret_key"] = credentials.secret_key
    root = f"{parts.hostname}{parts.path}".rstrip("/")
    return ObjectStore(
        pafs.S3FileSystem(**options),
        root,
        f"s3://{root}",
        "s3",
        endpoint=endpoint,
        credentials=credentials,
    )
