"""The local ClickHouse endpoint, driven by clickhouse-connect's own client and by plain HTTP.

The endpoint runs as a real subprocess (fixture ``clickhouse_endpoint``); every client here
reaches it through its URL only, exactly as it would reach a ClickHouse server.
"""

from __future__ import annotations

import base64
import datetime as dt
import http.client
import subprocess
import sys
import textwrap
import urllib.error
import urllib.parse
import urllib.request
import uuid
from decimal import Decimal
from typing import Any

import clickhouse_connect
import pyarrow as pa
import pytest
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import DatabaseError
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from conftest import ClickHouseEndpoint, LocalStack
from urllib3.exceptions import ProtocolError

from tradesignals_dagster.warehouse.client import clickhouse_client
from tradesignals_dagster.warehouse.errors import ClickHouseAuthError, ClickHouseUnavailableError

TRADES_DDL = """
CREATE TABLE {name} (
    symbol LowCardinality(String),
    ts DateTime64(3, 'UTC'),
    price Decimal(18, 4),
    size UInt32,
    venue Nullable(String)
) ENGINE = MergeTree ORDER BY (symbol, ts)
"""


def _table() -> str:
    return f"t_{uuid.uuid4().hex[:12]}"


def _open(
    ep: ClickHouseEndpoint, query: str, *, password: str | None = None, **params: str
) -> http.client.HTTPResponse:
    """A plain GET as curl sends it, its answer not read yet."""
    url = f"{ep.url}/?" + urllib.parse.urlencode({"query": query, **params})
    token = base64.b64encode(f"{ep.user}:{ep.password if password is None else password}".encode()).decode()
    request = urllib.request.Request(url, headers={"Authorization": f"Basic {token}"})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    response: http.client.HTTPResponse = opener.open(request, timeout=30)
    return response


def _http(
    ep: ClickHouseEndpoint, query: str, *, password: str | None = None, **params: str
) -> tuple[int, dict[str, str], bytes]:
    """A plain GET as curl sends it: status, headers and body."""
    try:
        with _open(ep, query, password=password, **params) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


@pytest.fixture
def client(clickhouse_endpoint: ClickHouseEndpoint) -> Client:
    """The product's client helper pointed at the endpoint by URL only."""
    return clickhouse_client(clickhouse_endpoint.settings)


def test_ping_and_curl_style_get(clickhouse_endpoint: ClickHouseEndpoint) -> None:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f"{clickhouse_endpoint.url}/ping", timeout=10) as resp:
        assert resp.read() == b"Ok.\n"
    status, headers, body = _http(clickhouse_endpoint, "SELECT 1")
    assert (status, body) == (200, b"1\n")
    assert headers["X-ClickHouse-Format"] == "TabSeparated"
    status, _, body = _http(
        clickhouse_endpoint, "SELECT number AS n FROM numbers(2)", default_format="JSONEachRow"
    )
    assert (status, body) == (200, b'{"n":0}\n{"n":1}\n')
    status, _, body = _http(clickhouse_endpoint, "SELECT {x:UInt8} * 2", param_x="21")
    assert body == b"42\n"


def test_command_insert_and_query_round_trip_types(client: Client) -> None:
    name = _table()
    client.command(TRADES_DDL.format(name=name))
    rows = [
        ["SPY", dt.datetime(2026, 1, 2, 14, 30, 0, 123000), Decimal("601.2500"), 10, None],
        ["QQQ", dt.datetime(2026, 1, 2, 14, 30, 1), Decimal("520.0001"), 3, "XNAS"],
    ]
    summary = client.insert(name, rows, column_names=["symbol", "ts", "price", "size", "venue"])
    assert summary.written_rows == 2
    got = client.query(f"SELECT symbol, ts, price, size, venue FROM {name} ORDER BY symbol").result_rows
    assert got == [tuple(rows[1]), tuple(rows[0])]
    assert client.command(f"SELECT count() FROM {name}") == 2
    assert client.command(f"EXISTS TABLE {name}") == 1


def test_query_arrow_and_insert_arrow(client: Client) -> None:
    name = _table()
    client.command(TRADES_DDL.format(name=name))
    n = 20_000
    table = pa.table(
        {
            "symbol": pa.array([f"S{i % 50}" for i in range(n)]),
            "ts": pa.array([1_767_000_000_000 + i for i in range(n)], pa.timestamp("ms", tz="UTC")),
            "price": pa.array([Decimal(i) / 4 for i in range(n)], pa.decimal128(18, 4)),
            "size": pa.array(range(n), pa.uint32()),
            "venue": pa.array([None if i % 3 else "X" for i in range(n)], pa.string()),
        }
    )
    assert client.insert_arrow(name, table).written_rows == n
    back = client.query_arrow(f"SELECT * FROM {name} ORDER BY size")
    assert back.num_rows == n
    assert back.column("size").to_pylist() == list(range(n))
    assert back.column("price").to_pylist() == table.column("price").to_pylist()
    assert back.column("venue").null_count == table.column("venue").null_count


@pytest.mark.parametrize("compression", ["lz4", "zstd", "gzip"])
def test_compressed_inserts_from_a_default_client(
    clickhouse_endpoint: ClickHouseEndpoint, compression: str
) -> None:
    """clickhouse-connect compresses insert bodies by default; the endpoint decodes them."""
    ch = clickhouse_connect.get_client(
        host="127.0.0.1",
        port=clickhouse_endpoint.service.port,
        username=clickhouse_endpoint.user,
        password=clickhouse_endpoint.password,
        compress=compression,
    )
    name = _table()
    ch.command(f"CREATE TABLE {name} (k UInt64, v String) ENGINE = MergeTree ORDER BY k")
    data = [[i, f"value-{i}"] for i in range(5_000)]
    ch.insert(name, data, column_names=["k", "v"])
    assert ch.query(f"SELECT count(), sum(k) FROM {name}").result_rows == [(5_000, sum(range(5_000)))]


def test_errors_carry_clickhouse_codes(client: Client, clickhouse_endpoint: ClickHouseEndpoint) -> None:
    with pytest.raises(DatabaseError) as unknown:
        client.query(f"SELECT * FROM {_table()}")
    assert unknown.value.code == 60
    assert "UNKNOWN_TABLE" in str(unknown.value)
    with pytest.raises(DatabaseError) as syntax:
        client.command("SELEC 1")
    assert syntax.value.code == 62
    status, headers, body = _http(clickhouse_endpoint, "SELECT 1", no_such_setting="1")
    assert status == 400 and headers["X-ClickHouse-Exception-Code"] == "115"
    assert body.startswith(b"Code: 115. DB::Exception: Unknown setting 'no_such_setting'")


def test_wrong_password_is_516(clickhouse_endpoint: ClickHouseEndpoint) -> None:
    with pytest.raises(DatabaseError) as refused:
        clickhouse_connect.get_client(
            host="127.0.0.1", port=clickhouse_endpoint.service.port, password="wrong"
        )
    assert refused.value.code == 516
    status, headers, _ = _http(clickhouse_endpoint, "SELECT 1", password="wrong")
    assert status == 403 and headers["X-ClickHouse-Exception-Code"] == "516"
    bad = clickhouse_endpoint.settings.model_copy(update={"clickhouse_password": None})
    with pytest.raises(ClickHouseAuthError) as helper_error:
        clickhouse_client(bad)
    assert clickhouse_endpoint.password not in str(helper_error.value)


def test_an_endpoint_that_is_down_is_a_clear_error(clickhouse_endpoint: ClickHouseEndpoint) -> None:
    from tradesignals_dagster.stack.process import find_free_port

    down = clickhouse_endpoint.settings.model_copy(
        update={"clickhouse_url": f"http://127.0.0.1:{find_free_port()}"}
    )
    with pytest.raises(ClickHouseUnavailableError, match="did not answer"):
        clickhouse_client(down)


def test_settings_and_database_apply_to_one_request_only(
    client: Client, clickhouse_endpoint: ClickHouseEndpoint
) -> None:
    assert client.command("SELECT getSetting('max_block_size')", settings={"max_block_size": 777}) == 777
    assert client.command("SELECT getSetting('max_block_size')") != 777
    client.command("SET max_block_size = 555")
    assert client.command("SELECT getSetting('max_block_size')") != 555
    db = f"db_{uuid.uuid4().hex[:8]}"
    client.command(f"CREATE DATABASE {db}")
    client.command(f"CREATE TABLE {db}.only_here (x UInt8) ENGINE = Memory")
    in_db = clickhouse_client(clickhouse_endpoint.settings, database=db)
    assert in_db.command("SELECT currentDatabase()") == db
    assert in_db.command("EXISTS TABLE only_here") == 1
    assert client.command("SELECT currentDatabase()") == "default"
    client.command(f"DROP DATABASE {db}")
    with pytest.raises(DatabaseError) as gone:
        in_db.command("SELECT count() FROM only_here")
    assert gone.value.code in (60, 81)
    assert client.command("SELECT 1") == 1


_CHILD = textwrap.dedent(
    """
    import sys, clickhouse_connect
    port, password, name, mode = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
    ch = clickhouse_connect.get_client(host="127.0.0.1", port=port, password=password)
    if mode == "write":
        for batch in range(20):
            rows = [["child", batch * 100 + i] for i in range(100)]
            ch.insert(name, rows, column_names=["writer", "k"])
    else:
        print(dict(ch.query(f"SELECT writer, count() FROM {name} GROUP BY writer").result_rows))
    """
)


def _child(ep: ClickHouseEndpoint, name: str, mode: str) -> subprocess.Popen[str]:
    argv = [sys.executable, "-c", _CHILD, str(ep.service.port), ep.password, name, mode]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_two_processes_share_the_data(client: Client, clickhouse_endpoint: ClickHouseEndpoint) -> None:
    """A child process writes while this one writes; a third process reads what both wrote."""
    name = _table()
    client.command(f"CREATE TABLE {name} (writer String, k UInt64) ENGINE = MergeTree ORDER BY k")
    writer = _child(clickhouse_endpoint, name, "write")
    for batch in range(20):
        rows = [["parent", 10_000 + batch * 100 + i] for i in range(100)]
        client.insert(name, rows, column_names=["writer", "k"])
    _, err = writer.communicate(timeout=120)
    assert writer.returncode == 0, err
    reader = _child(clickhouse_endpoint, name, "read")
    out, err = reader.communicate(timeout=120)
    assert reader.returncode == 0, err
    assert out.strip() == str({"child": 2_000, "parent": 2_000})


def _avro_messages(registry_url: str, subject_topic: str, records: list[dict[str, Any]]) -> bytes:
    schema = """
    {"type": "record", "name": "Trade", "namespace": "test", "fields": [
      {"name": "symbol", "type": "string"},
      {"name": "ts", "type": {"type": "long", "logicalType": "timestamp-millis"}},
      {"name": "price", "type": "double"},
      {"name": "size", "type": "int"}]}
    """
    serializer = AvroSerializer(SchemaRegistryClient({"url": registry_url}), schema)
    ctx = SerializationContext(subject_topic, MessageField.VALUE)
    return b"".join(serializer(record, ctx) for record in records)


def test_raw_insert_avroconfluent_decoded_through_the_schema_registry(stack: LocalStack) -> None:
    """The stack's own endpoint decodes Confluent-framed Avro against the stack's registry."""
    assert stack.info["clickhouse_url"].startswith("http://127.0.0.1:")
    ch = clickhouse_client(stack.settings)
    name = _table()
    ch.command(
        f"CREATE TABLE {name} (symbol String, ts DateTime64(3, 'UTC'), price Float64, size Int32) "
        "ENGINE = MergeTree ORDER BY ts"
    )
    base = dt.datetime(2026, 1, 2, 14, 30, tzinfo=dt.UTC)
    records = [
        {"symbol": f"S{i % 7}", "ts": base + dt.timedelta(milliseconds=i), "price": i / 8, "size": i}
        for i in range(3_000)
    ]
    payload = _avro_messages(stack.schema_registry_url, f"topic-{uuid.uuid4().hex[:8]}", records)
    summary = ch.raw_insert(
        name,
        insert_block=payload,
        fmt="AvroConfluent",
        settings={"format_avro_schema_registry_url": stack.schema_registry_url},
    )
    assert summary.written_rows == 3_000
    got = ch.query(f"SELECT count(), sum(size), max(ts) FROM {name}").result_rows[0]
    assert got[0] == 3_000 and got[1] == sum(range(3_000))
    assert got[2] == (base + dt.timedelta(milliseconds=2_999)).replace(tzinfo=None)


# -- streamed answers ----------------------------------------------------------------------------

MANY_BLOCKS = {"max_block_size": 10_000}
"""A SELECT over numbers(200000) then answers in 20 chunks."""
SERIES = "SELECT number AS n, toString(number) AS s, toDecimal64(number / 7, 4) AS d FROM numbers(200000)"


def test_selects_stream_in_chunks_and_equal_the_buffered_answer(
    client: Client, clickhouse_endpoint: ClickHouseEndpoint
) -> None:
    for fmt in ("ArrowStream", "Native", "JSONEachRow"):
        status, streamed_headers, streamed = _http(
            clickhouse_endpoint, f"{SERIES} FORMAT {fmt}", max_block_size="10000"
        )
        status_b, buffered_headers, buffered = _http(
            clickhouse_endpoint, f"{SERIES} FORMAT {fmt}", max_block_size="10000", wait_end_of_query="1"
        )
        assert status == status_b == 200
        assert streamed_headers.get("Transfer-Encoding") == "chunked", fmt
        assert buffered_headers.get("Content-Length") == str(len(buffered)), fmt
        if fmt == "ArrowStream":  # chdb's chunks repeat the schema: compare what a reader sees
            assert pa.ipc.open_stream(streamed).read_all().equals(pa.ipc.open_stream(buffered).read_all())
        else:
            assert streamed == buffered, fmt
    batches = []
    with client.query_arrow_stream(SERIES, settings=MANY_BLOCKS) as stream:
        batches.extend(stream)
    table = pa.Table.from_batches(batches)
    assert len(batches) > 1 and table.num_rows == 200_000
    assert table.column("n").to_pylist() == list(range(200_000))
    rows = client.query(SERIES, settings=MANY_BLOCKS).result_rows  # Native
    assert len(rows) == 200_000 and rows[-1] == (199_999, "199999", Decimal("28571.2857"))


def test_an_empty_streamed_answer_still_carries_its_schema(client: Client) -> None:
    table = client.query_arrow("SELECT number AS n, toString(number) AS s FROM numbers(10) WHERE n > 100")
    assert table.num_rows == 0 and table.column_names == ["n", "s"]
    assert client.query("SELECT number FROM numbers(10) WHERE number > 100").result_rows == []


def test_an_error_before_the_first_chunk_has_its_code_and_after_it_cuts_the_answer(
    client: Client, clickhouse_endpoint: ClickHouseEndpoint
) -> None:
    with pytest.raises(DatabaseError) as unknown:
        client.query_arrow(f"SELECT * FROM {_table()}")
    assert unknown.value.code == 60
    late = "SELECT throwIf(number = 150000, 'late failure') AS x FROM numbers(200000)"
    with (  # the answer is cut off
        pytest.raises(ProtocolError, match="IncompleteRead"),
        client.query_arrow_stream(late, settings=MANY_BLOCKS) as stream,
    ):
        sum(b.num_rows for b in stream)
    with _open(clickhouse_endpoint, late + " FORMAT JSONEachRow", max_block_size="10000") as resp:
        assert resp.status == 200
        with pytest.raises(http.client.IncompleteRead) as cut:
            resp.read()
        assert b"Code: 395. DB::Exception: " in cut.value.partial  # ClickHouse's error text, last
    assert client.query("SELECT 1").result_rows == [(1,)]  # the endpoint serves on


def test_a_slow_reader_does_not_hold_up_other_requests(
    client: Client, clickhouse_endpoint: ClickHouseEndpoint
) -> None:
    big = "SELECT number, repeat('x', 100) FROM numbers(2000000) FORMAT Native"
    with _open(clickhouse_endpoint, big) as resp:
        assert len(resp.read(1000)) == 1000  # ~200 MB answer, read no further for now
        started = dt.datetime.now()
        assert client.query("SELECT 42").result_rows == [(42,)]
        assert (dt.datetime.now() - started).total_seconds() < 20


def test_a_client_that_leaves_a_streamed_answer_cancels_its_query(
    client: Client, clickhouse_endpoint: ClickHouseEndpoint
) -> None:
    """A SELECT that would run ~100 s (1,000 blocks of 0.1 s) is cancelled when its reader goes
    away, so the next request does not wait for it (the engine runs one statement at a time)."""
    slow = "SELECT number, sleepEachRow(0.001) FROM numbers(100000) FORMAT JSONEachRow"
    with _open(clickhouse_endpoint, slow, max_block_size="100") as resp:
        assert resp.readline().startswith(b'{"number":')  # the first block arrived
    started = dt.datetime.now()
    assert client.query("SELECT 7").result_rows == [(7,)]
    assert (dt.datetime.now() - started).total_seconds() < 10
