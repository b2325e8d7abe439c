"""Fixtures for the end-to-end tests: the product as a user starts it, and a headless browser.

``product`` runs ``tradesignals dev`` (what ``make dev`` runs: its own Kafka broker, schema
registry, the flagship pipelines and ``dg dev``) on a free 127.0.0.1 port with a fresh state
directory, so Dagster's instance (DAGSTER_HOME) is temporary too. ``browser`` is Debian's
Chromium driven by Playwright's sync API; Playwright's own browser download is never used.
A product or browser that cannot start fails the tests: nothing here skips.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from ui_support import (
    CHROMIUM_ARGS,
    READY_QUERY,
    RESULTS,
    ROOT,
    START_TIMEOUT_S,
    Product,
    chromium_path,
    free_port,
)


@pytest.fixture(scope="module")
def product(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Product]:
    """``tradesignals dev`` on a free port, up until its UI lists the registry's assets."""
    tmp = tmp_path_factory.mktemp("product")
    running = Product(port=free_port(), state=tmp / "state", log=tmp / "dev.log")
    env = {**os.environ, "TRADESIGNALS_STATE_DIR": str(running.state)}
    for var in ("TRADESIGNALS_BOOTSTRAP_SERVERS", "TRADESIGNALS_SCHEMA_REGISTRY_URL", "DAGSTER_HOME"):
        env.pop(var, None)
    with running.log.open("w") as log:
        proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "tradesignals"), "dev", "--port", str(running.port)],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            _wait_until_up(running, proc)
            yield running
        finally:
            _stop(proc)
            _leave_nothing_running(running.state)


def _leave_nothing_running(state: Path) -> None:
    """Stop whatever the product left under its state dir (a failed start must not leave a
    stack and pipelines eating the CPU of every later test)."""
    from tradesignals_dagster.deploy.operations import runtime_for
    from tradesignals_dagster.settings import Settings
    from tradesignals_dagster.stack.stack import stack_down

    settings = Settings(state_dir=state)
    runtime = runtime_for(settings)
    for status in runtime.list():
        runtime.stop(status.key, timeout=20)
    stack_down(settings)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Ctrl-C the product's process group (it stops Dagster, pipelines and stack), then kill."""
    try:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=90)
    except ProcessLookupError:
        return  # it already exited (the failure says why)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)


def _wait_until_up(running: Product, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"tradesignals dev exited:\n{running.tail()}"
        try:
            if running.graphql(READY_QUERY)["assetsOrError"]["nodes"]:
                return
        except OSError:
            pass
        time.sleep(3)
    pytest.fail(f"the Dagster UI did not come up in {START_TIMEOUT_S} s:\n{running.tail()}")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Headless system Chromium."""
    chromium = chromium_path()
    assert chromium.is_file(), f"{chromium} is missing: .ci/run installs Debian's chromium"
    with sync_playwright() as pw:
        launched = pw.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS, headless=True)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(scope="module")
def page(browser: Browser, product: Product) -> Iterator[Page]:
    """One 1920x1080 page for the module, generous timeouts for a loaded two-core machine.
    Dagster's first-visit "Join the Dagster community" dialog shows once per instance (the UI
    asks the server, then opens it a second later): it is waited for and skipped here. Should
    it show later (a slow first load), the locator handler skips it before the next action, so
    it never covers a button a test clicks."""
    context = browser.new_context(viewport={"width": 1920, "height": 1080})
    context.set_default_timeout(120_000)
    pg = context.new_page()
    try:
        skip = pg.get_by_role("button", name="Skip")
        pg.goto(product.url + "/asset-groups", wait_until="domcontentloaded")
        try:
            skip.wait_for(state="visible", timeout=60_000)
        except PlaywrightTimeout:
            pass  # not shown (yet): the handler below skips it when it does
        else:
            skip.click()
            skip.wait_for(state="hidden")
        # Registered only now: a handler for the very locator an action targets runs first,
        # clicks the button away, and the action then waits for a button that is gone.
        pg.add_locator_handler(skip, lambda: skip.click())
        yield pg
    finally:
        context.close()


@pytest.fixture(scope="session")
def results_dir() -> Path:
    """Where screenshots go (gitignored), for a reviewer to look at."""
    RESULTS.mkdir(exist_ok=True)
    return RESULTS


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Keep each phase's report on the test item, for ``_capture_on_failure``."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture(autouse=True)
def _capture_on_failure(request: pytest.FixtureRequest) -> Iterator[None]:
    """A failed browser test leaves what the page showed (screenshot and DOM) in
    ``test-results/failures/``, so the cause is looked at, not guessed."""
    yield
    report = getattr(request.node, "report_call", None)
    if report is None or not report.failed or "page" not in request.fixturenames:
        return
    pg: Page = request.getfixturevalue("page")
    out = RESULTS / "failures"
    out.mkdir(parents=True, exist_ok=True)
    try:
        pg.screenshot(path=str(out / f"{request.node.name}.png"), full_page=True)
        (out / f"{request.node.name}.html").write_text(pg.content())
    except Exception as exc:  # the page may be gone with the product; the failure says why
        (out / f"{request.node.name}.txt").write_text(f"no capture: {exc!r}\n")
