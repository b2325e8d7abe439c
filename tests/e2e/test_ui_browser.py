"""The Dagster UI as a person meets it, in headless Chromium against ``tradesignals dev``.

What is asserted is what the page renders: the lineage graph's node labels (read from the DOM,
full text and no CSS overflow; where Dagster abbreviates a label when zoomed out, the tooltip
the box shows on hover) inside their group boxes, the asset page's columns, metadata and
check results, a materialization launched with the page's own button showing in Runs, the
sensors' switches on, and a plotted series (pixels drawn in the plot's canvas) of the health
sensor's observations. Screenshots go to ``test-results/``.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect
from ui_support import ROOT, Product

from tradesignals_dagster.defs.build import build_definitions
from tradesignals_dagster.registry.application import load_app
from tradesignals_dagster.settings import Settings

# The first test also waits for `tradesignals dev` to come up (stack, materializations, dg dev):
# minutes on two shared cores, beyond the suite's 300 s default.
pytestmark = [pytest.mark.timeout(900), pytest.mark.browser]

FLAGSHIP_TOPIC = "option_trades_aggs"
PLOTTED_PIPELINE = "option_trades_ingest"


def flagship(tmp_path: Path) -> Settings:
    return Settings(registry=ROOT / "registry", pipelines_dir=ROOT / "pipelines", state_dir=tmp_path)


def expected_nodes(tmp_path: Path) -> dict[str, str]:
    """Node label (last key component) -> group, for every asset of the flagship registry."""
    graph = build_definitions(flagship(tmp_path)).resolve_asset_graph()
    nodes: dict[str, str] = {}
    for key in graph.get_all_asset_keys():
        nodes[key.path[-1]] = str(graph.get(key).group_name)
    return nodes


def open_page(page: Page, product: Product, path: str) -> None:
    """Go to ``path`` and wait for the app's navigation (the first-visit dialog is skipped by
    the ``page`` fixture, whenever it shows)."""
    page.goto(product.url + path, wait_until="domcontentloaded")
    page.get_by_role("link", name="Runs").first.wait_for()


_GRAPH_JS = """() => {
  const box = (e) => { const r = e.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; };
  const groups = Array.from(document.querySelectorAll('foreignObject.group')).map((g) => ({
    name: ((g.querySelector('[data-tooltip]') || g).textContent || '').trim().split('\\n')[0], box: box(g)}));
  const nodes = Array.from(document.querySelectorAll('foreignObject:not(.group)')).map((f) => {
    const t = f.querySelector('[data-tooltip]');
    const d = f.querySelector('div');
    return {text: (t || d || {innerText: ''}).innerText.trim().split('\\n')[0], full: t ? t.getAttribute('data-tooltip') : null,
            sw: t ? t.scrollWidth : 0, cw: t ? t.clientWidth : 0, box: box(f)};
  }).filter((n) => n.text);
  return {groups, nodes};
}"""


def _inside(inner: list[float], outer: list[float]) -> bool:
    return outer[0] <= inner[0] and outer[1] <= inner[1] and inner[2] <= outer[2] and inner[3] <= outer[3]


def _names(shown: str, label: str) -> bool:
    """Whether the rendered text ``shown`` is ``label``, or Dagster's middle abbreviation of it
    (``option_tra…_ingest``) that keeps its start and its end."""
    if shown == label:
        return True
    head, sep, tail = shown.partition("\u2026")
    return bool(sep) and label.startswith(head) and label.endswith(tail) and len(shown) < len(label)


_TEXT_NODES_JS = """n => Array.from(document.querySelectorAll('foreignObject:not(.group)'))
  .filter((f) => (f.textContent || '').trim()).length >= n"""


def open_expanded_lineage(page: Page, product: Product, assets: int) -> dict[str, Any]:
    """The global lineage view with every group expanded and the view fitted to the window, once
    its ``assets`` nodes are drawn and stopped moving (``_GRAPH_JS``'s answer). The browser
    remembers expanded groups, so after an earlier expansion the menu offers "Collapse all
    groups" instead: then the graph is left as it is."""
    open_page(page, product, "/asset-groups")
    page.locator("foreignObject.group").first.wait_for()
    page.locator("button:has([aria-label=settings])").last.click()
    expand = page.get_by_role("menuitem", name="Expand all groups")
    expand.or_(page.get_by_role("menuitem", name="Collapse all groups")).wait_for()
    if expand.count():
        expand.click()
    page.reload(wait_until="domcontentloaded")  # the view opens fitted to the expanded graph
    page.wait_for_function(_TEXT_NODES_JS, arg=assets)
    deadline, last = time.monotonic() + 60, None
    while True:  # the fit is animated: read the graph once two looks agree
        graph: dict[str, Any] = page.evaluate(_GRAPH_JS)
        if graph == last or time.monotonic() > deadline:
            return graph
        last = graph
        time.sleep(1)


def resolve_labels(page: Page, nodes: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Full label -> drawn node. A label drawn whole is read as it is; one Dagster abbreviates
    at this zoom (``option_tra…_ingest``) is read from the tooltip the box shows on hover, as a
    person finds out which asset it is, and must be an abbreviation of that label."""
    resolved: dict[str, dict[str, Any]] = {}
    for node in nodes:
        label = node["text"]
        if "\u2026" in label:
            box = page.locator("foreignObject:not(.group) [data-state]").filter(
                has_text=re.compile(f"^{re.escape(label)}$")
            )
            label = _hover_tooltip(page, box, label)
        assert label not in resolved, f"two boxes are {label}: {resolved[label]['text']!r}, {node['text']!r}"
        resolved[label] = node
    page.mouse.move(5, 5, steps=10)
    return resolved


def _hover_tooltip(page: Page, box: Any, shown: str) -> str:
    """The tooltip text the box ``shown`` opens on hover.

    The mouse first leaves the graph so the previous box's tooltip closes; when the graph
    re-renders under the pointer, that tooltip can stay open (seen in CI), so the text read is
    the one tooltip that was not open before the hover and abbreviates to ``shown``."""
    tooltip = page.get_by_role("tooltip")
    page.mouse.move(5, 5, steps=10)  # off the graph, crossing its edge
    with_stale = time.monotonic() + 5
    while tooltip.count() and time.monotonic() < with_stale:
        time.sleep(0.2)
    stale = {t.strip() for t in tooltip.all_text_contents()}
    box.hover()
    deadline = time.monotonic() + 30
    while True:
        texts = [t.strip() for t in tooltip.all_text_contents()]
        fresh = [t for t in texts if t not in stale]
        if fresh:
            assert len(fresh) == 1 and _names(shown, fresh[0]), f"box {shown!r} opened the tooltips {fresh!r}"
            return fresh[0]
        if time.monotonic() > deadline:
            raise AssertionError(f"hovering box {shown!r} opened no new tooltip (open: {texts!r})")
        time.sleep(0.2)


def test_lineage_labels_tell_every_asset_apart_in_its_group(
    product: Product, page: Page, tmp_path: Path, results_dir: Path
) -> None:
    """The whole graph, groups expanded and fitted to a 1920x1080 window: no two boxes read the
    same, even where Dagster abbreviates labels at this zoom; every box is the asset its label
    (or, abbreviated, its tooltip) names, each asset of the registry exactly once, drawn inside
    its group's box."""
    expected = expected_nodes(tmp_path)
    graph = open_expanded_lineage(page, product, len(expected))
    page.screenshot(path=str(results_dir / "lineage.png"))

    groups = {g["name"]: g["box"] for g in graph["groups"]}
    assert set(groups) == set(expected.values())
    shown = [n["text"] for n in graph["nodes"]]
    assert len(shown) == len(expected) and len(set(shown)) == len(shown), f"boxes read the same: {shown}"
    resolved = resolve_labels(page, graph["nodes"])
    assert sorted(resolved) == sorted(expected), shown
    for label, group in expected.items():
        assert _inside(resolved[label]["box"], groups[group]), f"{label} is not drawn inside group {group}"


def test_each_group_lineage_shows_its_assets_with_full_labels(
    product: Product, page: Page, tmp_path: Path, results_dir: Path
) -> None:
    """A group's own lineage page (where a person reads one role at a time): every label in
    full, nothing cut off by the node's width."""
    expected = expected_nodes(tmp_path)
    for group in sorted(set(expected.values())):
        members = {label for label, g in expected.items() if g == group}
        open_page(page, product, f"/locations/tradesignals/asset-groups/{group}/lineage")
        page.wait_for_function(
            "n => document.querySelectorAll('foreignObject [data-tooltip]').length >= n", arg=len(members)
        )
        time.sleep(1)
        if group == "pipelines":
            page.screenshot(path=str(results_dir / "lineage_pipelines.png"))
        nodes = {n["full"]: n for n in page.evaluate(_GRAPH_JS)["nodes"] if n["full"]}
        assert set(nodes) == members, group
        for label, node in nodes.items():
            assert node["text"] == label, f"label rendered as {node['text']!r}, not {label!r}"
            assert node["sw"] <= node["cw"], f"label {label!r} overflows its node (cut off)"


def test_lineage_reads_left_to_right_as_the_data_flows(product: Product, page: Page, tmp_path: Path) -> None:
    flow = [
        "option_trades_ingest_feed",
        "option_trades_ingest",
        "option_trades",
        "option_trade_volume_bars",
        "option_trades_aggs",
    ]
    graph = open_expanded_lineage(page, product, len(expected_nodes(tmp_path)))
    nodes = resolve_labels(page, graph["nodes"])
    lefts = [nodes[label]["box"][0] for label in flow]
    assert lefts == sorted(lefts) and len(set(lefts)) == len(lefts), dict(zip(flow, lefts, strict=True))


def test_asset_page_shows_columns_metadata_and_latest_check_results(
    product: Product, page: Page, tmp_path: Path, results_dir: Path
) -> None:
    app = load_app(flagship(tmp_path))
    columns = [f["name"] for f in app.schemas[FLAGSHIP_TOPIC]["fields"]]
    open_page(page, product, f"/assets/kafka/{FLAGSHIP_TOPIC}")
    page.get_by_text("Columns", exact=True).wait_for()
    page.get_by_text("replication_factor", exact=True).wait_for()
    page.get_by_text("Latest check results").wait_for()
    page.screenshot(path=str(results_dir / "asset_page.png"), full_page=True)
    body = page.inner_text("body")
    for column in columns:
        assert page.get_by_text(column, exact=True).count() >= 1, f"column {column} not shown"
    for key in ("partitions", "replication_factor", "messages_written", "num_partitions"):
        assert page.get_by_text(key, exact=True).count() >= 1, f"metadata {key} not shown"
    assert "Option trades aggregated by symbol" in body  # the description
    assert "topics" in page.inner_text("body")  # the group in the Definition panel

    open_page(page, product, f"/assets/kafka/{FLAGSHIP_TOPIC}?view=checks")
    page.get_by_text("matches_registry").first.wait_for()
    page.get_by_text("Evaluation result").first.wait_for()
    page.screenshot(path=str(results_dir / "asset_checks.png"), full_page=True)
    assert page.get_by_text("Passed", exact=True).count() >= 1


_RUNS = """{ runsOrError(limit: 50) { ... on Runs { results {
  runId status assetSelection { path } } } } }"""


def _runs(product: Product) -> list[dict[str, Any]]:
    return list(product.graphql(_RUNS)["runsOrError"]["results"])


def test_materialize_button_launches_a_run_that_succeeds_and_shows_in_runs(
    product: Product, page: Page, results_dir: Path
) -> None:
    before = {r["runId"] for r in _runs(product)}
    open_page(page, product, "/assets/schemas/option_trades-value")
    page.get_by_text("Latest materialization").wait_for()
    # The button reads "Materialize" (its accessible name is "materialization Materialize": the
    # icon's label comes first); "Materialize all" and the like are other buttons.
    page.locator("button").filter(has_text=re.compile(r"^Materialize$")).click()

    deadline, run = time.monotonic() + 240, None
    while time.monotonic() < deadline:
        mine = [
            r
            for r in _runs(product)
            if r["runId"] not in before
            and [a["path"] for a in r["assetSelection"] or []] == [["schemas", "option_trades-value"]]
        ]
        if mine and mine[0]["status"] in ("SUCCESS", "FAILURE", "CANCELED"):
            run = mine[0]
            break
        time.sleep(2)
    assert run is not None, "no run was launched by the Materialize button (or it never finished)"
    assert run["status"] == "SUCCESS", run

    open_page(page, product, "/runs")
    # The runs list is a virtualized table of divs, a row per run with a link to it.
    row = page.locator("[data-index]").filter(has=page.locator(f"a[href$='/runs/{run['runId']}']"))
    row.wait_for()
    assert run["runId"][:8] in row.inner_text() and "Success" in row.inner_text(), row.inner_text()
    page.screenshot(path=str(results_dir / "runs.png"))


def test_sensors_are_running(product: Product, page: Page, tmp_path: Path) -> None:
    """Each sensor's row on the Automation page has its switch on. A row shows its select box
    at once and its switch only once the sensor's state has loaded: a spinner before, then for
    a moment a disabled, unchecked switch; what is read is the switch once it can be used."""
    defs = build_definitions(flagship(tmp_path))
    names = sorted(s.name for s in defs.sensors or [])
    assert names
    open_page(page, product, "/automation")
    for name in names:
        row = page.locator("[data-index]").filter(has=page.locator(f"a[href$='/sensors/{name}']"))
        row.wait_for()
        switch = row.locator("input[type=checkbox]").nth(1)  # [select, running]
        expect(switch).to_be_enabled(timeout=120_000)  # drawn (a disabled, unchecked switch while loading)
        expect(switch, f"sensor {name}'s switch is off").to_be_checked(timeout=15_000)


_OBSERVATIONS = """query($path: [String!]!) { assetOrError(assetKey: {path: $path}) { ... on Asset {
  assetObservations(limit: 20) { timestamp metadataEntries { label } } } } }"""

_CANVAS_JS = """(title) => {
  const heads = Array.from(document.querySelectorAll('*')).filter(
    (e) => e.childElementCount === 0 && e.textContent === title);
  for (let e of heads) {
    while (e && !e.querySelector('canvas')) e = e.parentElement;
    if (!e) continue;
    const c = e.querySelector('canvas');
    const data = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let colored = 0;
    for (let i = 0; i < data.length; i += 4) {
      const [r, g, b, a] = [data[i], data[i + 1], data[i + 2], data[i + 3]];
      if (a > 0 && Math.max(r, g, b) - Math.min(r, g, b) > 60) colored++;
    }
    return {width: c.width, height: c.height, colored};
  }
  return null;
}"""


def test_pipeline_asset_plots_the_health_sensors_observations(
    product: Product, page: Page, results_dir: Path
) -> None:
    """The health sensor records lag and throughput counters as observations every tick; the
    asset page's Metadata > Plots draws them as series over time."""
    path = ["pipelines", PLOTTED_PIPELINE]
    deadline, observed = time.monotonic() + 240, []
    while time.monotonic() < deadline:
        observed = product.graphql(_OBSERVATIONS, {"path": path})["assetOrError"]["assetObservations"]
        if len(observed) >= 3:
            break
        time.sleep(5)
    assert len(observed) >= 3, f"the health sensor recorded {len(observed)} observations"
    labels = {m["label"] for m in observed[0]["metadataEntries"]}
    assert {"consumer_lag", "records_in_total", "records_out_total"} <= labels

    open_page(page, product, "/assets/" + "/".join(path))
    page.get_by_text("Metadata", exact=True).first.wait_for()
    page.get_by_role("button", name="Plots").first.click()
    for series in ("records_out_total", "consumer_lag"):
        page.get_by_text(series, exact=True).first.wait_for()
    page.wait_for_function("() => document.querySelectorAll('canvas').length >= 2")
    time.sleep(2)  # let the charts finish their draw animation
    page.screenshot(path=str(results_dir / "pipeline_plots.png"), full_page=True)
    drawn = page.evaluate(_CANVAS_JS, "records_out_total")
    assert drawn is not None, "no plot canvas under the records_out_total title"
    assert drawn["colored"] > 200, f"the records_out_total plot has no drawn series: {drawn}"
