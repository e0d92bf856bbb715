"""The static report site, read as files: pages, tables, inline SVG plots, offline links."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mlpace import cli
from mlpace.report import svg
from mlpace.report.site import build_site
from mlpace.results.importers import import_trees
from mlpace.results.store import open_store

FIXTURES = Path(__file__).resolve().parents[1] / "data" / "mlperf"
TRAINING = FIXTURES / "training_v1.0"
INFERENCE = FIXTURES / "inference_v1.1"



@pytest.fixture(scope="module")
def site(module_db_url, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("report")
    store = open_store(module_db_url)
    assert import_trees(store, [TRAINING, INFERENCE]).failures == []
    (root / "site").mkdir()
    (root / "site" / "notes.txt").write_text("mine")     # a user's file: must survive
    build_site(store, root / "site", compare_system="tpu-v4-128-TF")
    return root / "site"


def test_every_page_links_only_to_files_of_the_site(site):
    pages = list(site.rglob("*.html"))
    assert len(pages) >= 1 + 2 + 8 + 15                  # index, compare/history, benchmarks, systems
    for page in pages:
        html = page.read_text()
        for target in re.findall(r'(?:href|src)="([^"]+)"', html):
            assert not re.match(r"^[a-z]+:", target), f"{page.name} links outside the site: {target}"
            assert (page.parent / target.split("#")[0]).resolve().is_file(), f"{page}: broken {target}"
    assert (site / "notes.txt").read_text() == "mine"
    assert not list(site.rglob(".*"))                  # no temporary files left behind


def test_index_has_the_round_tables_as_published(site):
    html = (site / "index.html").read_text()
    assert [h for h in re.findall(r"<h2[^>]*>([^<]+)</h2>", html)] == ["training v1.0", "inference v1.1"]
    headings = re.findall(r"<h3>([^<]+)</h3>", html)
    assert headings[:3] == ["Closed division, Available", "Closed division, Preview",
                            "Open division, Available"]
    first_table = html.split("<table")[1]
    assert re.findall(r"<th>([^<]+)</th>", first_table) == [
        "Submitter", "System", "Processor", "#", "Accelerator", "#", "Software",
        "bert", "dlrm", "maskrcnn", "minigo", "resnet", "rnnt", "ssd", "unet3d"]
    for score in ("28.77", "8.52", "29.16", "21.69", "50.39", "38.70", "269.54", "1.96", "943.97"):
        assert f">{score}</a>" in first_table
    assert 'data-sort="28.77' in first_table and 'class="sortable"' in first_table


def test_benchmark_page_draws_runs_convergence_and_target(site):
    html = (site / "benchmarks" / "training-resnet.html").read_text()
    strip = html.split("<svg")[1]
    assert strip.count('class="run"') == 13                  # converged resnet runs
    assert strip.count('class="score"') == 3                 # Google, NVIDIA, Intel
    assert "(log scale)" in strip                           # 4 to 944 minutes
    assert html.count('class="curve"') == 15                 # every run's curve, 3 systems x 5
    targets = re.findall(r'class="target"[^>]*><title>target ([\d.]+)</title>', html)
    assert targets == ["0.759"] * 3
    maskrcnn = (site / "benchmarks" / "training-maskrcnn.html").read_text()
    assert re.findall(r"<title>target ([\d.]+)</title>", maskrcnn) == ["0.377", "0.377"]   # BBOX
    inference = (site / "benchmarks" / "inference-resnet50.html").read_text()
    assert inference.count("<svg") == 2 and 'class="bar"' in inference     # Offline, Server


def test_system_compare_and_history_pages(site):
    system_pages = {p: p.read_text() for p in (site / "systems").glob("*.html")}
    nvidia = next(text for text in system_pages.values() if "dgxa100_ngc21.05_mxnet</code>" in text)
    assert "AMD EPYC 7742" in nvidia and "NVLINK 3.0" in nvidia and "Compared with other systems" in nvidia
    compare = (site / "compare.html").read_text()
    assert "tpu-v4-128-TF" in compare and "<svg" in compare
    # resnet speedup of the TPU over the DGX A100 (MXNet): 28.77 / 4.30
    assert re.search(r'data-sort="6\.6[89]\d*"', compare)
    history = (site / "history.html").read_text()
    assert "training v1.0" in history and "inference v1.1" in history
    assert history.count("<svg") == 8 + 16     # training benchmarks + closed (benchmark, scenario) pairs


def test_report_verb_refuses_a_file_as_output(tmp_path, monkeypatch, capsys):
    target = tmp_path / "site.html"
    target.write_text("keep me")
    monkeypatch.setattr(cli, "COMMAND_MODULES", ["mlpace.commands.store"])
    code = cli.main(["report", "--out", str(target), "--db", str(tmp_path / "r.sqlite")])
    assert code == 2 and "is not a folder" in capsys.readouterr().err
    assert target.read_text() == "keep me"


def test_axis_goes_logarithmic_only_for_wide_ranges():
    assert svg.Axis([1.0, 1000.0], 0, 100).log
    assert not svg.Axis([20.0, 30.0], 0, 100).log
    axis = svg.Axis([1.0, 100.0], 0, 100)
    assert axis(1.0) == pytest.approx(0) and axis(100.0) == pytest.approx(100)
    assert axis.ticks() == [1, 10, 100]


def test_an_empty_store_gives_a_site_that_says_so(db_url, tmp_path):
    index = build_site(open_store(db_url), tmp_path / "site")
    assert "The store is empty" in index.read_text()
    assert "--compare SYSTEM" in (tmp_path / "site" / "compare.html").read_text()
    assert "No scored" in (tmp_path / "site" / "history.html").read_text()


def test_a_rebuild_removes_the_pages_of_what_left_the_store_and_nothing_else(db_url, tmp_path):
    """A site rebuilt into the same folder from a store that lost a system (or from another
    store) kept the old system's page: a page for a result the store no longer holds."""
    import json
    from mlpace.report.site import PAGES_WRITTEN
    site = tmp_path / "site"
    first = open_store(f"sqlite:///{tmp_path / 'first.sqlite'}")
    assert import_trees(first, [TRAINING / "Intel", TRAINING / "Graphcore"]).failures == []
    build_site(first, site)
    old_pages = {p.relative_to(site).as_posix() for p in site.glob("*/*.html")}
    (site / "systems" / "my-notes.html").write_text("mine")        # the user's: never removed
    (tmp_path / "victim.html").write_text("outside")
    second = open_store(f"sqlite:///{tmp_path / 'second.sqlite'}")
    assert import_trees(second, [TRAINING / "Graphcore"]).failures == []
    build_site(second, site)
    pages = {p.relative_to(site).as_posix() for p in site.glob("*/*.html")} - {"systems/my-notes.html"}
    listed = json.loads((site / PAGES_WRITTEN).read_text())
    assert pages == set(listed) and pages < old_pages             # Intel's pages are gone
    assert "Intel" not in "".join((site / p).read_text() for p in pages if p.startswith("systems/"))
    assert (site / "systems" / "my-notes.html").read_text() == "mine"
    # A crafted list never removes anything but mlpace's own page names inside the site.
    (site / PAGES_WRITTEN).write_text(json.dumps(["../victim.html", "/etc/hostname", "systems/my-notes.html",
                                                  "index.html", 7]))
    build_site(second, site)
    assert (tmp_path / "victim.html").exists() and (site / "systems" / "my-notes.html").exists()
    assert (site / "index.html").exists()
