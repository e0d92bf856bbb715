"""Every tree-reading verb against every case of the hostile corpus (tests/hostile/corpus.py).

For each: the exit code is 0, 1 or 2 as documented; an error is one `error:` line (with the
list of problems below it, indented, where there are several), never a traceback; nothing outside the tree was read (an audit hook records every open and listing);
nothing was written outside --out; the tree is unchanged; and results written before (a
summary CSV, a store holding another submission) are byte-identical after a refusal.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from corpus import (ACCESSES, CASES, GRAPHCORE, INFERENCE_CASES, build, remove, run,  # noqa: E402
                    scratch_left, snapshot)

from mlpace import cli  # noqa: E402

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def earlier(tmp_path_factory):
    """A store and a summary CSV made before the hostile tree arrives (copied per test)."""
    folder = tmp_path_factory.mktemp("earlier")
    assert cli.main(["import", str(GRAPHCORE), "--db", f"sqlite:///{folder / 'store.sqlite'}"]) == 0
    assert cli.main(["summarize", str(GRAPHCORE), "--csv", str(folder / "summary.csv")]) == 0
    return folder


def _stored(capsys, url: str) -> str:
    code, out, err = run(capsys, ["results", "--db", url, "--format", "json"])
    assert code == 0, err
    return out


def _assert_clean(case, argv, code, out, err, outside, allowed):
    where = f"{case!r}: mlpace {argv[0]}"
    assert code in (0, 1, 2), f"{where} exited {code}"
    assert "Traceback" not in out + err, f"{where} printed a traceback:\n{err}"
    lines = err.strip().splitlines()
    if argv[0] == "import":
        # A batch verb: one line per submission not imported and per file skipped.
        assert all(line.startswith(("error: ", "warning: ")) for line in lines), f"{where}: {err!r}"
    elif code == 2:
        # One `error:` line; a list of problems may follow it, one indented line each.
        assert lines[0].startswith("error: ") and all(line.startswith("  ") for line in lines[1:]), \
            f"{where}: {err!r}"
    assert not ACCESSES.read_inside(outside), f"{where} read outside the tree: {ACCESSES.read_inside(outside)}"
    assert not ACCESSES.written_outside(allowed), f"{where} wrote {ACCESSES.written_outside(allowed)}"
    assert "STOLEN" not in out + err, f"{where} shows what lies outside the tree"
    assert not any(code in out + err for code in ("\x1b[2J", "\x07", "\r")), \
        f"{where} passed a terminal control sequence from the tree to the terminal"
    assert not scratch_left(), f"{where} left scratch copies behind"


@pytest.mark.parametrize("case", sorted(CASES) + sorted(INFERENCE_CASES))
def test_every_verb_survives_the_hostile_tree(case, tmp_path, capsys, earlier):
    org, outside = build(tmp_path, case)
    tree = base = tmp_path / "tree"
    before = snapshot(tree)
    out = tmp_path / "out"
    shutil.copytree(earlier, out)
    url = f"sqlite:///{out / 'store.sqlite'}"
    stored_before = _stored(capsys, url)
    summary_before = (out / "summary.csv").read_bytes()

    verbs = [
        ["summarize", str(tree), "--workers", "1", "--csv", str(out / "summary.csv"),
         "--json", str(out / "summary.json")],
        ["check", str(tree), "--workers", "1", "--json", str(out / "check.json")],
        ["import", str(tree), "--db", url],
        ["package", str(base), "--org", "Packaged", "--out", str(out / "package")],
        ["report", "--db", url, "--out", str(out / "site")],
        ["results", "--db", url],
    ]
    codes = {}
    for argv in verbs:
        with ACCESSES.watching():
            code, stdout, stderr = run(capsys, argv)
        _assert_clean(case, argv, code, stdout, stderr, outside, [out])
        codes[argv[0]] = code
        if argv[0] == "summarize" and code == 2:
            assert (out / "summary.csv").read_bytes() == summary_before
    assert snapshot(tree) == before, f"{case!r}: a verb changed the tree it read"
    for page in (out / "site").rglob("*.html"):
        assert "<img src=x" not in page.read_text(), f"{case!r}: {page.name} holds a name as markup"
    stored_after = _stored(capsys, url)
    assert "STOLEN" not in stored_after
    if codes["import"] != 0:
        assert stored_after == stored_before, f"{case!r}: a refused import changed the store"
    else:
        assert all(line in stored_after for line in stored_before.splitlines()[1:-1])
    remove(tree)          # before pytest's own clean-up, which recurses once per folder level
