"""Files the registry refers to: only regular files inside the registry, bounded, never quoted.

Special files (a FIFO, ``/dev/zero``), links out of the registry, link loops, directories, huge
and non-UTF-8 files each give ``file: reason`` and exit 2. The nastiest run ``validate`` in a
separate process limited to 512 MB of address space and 2 s of CPU (the kernel kills it past
either). A wall-clock timeout catches a hang (a blocking FIFO uses no CPU); it allows for
interpreter start-up on a loaded 2-core machine, where the whole command takes about 0.9 s idle.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from registry_corpus import replace, run_validate, write_registry
from test_registry_hostile import LAUGHS

SECRET = "SECRET-9f1c-do-not-print"
T = "registry/topics.yaml"


def _outside(tmp: Path) -> Path:
    secret = tmp / "outside" / "secret.yaml"
    secret.parent.mkdir(parents=True, exist_ok=True)
    secret.write_text(f"topics:\n  - topic_id: {SECRET}\n    bad: [{SECRET}\n")
    return secret


def _fifo(root: Path) -> None:
    os.mkfifo(root / T)


def _dev_zero(root: Path) -> None:
    (root / T).symlink_to("/dev/zero")


def _link_outside(root: Path) -> None:
    (root / T).symlink_to(_outside(root))


def _link_loop(root: Path) -> None:
    (root / "registry" / "loop_a").symlink_to("loop_b")
    (root / "registry" / "loop_b").symlink_to("loop_a")
    (root / T).symlink_to("loop_a")


def _directory(root: Path) -> None:
    (root / T).mkdir()


def _huge(root: Path) -> None:
    with (root / T).open("w") as out:
        out.write("topics:\n")
        out.write("# padding\n" * 900_000)


def _latin1(root: Path) -> None:
    (root / T).write_bytes("topics:\n  - topic_id: caf\xe9\n".encode("latin-1"))


def _schema_outside(root: Path) -> None:
    (root / "registry/schemas/bars.avsc").symlink_to(_outside(root))


def _config_outside(root: Path) -> None:
    (root / "pipelines/bars").mkdir(parents=True, exist_ok=True)
    (root / "pipelines/bars/config.yaml").symlink_to(_outside(root))


def _module_outside(root: Path) -> None:
    (root / "pipelines/bars/feed.py").symlink_to(_outside(root))


def _root_fifo(root: Path) -> None:
    os.mkfifo(root / "registry/pipelines.yaml")


CUSTOM = replace(
    "registry/pipelines.yaml",
    "        type: kafka\n        consumer",
    "        type: custom\n        module_path: feed.py\n        class_name: Feed\n        consumer",
)

# id -> (files removed from the base, how the hostile file is made, expected output fragments)
FILE_CASES: dict[str, tuple[dict[str, str | None], Callable[[Path], None], list[str]]] = {
    "fifo-as-topics": ({T: None}, _fifo, ["registry/topics.yaml: is not a regular file (a FIFO"]),
    "dev-zero-as-topics": ({T: None}, _dev_zero, ["registry/topics.yaml: resolves outside registry"]),
    "link-out-of-registry": ({T: None}, _link_outside, ["registry/topics.yaml: resolves outside registry"]),
    "symlink-loop": ({T: None}, _link_loop, ["registry/topics.yaml: symlink loop"]),
    "directory-as-topics": ({T: None}, _directory, ["registry/topics.yaml: is a directory, not a file"]),
    "file-over-8-mib": (
        {T: None},
        _huge,
        ["registry/topics.yaml: file is 9,000,008 bytes, over the 8 MiB limit"],
    ),
    "not-utf8": ({T: None}, _latin1, ["registry/topics.yaml: line 2: not UTF-8 text (byte 0xe9)"]),
    "schema-link-outside": (
        {"registry/schemas/bars.avsc": None},
        _schema_outside,
        ["registry/schemas/bars.avsc: resolves outside registry"],
    ),
    "config-link-outside": (
        {"pipelines/bars/config.yaml": None},
        _config_outside,
        ["pipelines/bars/config.yaml: resolves outside pipelines/bars"],
    ),
    "custom-module-link-outside": (
        CUSTOM,
        _module_outside,
        ["pipelines/bars/feed.py: resolves outside pipelines/bars"],
    ),
    "root-file-is-a-fifo": (
        {"registry/pipelines.yaml": None},
        _root_fifo,
        ["registry/pipelines.yaml: is not a regular file"],
    ),
}


@pytest.mark.parametrize("case", sorted(FILE_CASES))
def test_hostile_file_is_reported_not_read(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    changes, make, expected = FILE_CASES[case]
    write_registry(tmp_path, changes)
    make(tmp_path)
    code, output = run_validate(tmp_path, capsys, monkeypatch)
    assert code == 2, output
    assert "Traceback" not in output and "internal error" not in output, output
    assert SECRET not in output, output
    for fragment in expected:
        assert fragment in output, f"{fragment!r} not in:\n{output}"


CPU_SECONDS = 10  # a runaway guard; the 2 s budget is checked on validate's own load time
LOAD_SECONDS = 2.0
WALL_SECONDS = 30


def _limit_memory_and_cpu() -> None:
    """512 MB of address space and a CPU ceiling, enforced by the kernel in the child."""
    resource.setrlimit(resource.RLIMIT_AS, (512 * 2**20, 512 * 2**20))
    resource.setrlimit(resource.RLIMIT_CPU, (CPU_SECONDS, CPU_SECONDS))


def _validate_in_subprocess(root: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "tradesignals_dagster.cli",
            "validate",
            "--registry",
            "registry",
            "--pipelines",
            "pipelines",
            *extra,
        ],
        cwd=root,
        preexec_fn=_limit_memory_and_cpu,
        capture_output=True,
        text=True,
        timeout=WALL_SECONDS,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )


def _laughs(root: Path) -> None:
    (root / T).write_text(LAUGHS)


NASTIEST: dict[str, tuple[Callable[[Path], None], str]] = {
    "billion-laughs": (
        _laughs,
        "aliases expand to more than 1,000,000 values",
    ),
    "dev-zero-as-topics": (_dev_zero, "registry/topics.yaml: resolves outside registry"),
    "fifo-as-topics": (_fifo, "registry/topics.yaml: is not a regular file"),
    "file-over-8-mib": (_huge, "over the 8 MiB limit"),
}


@pytest.mark.parametrize("case", sorted(NASTIEST))
def test_nastiest_inputs_exit_2_within_2_s_and_512_mb(case: str, tmp_path: Path) -> None:
    make, expected = NASTIEST[case]
    write_registry(tmp_path, {T: None})
    make(tmp_path)
    done = _validate_in_subprocess(tmp_path)
    output = done.stdout + done.stderr
    assert done.returncode == 2, output
    assert expected in output and "Traceback" not in output, output
    timed = _validate_in_subprocess(tmp_path, "--json")  # the load itself, without process start-up
    assert timed.returncode == 2, timed.stdout + timed.stderr
    assert json.loads(timed.stdout)["seconds"] < LOAD_SECONDS
