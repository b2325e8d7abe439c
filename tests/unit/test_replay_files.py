"""`tradesignals pipelines replay` with hostile or careless files: never a lost input, never
a half-written output, never exit 70; every message names the file (and the line) at fault."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest
from flagship_avro import OPTION_TRADES

from tradesignals_dagster.cli import main
from tradesignals_dagster.streaming.errors import OutputFileError, RecordFileError
from tradesignals_dagster.streaming.fileio import AtomicOutput
from tradesignals_dagster.streaming.files import RecordWriter, read_rows
from tradesignals_dagster.streaming.records import RecordSchema

ROOT = Path(__file__).resolve().parents[2]
PIPELINE = "option_trade_volume_bars"
HEADER = "trade_id,symbol,underlying,timestamp,price,size,oi\n"
ROWS = "1,A,X,1000,1.5000,6,1\n2,B,X,1001,9.0000,3,2\n3,A,X,1002,2.5000,4,3\n"


def replay(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], source: Path, out: Path, *extra: str
) -> tuple[int, str, str]:
    """Run the replay command in process; return (exit code, stdout, stderr)."""
    argv = ["pipelines", "replay", PIPELINE, "--input", str(source), "--output", str(out), *extra]
    argv += ["--registry", str(ROOT / "registry"), "--pipelines", str(ROOT / "pipelines")]
    argv += ["--state-dir", str(tmp_path / "state")]
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def leftovers(directory: Path) -> list[str]:
    """Temporary files a replay left behind."""
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


# -- the output is never the input ----------------------------------------------------------------


@pytest.mark.parametrize("how", ["same path", "symlink", "hard link", "dotted path"])
def test_an_output_that_is_the_input_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], how: str
) -> None:
    source = tmp_path / "trades.csv"
    source.write_text(HEADER + ROWS)
    out = {
        "same path": source,
        "symlink": tmp_path / "bars.csv",
        "hard link": tmp_path / "bars.csv",
        "dotted path": tmp_path / "sub" / ".." / "trades.csv",
    }[how]
    (tmp_path / "sub").mkdir()
    if how == "symlink":
        out.symlink_to(source)
    elif how == "hard link":
        os.link(source, out)

    code, _, err = replay(tmp_path, capsys, source, out)

    assert code == 2, err
    assert f"{out}: the output is the same file as the input" in err
    assert source.read_text() == HEADER + ROWS  # the input is intact
    assert leftovers(tmp_path) == []


def test_a_rejects_file_that_is_the_output_is_refused(tmp_path: Path) -> None:
    from tradesignals_dagster.registry.loader import load_application
    from tradesignals_dagster.streaming.replay import replay_file

    app = load_application(ROOT / "registry", ROOT / "pipelines")
    source = tmp_path / "trades.csv"
    source.write_text(HEADER + ROWS)
    out = tmp_path / "bars.jsonl"
    with pytest.raises(RecordFileError, match="the rejects file is the same file as the output"):
        replay_file(app, PIPELINE, source, out, pipelines_dir=ROOT / "pipelines", rejects_path=out)
    with pytest.raises(RecordFileError, match="the rejects file is the same file as the input"):
        replay_file(app, PIPELINE, source, out, pipelines_dir=ROOT / "pipelines", rejects_path=source)


# -- nothing half-written ---------------------------------------------------------------------------


def test_a_failed_replay_leaves_the_previous_output_untouched(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = json.dumps({"trade_id": "1", "symbol": "A", "timestamp": 1, "price": "1", "size": 500})
    source = tmp_path / "trades.jsonl"
    source.write_bytes(((good + "\n") * 3).encode() + b'{"trade_id": "caf\xe9"}\n')
    out = tmp_path / "bars.jsonl"
    out.write_text("previous output\n")

    code, _, err = replay(tmp_path, capsys, source, out, "--set", "bar_volume=100")

    assert code == 2, err
    assert f"{source}: line 4 is not UTF-8 text (byte 0xe9 at column 18)" in err
    assert out.read_text() == "previous output\n"
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("ext", ["jsonl", "csv", "parquet"])
def test_a_writer_that_fails_removes_its_temporary_file(tmp_path: Path, ext: str) -> None:
    target = tmp_path / f"out.{ext}"
    schema = RecordSchema(OPTION_TRADES)
    row = {"trade_id": "t", "symbol": "S", "underlying": "", "timestamp": 1, "price": 1, "size": 1, "oi": 0}
    with pytest.raises(RuntimeError, match="boom"), RecordWriter(target, schema) as writer:
        writer.write([row])
        raise RuntimeError("boom")
    assert not target.exists() and leftovers(tmp_path) == []
    with RecordWriter(target, schema) as writer:
        writer.write([row])
    assert [schema.coerce(r) for r in read_rows(target)] == [row]  # type: ignore[arg-type]
    assert leftovers(tmp_path) == []


def test_outputs_get_the_usual_permissions(tmp_path: Path) -> None:
    umask = os.umask(0)
    os.umask(umask)
    with AtomicOutput(tmp_path / "out.jsonl") as out:
        out.text().write("{}\n")
    assert (tmp_path / "out.jsonl").stat().st_mode & 0o777 == 0o666 & ~umask


# -- inputs -----------------------------------------------------------------------------------------


def test_a_csv_with_a_byte_order_mark_is_read(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "excel.csv"
    source.write_bytes(b"\xef\xbb\xbf" + (HEADER + ROWS).replace("\n", "\r\n").encode())
    out = tmp_path / "bars.jsonl"

    code, printed, err = replay(tmp_path, capsys, source, out, "--set", "bar_volume=10")

    assert code == 0, err
    assert "3 record(s) in, 1 out, 0 rejected" in printed
    assert json.loads(out.read_text())["symbol"] == "A"


def test_a_latin1_csv_names_its_first_bad_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "latin1.csv"
    source.write_bytes((HEADER + ROWS).encode() + "4,Caf\u00e9,X,1003,1,1,1\n".encode("latin-1"))

    code, _, err = replay(tmp_path, capsys, source, tmp_path / "bars.jsonl")

    assert code == 2, err
    assert f"{source}: line 5 is not UTF-8 text (byte 0xe9 at column 6); save the file as UTF-8" in err
    assert not (tmp_path / "bars.jsonl").exists()


@pytest.mark.parametrize(
    ("make", "words"),
    [
        ("missing", "no such file"),
        ("directory", "a directory, not a regular file"),
        ("fifo", "a named pipe, not a regular file"),
        ("loop", "cannot be opened: Too many levels of symbolic links"),
        ("bad parquet", "not a readable Parquet file"),
        ("duplicate columns", "line 1: column(s) 'size' appear twice"),
        ("unknown type", "unknown record file type '.xlsx'"),
    ],
)
def test_unusable_inputs_are_exit_2_with_the_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], make: str, words: str
) -> None:
    source = tmp_path / (
        "in.parquet" if make == "bad parquet" else "in.xlsx" if make == "unknown type" else "in.csv"
    )
    if make == "directory":
        source.mkdir()
    elif make == "fifo":
        os.mkfifo(source)
    elif make == "loop":
        source.symlink_to(source)
    elif make == "bad parquet":
        source.write_bytes(b"PAR1 this is not parquet PAR1")
    elif make == "duplicate columns":
        source.write_text(HEADER.replace("oi", "size") + ROWS)
    elif make == "unknown type":
        source.write_text("x")
    done: list[tuple[int, str, str]] = []
    worker = threading.Thread(
        target=lambda: done.append(replay(tmp_path, capsys, source, tmp_path / "o.jsonl"))
    )
    worker.start()
    worker.join(30)
    assert done, "the replay hung on the input"  # e.g. blocked opening a FIFO
    code, _, err = done[0]
    assert code == 2, err
    assert f"{source}: {words}" in err
    assert "internal error" not in err and not (tmp_path / "o.jsonl").exists()


# -- outputs ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("where", "code", "words"),
    [
        ("under a file", 1, "cannot be written: Not a directory"),
        ("a directory", 2, "a directory; the output must be a regular file"),
        ("unknown type", 2, "unknown record file type '.txt'"),
    ],
)
def test_unwritable_outputs_are_reported_with_the_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], where: str, code: int, words: str
) -> None:
    source = tmp_path / "trades.csv"
    source.write_text(HEADER + ROWS)
    (tmp_path / "plain").write_text("a file")
    out = {
        "under a file": tmp_path / "plain" / "sub" / "bars.jsonl",
        "a directory": tmp_path / "outdir.jsonl",
        "unknown type": tmp_path / "bars.txt",
    }[where]
    if where == "a directory":
        out.mkdir()

    got, _, err = replay(tmp_path, capsys, source, out)

    assert got == code, err
    assert f"{out}: {words}" in err
    assert "internal error" not in err


def test_a_full_disk_is_an_output_error_and_leaves_nothing(tmp_path: Path) -> None:
    out = AtomicOutput(tmp_path / "x.jsonl")
    assert out.binary is not None
    out.binary.close()
    out.binary = open("/dev/full", "wb")  # noqa: SIM115 - every flush fails with ENOSPC
    out.text().write("x" * 10)
    with pytest.raises(OutputFileError, match=r"x\.jsonl: cannot be written: No space left on device"):
        out.commit()
    assert leftovers(tmp_path) == [] and not (tmp_path / "x.jsonl").exists()


# -- --set --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("override", "words"),
    [
        ("bar_volume=-1", "--set bar_volume=-1: bar_volume: Input should be greater than 0"),
        ("runtime.batch_size=0", "--set runtime.batch_size=0: runtime: batch_size: Input should be greater"),
        ("runtime=5", "--set runtime=5: runtime must be a mapping"),
    ],
)
def test_set_errors_name_the_override_not_config_yaml(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], override: str, words: str
) -> None:
    source = tmp_path / "trades.csv"
    source.write_text(HEADER + ROWS)

    code, _, err = replay(tmp_path, capsys, source, tmp_path / "bars.jsonl", "--set", override)

    assert code == 2, err
    assert words in err
    assert "config.yaml" not in err
