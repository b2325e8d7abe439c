"""The local S3 API server (s3proxy from Maven Central) as the fourth stack service.

Parquet datasets take the same S3 code path locally as against AWS: ``tradesignals stack up``
runs s3proxy with its filesystem provider (objects are files under ``<state_dir>/s3/data``),
bound to 127.0.0.1, with an access key pair generated once and kept in ``<state_dir>/s3`` in
files only the owner can read. ``stack.json`` records the bucket URL and the endpoint and the
path of the credentials file, never the secret itself.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tradesignals_dagster.stack.errors import JarResolveError, JavaMissingError, StackError
from tradesignals_dagster.stack.jars import check_java, shared_jar_cache
from tradesignals_dagster.stack.process import (
    LOCALHOST,
    find_free_port,
    last_lines,
    port_in_use,
    start_detached,
    stop_pid,
    tail,
    wait_until,
    write_json,
)
from tradesignals_dagster.stack.service import LocalService

S3PROXY_VERSION = "2.6.0"
"""Keep in step with ``s3proxy.version`` in s3proxy-pom.xml."""
BUCKET = "tradesignals"
PREFIX = "datasets"
_MAIN = "org.gaul.s3proxy.Main"
_COMPLETE = ".complete"
_LOGBACK = """<configuration>
  <appender name="OUT" class="ch.qos.logback.core.ConsoleAppender">
    <encoder><pattern>%d{HH:mm:ss.SSS} %-5level %logger{36} - %msg%n</pattern></encoder>
  </appender>
  <logger name="org.gaul.s3proxy" level="INFO"/>
  <root level="WARN"><appender-ref ref="OUT"/></root>
</configuration>
"""
"""s3proxy's jar has no logging configuration, so logback would log every request at DEBUG."""


class S3StartError(StackError):
    """The local S3 server did not come up; the message carries the tail of its log."""


def s3proxy_jar_cache() -> Path:
    """s3proxy's classpath, beside the Kafka jars in the same shared cache root."""
    return shared_jar_cache().parent.parent / f"s3proxy-{S3PROXY_VERSION}" / "lib"


def _complete(jar_dir: Path) -> bool:
    marker = jar_dir / _COMPLETE
    return marker.is_file() and marker.read_text().strip() == S3PROXY_VERSION


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def resolve_s3proxy(
    jar_dir: Path, *, mvn: str = "mvn", progress: Callable[[str], None] = _stderr, timeout: float = 900.0
) -> Path:
    """Make ``jar_dir`` hold s3proxy's classpath, resolving it with Maven once (about 130 jars,
    43 MB), with a progress line every 20 artifacts. Resolved into a scratch directory and
    renamed into place, so an interrupted resolve never leaves a half-filled classpath."""
    if _complete(jar_dir):
        return jar_dir
    mvn_path = shutil.which(mvn)
    if mvn_path is None:
        raise JavaMissingError(
            f"'{mvn}' (Apache Maven) was not found on PATH; it fetches the local S3 server "
            "(s3proxy) from Maven Central (Debian: apt-get install -y maven)."
        )
    jar_dir.parent.mkdir(parents=True, exist_ok=True)
    scratch = jar_dir.parent / f".resolve-{uuid.uuid4().hex[:8]}"
    scratch.mkdir()
    try:
        pom = scratch / "pom.xml"
        shutil.copyfile(Path(__file__).with_name("s3proxy-pom.xml"), pom)
        out_dir = scratch / "lib"
        cmd = [mvn_path, "-B", "-f", str(pom), "dependency:copy-dependencies"]
        cmd += [f"-DoutputDirectory={out_dir}", "-DincludeScope=runtime"]
        progress(f"s3proxy {S3PROXY_VERSION}: resolving its jars from Maven Central (first run only)")
        output = _run_maven(cmd, scratch, progress, timeout)
        if not any(out_dir.glob(f"s3proxy-{S3PROXY_VERSION}*.jar")):
            raise JarResolveError(f"Maven did not produce s3proxy-{S3PROXY_VERSION}.jar.\n{output}")
        (out_dir / _COMPLETE).write_text(S3PROXY_VERSION)
        progress(f"s3proxy {S3PROXY_VERSION}: {len(list(out_dir.glob('*.jar')))} jars in {jar_dir}")
        if jar_dir.exists() and not _complete(jar_dir):
            shutil.rmtree(jar_dir)
        try:
            out_dir.rename(jar_dir)
        except OSError:
            if not _complete(jar_dir):
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return jar_dir


def _run_maven(cmd: list[str], cwd: Path, progress: Callable[[str], None], timeout: float) -> str:
    """Run Maven, reporting every 20th downloaded artifact; its output's tail on failure."""
    lines: list[str] = []
    downloads = 0
    deadline = time.monotonic() + timeout
    with subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.rstrip())
            if "Downloaded from" in line:
                downloads += 1
                if downloads % 20 == 0:
                    progress(f"s3proxy {S3PROXY_VERSION}: {downloads} artifacts downloaded")
            if time.monotonic() > deadline:
                proc.kill()
                raise JarResolveError(f"Maven did not resolve s3proxy within {timeout:.0f}s.")
        code = proc.wait()
    output = last_lines("\n".join(lines))
    if code != 0:
        raise JarResolveError(f"Maven could not resolve s3proxy {S3PROXY_VERSION} (exit {code}):\n{output}")
    return output


class S3ProxyService(LocalService):
    """s3proxy as a detached process; data, log, pid and credentials under ``<state_dir>/s3``."""

    def __init__(
        self,
        state_dir: Path,
        *,
        port: int | None = None,
        jar_dir: Path | None = None,
        read_only: bool = False,
    ) -> None:
        self.read_only = read_only
        self.home = Path(state_dir).resolve() / "s3"
        self.data_dir = self.home / "data"
        self.log_path = self.home / "s3proxy.log"
        self.state_path = self.home / "s3proxy.json"
        self.properties_path = self.home / "s3proxy.properties"
        self.credentials_path = self.home / "credentials.json"
        self.jar_dir = jar_dir or s3proxy_jar_cache()
        self._want_port = port

    def identity(self) -> str:
        """The properties file, unique to this instance."""
        return str(self.properties_path)

    @property
    def endpoint(self) -> str | None:
        """``http://127.0.0.1:<port>``, once started."""
        return f"http://{LOCALHOST}:{self.port}" if self.port else None

    @property
    def object_store_url(self) -> str:
        """Where datasets go on this server."""
        return f"s3://{BUCKET}/{PREFIX}"

    def is_ready(self, timeout: float = 2.0) -> bool:
        """Whether the server answers HTTP at all (anonymous requests get 403: that is fine)."""
        if self.endpoint is None:
            return False
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(f"{self.endpoint}/", timeout=timeout):
                return True
        except urllib.error.HTTPError:
            return True
        except (urllib.error.URLError, OSError, ValueError):
            return False

    def credentials(self) -> dict[str, str]:
        """The access key pair, generated on first use into a 0600 file and reused after."""
        if self.credentials_path.is_file():
            data = json.loads(self.credentials_path.read_text())
            return {"access_key": str(data["access_key"]), "secret_key": str(data["secret_key"])}
        data = {"access_key": "TS" + secrets.token_hex(9).upper(), "secret_key": secrets.token_urlsafe(30)}
        _write_private(self.credentials_path, json.dumps(data))
        return data

    def _choose_port(self) -> int:
        if self._want_port:
            return self._want_port
        recorded = self._state().get("port")
        if recorded and not port_in_use(int(recorded)):
            return int(recorded)
        return find_free_port()

    def start(self, timeout: float = 60.0) -> dict[str, Any]:
        """Start s3proxy (or find it running) and wait until it answers; idempotent."""
        running = self.pid
        if running is not None:
            if not wait_until(self.is_ready, timeout, interval=0.25, pid=running):
                raise S3StartError(
                    f"s3proxy (pid {running}) runs but does not answer.\n{tail(self.log_path)}"
                )
            return self.status()
        java = check_java()
        jars = resolve_s3proxy(self.jar_dir)
        port = self._choose_port()
        (self.data_dir / BUCKET).mkdir(parents=True, exist_ok=True)
        creds = self.credentials()
        props = {
            "s3proxy.endpoint": f"http://{LOCALHOST}:{port}",
            "s3proxy.authorization": "aws-v2-or-v4",
            "s3proxy.identity": creds["access_key"],
            "s3proxy.credential": creds["secret_key"],
            "jclouds.provider": "filesystem-nio2",
            "jclouds.filesystem.basedir": str(self.data_dir),
            "jclouds.identity": "local",
            "jclouds.credential": "local",
        }
        if self.read_only:  # refuses every write: how tests meet a read-only store
            props["s3proxy.read-only-blobstore"] = "true"
        _write_private(self.properties_path, "".join(f"{k}={v}\n" for k, v in props.items()))
        if self.log_path.exists():
            self.log_path.replace(self.log_path.with_suffix(".log.1"))
        logback = self.home / "logback.xml"
        logback.write_text(_LOGBACK)
        argv = [java, "-Xmx256m", "-XX:+UseSerialGC", f"-Dlogback.configurationFile={logback}"]
        argv += ["-cp", f"{jars}/*", _MAIN]
        started = time.monotonic()
        pid = start_detached([*argv, "--properties", str(self.properties_path)], self.log_path, cwd=self.home)
        state: dict[str, Any] = {"pid": pid, "port": port}
        write_json(self.state_path, state)
        if not wait_until(self.is_ready, timeout, interval=0.25, pid=pid):
            died = not stop_pid(pid, timeout=10.0)
            why = "its process exited" if died else f"no answer within {timeout:.0f}s"
            raise S3StartError(
                f"s3proxy failed to start ({why}). Log {self.log_path}:\n{tail(self.log_path)}"
            )
        state["startup_seconds"] = round(time.monotonic() - started, 2)
        write_json(self.state_path, state)
        return self.status()

    def status(self) -> dict[str, Any]:
        """Whether s3proxy runs and answers, with its pid, port, endpoint, log and data dir."""
        pid = self.pid
        return {
            "running": pid is not None,
            "ready": pid is not None and self.is_ready(),
            "pid": pid,
            "port": self.port,
            "endpoint": self.endpoint,
            "object_store_url": self.object_store_url,
            "credentials_file": str(self.credentials_path),
            "log": str(self.log_path),
            "data_dir": str(self.data_dir),
            "startup_seconds": self._state().get("startup_seconds"),
        }


def stack_entries(status: dict[str, Any]) -> dict[str, Any]:
    """What ``stack.json`` records about the S3 server: the dataset URL and its endpoint, the
    credentials file's path (the secret itself stays in that 0600 file)."""
    keys = ("pid", "port", "endpoint", "log", "data_dir", "credentials_file")
    return {"object_store_url": status["object_store_url"], "s3": {k: status[k] for k in keys}}


def s3_answers(info: dict[str, Any], service: S3ProxyService) -> bool:
    """Whether ``stack.json`` describes the running S3 server."""
    recorded = info.get("s3") or {}
    return service.pid is not None and service.pid == recorded.get("pid") and service.is_ready()


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by the owner only (created 0600, never wider)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    tmp.replace(path)
