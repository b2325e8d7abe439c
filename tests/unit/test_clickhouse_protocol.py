"""The local ClickHouse endpoint's pure rules: request shape, INSERT data, errors, bodies, URLs."""

from __future__ import annotations

import base64
import gzip
import zlib

import lz4.frame
import pytest
from backports import zstd
from pydantic import SecretStr

from tradesignals_dagster.settings import Settings
from tradesignals_dagster.warehouse.client import client_options, redact_url
from tradesignals_dagster.warehouse.errors import WarehouseError
from tradesignals_dagster.warehouse.protocol import (
    ServerException,
    build_request,
    credentials,
    decompress_body,
    exception_from_text,
    http_status,
    output_format,
    split_insert,
    statement_kind,
)


def test_insert_data_starts_after_the_format_name_and_one_line_break() -> None:
    raw = b"INSERT INTO t (a, b) FORMAT Arrow\nARROW1\x00\n"
    split = split_insert(raw)
    assert split is not None
    assert (split.statement, split.fmt) == ("INSERT INTO t (a, b)", "Arrow")
    assert raw[split.data_offset :] == b"ARROW1\x00\n"
    assert split_insert(b"INSERT INTO t VALUES (1)") is None
    assert split_insert(b"SELECT 1 FORMAT Native") is None


def test_query_parameter_is_parsed_alone_so_binary_data_may_follow_directly() -> None:
    request = build_request({"query": "INSERT INTO t FORMAT Arrow"}, b"ARROW1data")
    assert (request.statement, request.insert_format) == ("INSERT INTO t", "Arrow")
    assert bytes(request.data or b"") == b"ARROW1data"


def test_parameters_split_into_settings_bind_params_and_transport() -> None:
    request = build_request(
        {
            "database": "d",
            "query_id": "q1",
            "session_id": "s",
            "wait_end_of_query": "1",
            "enable_http_compression": "1",
            "http_headers_progress_interval_ms": "1000",
            "max_threads": "1",
            "format_avro_schema_registry_url": "http://r",
            "param_x": "5",
        },
        b"SELECT {x:UInt8}",
    )
    assert request.statement == "SELECT {x:UInt8}"
    assert (request.database, request.query_id) == ("d", "q1")
    assert request.settings == {"max_threads": "1", "format_avro_schema_registry_url": "http://r"}
    assert request.bind_params == {"x": "5"}


def test_statement_kind_and_output_format() -> None:
    assert statement_kind("  -- c\n/* x */ select 1") == "SELECT"
    assert statement_kind("(SELECT 1)") == "("
    assert output_format("SELECT 1\n FORMAT Native", None) == "Native"
    assert output_format("SELECT 1 FORMAT JSON SETTINGS max_threads=1", None) == "JSON"
    assert output_format("SELECT 'FORMAT x' AS f", "CSV") == "CSV"
    assert output_format("SELECT 1", None) == "TabSeparated"


def test_errors_keep_clickhouse_code_and_name() -> None:
    exc = exception_from_text(
        "Code: 60. DB::Exception: Unknown table expression identifier 'x'. (UNKNOWN_TABLE) (version 26.9.2.1)"
    )
    assert (exc.code, exc.name) == (60, "UNKNOWN_TABLE")
    assert exc.body("26.9").decode() == (
        "Code: 60. DB::Exception: Unknown table expression identifier 'x'. (UNKNOWN_TABLE) (version 26.9)\n"
    )
    assert exception_from_text("boom").code == 1001
    assert [http_status(c) for c in (516, 62, 60, 229, 241)] == [403, 400, 404, 413, 500]


@pytest.mark.parametrize("encoding", ["lz4", "zstd", "gzip", "deflate", None])
def test_request_bodies_decompress(encoding: str | None) -> None:
    blocks = [b"INSERT INTO t FORMAT Native\n", bytes(range(256)) * 50]
    if encoding == "lz4":  # clickhouse-connect sends one frame per block
        body = b"".join(lz4.frame.compress(b) for b in blocks)
    elif encoding == "zstd":
        body = b"".join(zstd.compress(b) for b in blocks)
    elif encoding == "gzip":
        body = gzip.compress(b"".join(blocks))
    elif encoding == "deflate":
        body = zlib.compress(b"".join(blocks))
    else:
        body = b"".join(blocks)
    assert decompress_body(body, encoding, limit=1 << 20) == b"".join(blocks)


def test_decompressed_size_is_capped_and_unknown_encodings_refused() -> None:
    bomb = gzip.compress(b"\0" * 2_000_000)
    with pytest.raises(ServerException) as capped:
        decompress_body(bomb, "gzip", limit=1_000_000)
    assert capped.value.code == 229
    with pytest.raises(ServerException) as unknown:
        decompress_body(b"x", "snappy", limit=10)
    assert unknown.value.code == 89
    with pytest.raises(ServerException) as broken:
        decompress_body(b"not lz4", "lz4", limit=10)
    assert broken.value.code == 271


def test_credentials_from_basic_auth_headers_or_parameters() -> None:
    token = base64.b64encode(b"alice:s3:cret").decode()
    assert credentials({"Authorization": f"Basic {token}"}, {}) == ("alice", "s3:cret")
    assert credentials({"X-ClickHouse-User": "bob", "X-ClickHouse-Key": "k"}, {}) == ("bob", "k")
    assert credentials({}, {"user": "carol", "password": "p"}) == ("carol", "p")
    assert credentials({}, {}) == ("default", "")


def test_client_options_from_the_url_and_secrets() -> None:
    settings = Settings(
        clickhouse_url="https://ch.example/analytics",
        clickhouse_user="svc",
        clickhouse_password=SecretStr("pw"),
    )
    options = client_options(settings)
    assert options["interface"] == "https" and options["port"] == 8443
    assert (options["username"], options["password"], options["database"]) == ("svc", "pw", "analytics")
    assert "compress" not in options  # compression stays on for a remote server
    local = client_options(Settings(clickhouse_url="http://127.0.0.1:9999"))
    assert (local["port"], local["compress"], local["password"]) == (9999, False, "")
    assert redact_url("http://u:secret@h:1/db") == "http://h:1/db"
    with pytest.raises(WarehouseError, match="not an http"):
        client_options(Settings(clickhouse_url="tcp://h:9000"))


def test_the_old_dsn_setting_still_names_the_url() -> None:
    assert Settings(clickhouse_dsn="http://h:8123").resolved_clickhouse_url() == "http://h:8123"
