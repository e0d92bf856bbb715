"""The report site seen in a real browser: Debian's headless Chromium, driven by Playwright.

Builds the site from the published fixtures, opens its pages from disk (file://, so nothing
can come from the network), and checks through the DOM that the tables and plots rendered,
that sorting works, and that no page logged a console error or failed to load a resource.
Saves screenshots next to the site, or in $MLPACE_SCREENSHOTS when set (CI keeps them); the
paths are printed. Skips, saying why, when Chromium
(`apt-get install chromium`) or the `playwright` package is missing; CI installs both.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from mlpace.report.site import build_site
from mlpace.results.importers import import_trees
from mlpace.results.store import open_store

FIXTURES = Path(__file__).resolve().parents[1] / "data" / "mlperf"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# The flags a shared CI machine needs: no sandbox (containers), no GPU, nothing that phones home.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (Debian: apt-get install chromium)"),
]


def screenshot(page, site: Path, name: str) -> Path:
    folder = Path(os.environ.get("MLPACE_SCREENSHOTS") or site)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"screenshot-{name}.png"
    page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}")
    return path


@pytest.fixture(scope="module")
def browser_page(module_db_url, tmp_path_factory):
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    root = tmp_path_factory.mktemp("browser")
    store = open_store(module_db_url)
    assert import_trees(store, [FIXTURES / "training_v1.0", FIXTURES / "inference_v1.1"]).failures == []
    build_site(store, root / "site", compare_system="tpu-v4-128-TF")
    problems: list[str] = []
    with sync_api.sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(root / "profile"), executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": 1000})
        page = context.new_page()
        page.on("console", lambda msg: msg.type == "error" and problems.append(f"console: {msg.text}"))
        page.on("pageerror", lambda err: problems.append(f"page error: {err}"))
        page.on("requestfailed", lambda req: problems.append(f"failed to load {req.url}"))
        try:
            yield page, root / "site", problems
        finally:
            context.close()


def test_index_tables_render_and_sort(browser_page):
    page, site, problems = browser_page
    page.goto((site / "index.html").as_uri())
    page.wait_for_selector("table[data-sortable-ready]")
    assert page.locator("table.sortable").count() >= 5
    first = page.locator("table.sortable").first
    assert first.locator("tbody tr").count() == 5                    # NVIDIA x4 + Intel, closed
    assert "28.77" in first.inner_text()
    resnet_header = first.locator("thead th", has_text="resnet")
    resnet_header.click()
    column = [th.strip() for th in first.locator("thead th").all_inner_texts()].index("resnet")
    values = first.locator(f"tbody tr td:nth-child({column + 1})").all_inner_texts()
    assert [v for v in values if v.strip()] == ["28.77", "943.97"]  # ascending, blanks last
    resnet_header.click()
    values = first.locator(f"tbody tr td:nth-child({column + 1})").all_inner_texts()
    assert [v for v in values if v.strip()][:2] == ["943.97", "28.77"]
    assert resnet_header.get_attribute("aria-sort") == "descending"
    assert screenshot(page, site, "index").stat().st_size > 10_000
    assert problems == []


def test_plots_render_with_a_real_size(browser_page):
    page, site, problems = browser_page
    page.goto((site / "benchmarks" / "training-resnet.html").as_uri())
    plots = page.locator("svg.plot")
    assert plots.count() == 4                                         # strip plot + 3 systems
    for i in range(plots.count()):
        box = plots.nth(i).bounding_box()
        assert box and box["width"] > 300 and box["height"] > 80
    assert page.locator("svg.plot circle.run").count() == 13
    assert page.locator("svg.plot polyline.curve").count() == 15
    assert page.locator("svg.plot line.target").count() == 3
    screenshot(page, site, "resnet")
    for name in ("compare.html", "history.html", "benchmarks/inference-resnet50.html"):
        page.goto((site / name).as_uri())
        assert page.locator("svg.plot").count() >= 1, name
    assert problems == []
