"""The Kafka broker's jars: resolved once from Maven Central with the ``pom.xml`` beside this
module, cached per Kafka version, and checked complete before use."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import uuid
import zipfile
from pathlib import Path

from tradesignals_dagster.stack.errors import JarResolveError, JavaMissingError
from tradesignals_dagster.stack.process import last_lines

KAFKA_VERSION = "4.1.1"
"""The Apache Kafka release the stack runs; keep in step with ``kafka.version`` in pom.xml."""
SCALA_VERSION = "2.13"
CACHE_ENV = "TRADESIGNALS_KAFKA_CACHE"
MIN_JAVA = 17
_STORAGE_TOOLS = ("kafka.tools.StorageTool", "org.apache.kafka.tools.StorageTool")
_COMPLETE = ".complete"


def shared_jar_cache() -> Path:
    """The jar directory shared by every broker instance of this Kafka version.

    ``$TRADESIGNALS_KAFKA_CACHE`` (read at call time) or ``~/.cache/tradesignals`` is the
    root; the version is part of the path so an upgrade never mixes jars.
    """
    root = os.environ.get(CACHE_ENV) or str(Path.home() / ".cache" / "tradesignals")
    return Path(root).expanduser() / f"kafka-{KAFKA_VERSION}" / "lib"


def check_java(java: str = "java") -> str:
    """The path of a Java 17+ runtime, or :class:`JavaMissingError` saying what to install."""
    path = shutil.which(java)
    if path is None:
        raise JavaMissingError(
            f"'{java}' was not found on PATH. The local Kafka broker needs Java {MIN_JAVA} "
            "or newer (Debian: apt-get install -y openjdk-17-jre-headless)."
        )
    try:
        out = subprocess.run([path, "-version"], capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise JavaMissingError(f"Could not run '{path} -version': {exc}") from exc
    text = out.stderr + out.stdout
    match = re.search(r'version "(\d+)(?:\.(\d+))?', text)
    if match:
        major = int(match.group(1))
        if major == 1 and match.group(2):  # "1.8.0_x" style
            major = int(match.group(2))
        if major < MIN_JAVA:
            raise JavaMissingError(
                f"{path} is Java {major}; Kafka {KAFKA_VERSION} needs Java {MIN_JAVA} or newer."
            )
    return path


def jars_complete(jar_dir: Path) -> bool:
    """Whether ``jar_dir`` holds a finished resolve of this Kafka version."""
    marker = jar_dir / _COMPLETE
    return (
        marker.is_file()
        and marker.read_text().strip() == KAFKA_VERSION
        and (jar_dir / f"kafka_{SCALA_VERSION}-{KAFKA_VERSION}.jar").is_file()
    )


def resolve_jars(jar_dir: Path, *, mvn: str = "mvn", timeout: float = 900.0) -> Path:
    """Make ``jar_dir`` hold the broker's classpath, resolving it with Maven if needed.

    A finished directory is reused as is. Otherwise the jars are copied into a scratch
    directory beside it and renamed into place, so an interrupted or concurrent resolve
    never leaves a half-filled classpath behind.
    """
    if jars_complete(jar_dir):
        return jar_dir
    mvn_path = shutil.which(mvn)
    if mvn_path is None:
        raise JavaMissingError(
            f"'{mvn}' (Apache Maven) was not found on PATH; it fetches the Kafka broker jars "
            "from Maven Central (Debian: apt-get install -y maven)."
        )
    jar_dir.parent.mkdir(parents=True, exist_ok=True)
    scratch = jar_dir.parent / f".resolve-{uuid.uuid4().hex[:8]}"
    scratch.mkdir()
    try:
        pom = scratch / "pom.xml"
        shutil.copyfile(Path(__file__).with_name("pom.xml"), pom)
        out_dir = scratch / "lib"
        cmd = [mvn_path, "-B", "-q", "-f", str(pom), "dependency:copy-dependencies"]
        cmd += [f"-DoutputDirectory={out_dir}", "-DincludeScope=runtime"]
        try:
            proc = subprocess.run(
                cmd, cwd=scratch, capture_output=True, text=True, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise JarResolveError(
                f"Maven did not finish resolving Kafka {KAFKA_VERSION} within {timeout:.0f}s."
            ) from exc
        output = last_lines(proc.stdout + proc.stderr)
        if proc.returncode != 0:
            raise JarResolveError(
                f"Maven could not resolve the Kafka {KAFKA_VERSION} broker jars "
                f"(exit {proc.returncode}) with: {' '.join(cmd)}\n{output}"
            )
        (out_dir / _COMPLETE).write_text(KAFKA_VERSION)
        if not jars_complete(out_dir):
            raise JarResolveError(
                f"Maven finished but kafka_{SCALA_VERSION}-{KAFKA_VERSION}.jar is not in {out_dir}.\n{output}"
            )
        if jar_dir.exists() and not jars_complete(jar_dir):
            shutil.rmtree(jar_dir)
        try:
            out_dir.rename(jar_dir)
        except OSError:
            if not jars_complete(jar_dir):  # a concurrent resolve did not win either
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return jar_dir


def storage_tool_class(jar_dir: Path) -> str:
    """The main class of Kafka's storage formatter in this release's jars."""
    for name in _STORAGE_TOOLS:
        entry = name.replace(".", "/") + ".class"
        for jar in sorted(jar_dir.glob("kafka*.jar")):
            with zipfile.ZipFile(jar) as zf:
                if entry in zf.namelist():
                    return name
    raise JarResolveError(f"No Kafka StorageTool class found in the jars under {jar_dir}.")
