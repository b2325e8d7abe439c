"""The local S3 server's secrets: generated once into owner-only files, never in stack.json."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from tradesignals_dagster.stack.s3 import S3ProxyService, stack_entries


def test_credentials_are_generated_once_into_a_0600_file(tmp_path: Path) -> None:
    service = S3ProxyService(tmp_path)
    first = service.credentials()
    assert stat.S_IMODE(service.credentials_path.stat().st_mode) == 0o600
    assert S3ProxyService(tmp_path).credentials() == first
    assert len(first["secret_key"]) >= 30 and first["access_key"] != first["secret_key"]
    assert S3ProxyService(tmp_path / "other").credentials() != first


def test_stack_json_entries_name_the_file_not_the_secret(tmp_path: Path) -> None:
    service = S3ProxyService(tmp_path)
    secret = service.credentials()["secret_key"]
    entries = stack_entries(service.status())
    text = json.dumps(entries)
    assert secret not in text
    assert entries["object_store_url"] == "s3://tradesignals/datasets"
    assert entries["s3"]["credentials_file"] == str(service.credentials_path)
    assert entries["s3"]["pid"] is None and entries["s3"]["endpoint"] is None
