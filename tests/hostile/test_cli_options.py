"""Hostile options: what a user (or a script with an unset variable) can pass on the command
line, beyond the hostile trees of test_hostile_cases.py. Each test failed before its fix."""

from __future__ import annotations

import shutil
import sqlite3
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from corpus import INTEL, one_error_line, run  # noqa: E402

from mlpace import cli  # noqa: E402
from mlpace.errors import MlpaceError  # noqa: E402

NOT_UTF8 = b'\xff\xfe{"batch_size": 8}'


# --- the results store: --db names a file the user may not mean ---------------------------

def _foreign_database(path: Path) -> bytes:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE invoices (id INTEGER, total REAL)")
        db.execute("INSERT INTO invoices VALUES (1, 9.5)")
    return path.read_bytes()


@pytest.mark.parametrize("verb", [["results"], ["compare", "a", "--against", "b"], ["report", "--out", "SITE"],
                                  ["import", INTEL]])
def test_another_programs_sqlite_database_is_refused_and_left_unchanged(tmp_path, capsys, verb):
    db = tmp_path / "accounts.db"
    before = _foreign_database(db)
    verb = [str(tmp_path / "SITE") if part == "SITE" else part for part in verb]
    code, _, err = run(capsys, [*verb, "--db", db])
    one_error_line(code, err, "not an mlpace results store", "invoices")
    assert db.read_bytes() == before, "the other program's database was changed"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["accounts.db"]   # no WAL files, no site


@pytest.mark.parametrize("verb", [["results"], ["compare", "a", "--against", "b"], ["report", "--out", "SITE"]])
def test_a_reading_verb_never_makes_a_store_at_a_mistyped_path(tmp_path, capsys, verb):
    db = tmp_path / "reslts.sqlite"
    verb = [str(tmp_path / "SITE") if part == "SITE" else part for part in verb]
    code, _, err = run(capsys, [*verb, "--db", db])
    one_error_line(code, err, "no results store at", str(db))
    assert list(tmp_path.iterdir()) == []


def test_import_still_makes_a_new_store_and_readers_then_open_it(tmp_path, capsys):
    db = tmp_path / "new.sqlite"
    code, _, _ = run(capsys, ["import", INTEL, "--db", db])
    assert code == 0 and db.is_file()
    code, out, _ = run(capsys, ["results", "--db", db])
    assert code == 0 and "1-node-8s-8380H-tensorflow" in out


def test_an_empty_sqlite_file_is_made_a_store(tmp_path, capsys):
    db = tmp_path / "empty.sqlite"
    db.touch()                                   # `touch results.sqlite` first is harmless
    code, _, err = run(capsys, ["import", INTEL, "--db", db])
    assert code == 0, err


# --- argparse's own errors ------------------------------------------------------------------

@pytest.mark.parametrize("argv", [["results", "--kind", "\x1b[2Jbad"], ["train", "resnet", "--runs", "abc"],
                                  ["no-such-verb"], ["results", "--unknown\x07"]])
def test_a_malformed_command_line_is_one_error_line_without_control_characters(capsys, argv):
    with pytest.raises(SystemExit) as exit_:
        cli.main(argv)
    err = capsys.readouterr().err
    assert exit_.value.code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "--help" in lines[0], err
    assert "\x1b" not in err and "\x07" not in err


def test_ctrl_c_while_the_commands_load_is_one_line(monkeypatch, capsys):
    def interrupted():
        raise KeyboardInterrupt
    monkeypatch.setattr(cli, "build_parser", interrupted)
    assert cli.main(["results"]) == 130
    assert capsys.readouterr().err == "error: interrupted\n"


# --- output options: an unset variable ("") must not mean "here" -----------------------------

@pytest.mark.parametrize("argv", [["report", "--out", ""], ["package", "SRC", "--org", "O", "--out", ""],
                                  ["sysinfo", "--out", ""], ["summarize", INTEL, "--csv", ""],
                                  ["summarize", INTEL, "--json", " "], ["check", INTEL, "--json", ""]])
def test_an_empty_output_name_is_refused_before_anything_is_written(tmp_path, capsys, monkeypatch, argv):
    monkeypatch.chdir(tmp_path)
    source = shutil.copytree(INTEL, tmp_path / "SRC" / "Intel").parent
    before = sorted(tmp_path.rglob("*"))
    code, _, err = run(capsys, [source if a == "SRC" else a for a in argv])
    one_error_line(code, err, "empty name")
    assert sorted(tmp_path.rglob("*")) == before


@pytest.mark.parametrize("option", ["--out", "--data-dir"])
@pytest.mark.parametrize("verb", [["train", "resnet"], ["suite"], ["infer", "resnet50"]])
def test_training_and_inference_refuse_an_empty_folder_name_when_parsing(verb, option):
    with pytest.raises(MlpaceError, match="empty name"):      # it meant the current folder
        cli.build_parser().parse_args([*verb, option, ""])


@pytest.mark.parametrize("only", ["", ",,"])
def test_suite_only_naming_no_benchmark_is_refused_not_taken_as_all(tmp_path, capsys, only):
    code, _, err = run(capsys, ["suite", "--only", only, "--no-store", "--out", tmp_path / "out"])
    one_error_line(code, err, "--only", "names no benchmark")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("argv", [["package", "SRC", "--org", "O", "--out", "TARGET"],
                                  ["train", "resnet", "--out", "TARGET"]])
def test_an_output_folder_that_is_a_file_is_one_line_and_the_file_is_kept(tmp_path, capsys, argv):
    target = tmp_path / "keep.txt"
    target.write_text("keep me")
    argv = [str(target) if a == "TARGET" else str(tmp_path) if a == "SRC" else a for a in argv]
    code, _, err = run(capsys, argv)
    one_error_line(code, err, "exists and is not a folder")
    assert target.read_text() == "keep me"


def test_package_into_a_file_is_refused_by_the_library_too(tmp_path):
    from mlpace.io import make_folder
    (tmp_path / "file").write_text("x")
    with pytest.raises(MlpaceError, match="not a folder"):
        make_folder(tmp_path / "file")


# --- files named by options: --config, --system-desc, --overrides ---------------------------

@pytest.mark.parametrize("argv,words", [
    (["train", "resnet", "--config", "FILE", "--out", "OUT", "--no-store"], "config file"),
    (["train", "resnet", "--system-desc", "FILE", "--out", "OUT", "--no-store"], "system description"),
    (["sysinfo", "--overrides", "FILE"], "system description"),
    (["package", "SRC", "--org", "O", "--out", "OUT", "--system-desc", "FILE"], "system description"),
])
def test_an_option_file_that_is_not_utf8_is_one_line(tmp_path, capsys, argv, words):
    bad = tmp_path / "bad.json"
    bad.write_bytes(NOT_UTF8)
    (tmp_path / "src").mkdir()
    places = {"FILE": bad, "OUT": tmp_path / "out", "SRC": tmp_path / "src"}
    code, _, err = run(capsys, [places.get(a, a) for a in argv])
    one_error_line(code, err, words, "not valid")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("option", ["--config", "--system-desc"])
def test_an_option_file_that_is_a_device_is_refused_unread(tmp_path, capsys, option):
    code, _, err = run(capsys, ["train", "resnet", option, "/dev/zero", "--out", tmp_path / "out", "--no-store"])
    one_error_line(code, err, "not a regular file")


def test_an_option_file_may_be_the_users_own_link(tmp_path, capsys):
    real = tmp_path / "real.json"
    real.write_text('{"cooling": "air"}')
    (tmp_path / "current.json").symlink_to(real)
    code, out, err = run(capsys, ["sysinfo", "--overrides", tmp_path / "current.json"])
    assert code == 0 and '"cooling": "air"' in out, err


# --- import --round: a name shown in every table ---------------------------------------------

@pytest.mark.parametrize("name", [" ", "\x1b[2Jround", "r" * 65])
def test_a_round_name_that_is_blank_or_has_control_characters_is_refused(tmp_path, capsys, name):
    db = tmp_path / "store.sqlite"
    code, out, err = run(capsys, ["import", INTEL, "--round", name, "--db", db])
    one_error_line(code, err, "--round")
    assert "\x1b" not in out + err and not db.exists()


def test_import_progress_never_prints_control_characters_from_a_path(tmp_path, capsys):
    tree = tmp_path / "tree\x1b[2J"
    shutil.copytree(INTEL, tree / "Intel")
    code, out, err = run(capsys, ["import", tree, "--db", tmp_path / "store.sqlite"])
    assert code == 0, err
    assert "\x1b" not in out + err and "tree\\x1b[2J" in out


# --- --set values that reach the operating system -----------------------------------------------

@pytest.mark.parametrize("setting,words", [("threads=100000", "thread count"),        # segfaulted torch
                                           ("num_workers=1000000", "processes")])     # a fork bomb
def test_thread_and_process_counts_are_bounded(setting, words):
    from mlpace.benchmarks.resnet.workload import CONFIGS
    from mlpace.harness.config import apply_overrides, parse_set_options
    with pytest.raises(MlpaceError, match=words):
        apply_overrides(CONFIGS["mini"], parse_set_options([setting]))


# --- odd environments ---------------------------------------------------------------------------

@pytest.mark.parametrize("argv", [["sysinfo"], ["results", "--db", "relative.sqlite"]])
def test_a_deleted_working_folder_is_one_line(tmp_path, capsys, monkeypatch, argv):
    gone = tmp_path / "gone"
    gone.mkdir()
    monkeypatch.chdir(gone)          # monkeypatch puts the old working folder back afterwards
    gone.rmdir()
    code, _, err = run(capsys, argv)
    one_error_line(code, err, "current folder no longer exists")


# --- an existing --out whose inner folders are links: writes must stay inside --out ------------

MLPACE_INFERENCE = Path(__file__).resolve().parents[1] / "data" / "mlpace" / "infer-resnet50-offline-full"


def _linked(out: Path, inner: str, elsewhere: Path) -> None:
    (out / inner).parent.mkdir(parents=True, exist_ok=True)
    elsewhere.mkdir()
    (out / inner).symlink_to(elsewhere)


def test_report_never_writes_through_a_linked_folder_in_its_out(tmp_path, capsys):
    _linked(tmp_path / "site", "assets", tmp_path / "elsewhere")
    code, _, err = run(capsys, ["import", INTEL, "--db", tmp_path / "s.sqlite"])
    code, _, err = run(capsys, ["report", "--out", tmp_path / "site", "--db", tmp_path / "s.sqlite"])
    one_error_line(code, err, "symbolic link", "assets")
    assert list((tmp_path / "elsewhere").iterdir()) == []


def test_package_never_writes_through_a_linked_division_folder(tmp_path, capsys):
    desc = _system_desc(tmp_path / "desc.json")
    _linked(tmp_path / "out", "open", tmp_path / "elsewhere")
    code, _, err = run(capsys, ["package", MLPACE_INFERENCE, "--org", "Org", "--out", tmp_path / "out",
                                "--system-desc", desc, "--system-type", "edge"])
    one_error_line(code, err, "symbolic link", "open")
    assert list((tmp_path / "elsewhere").iterdir()) == []


def test_train_never_writes_through_a_linked_folder_in_its_out(tmp_path):
    from mlpace.training.runs import TrainRequest, train_result
    _linked(tmp_path / "out", "mlpace/results", tmp_path / "elsewhere")
    req = TrainRequest(benchmark="resnet", scale="mini", runs=1, out=tmp_path / "out", max_epochs=0)
    with pytest.raises(MlpaceError, match="symbolic link"):
        train_result(req, None)
    assert list((tmp_path / "elsewhere").iterdir()) == []


@pytest.mark.parametrize("inner", ["open", "open/mlpace/results/box"])
def test_infer_never_writes_through_a_linked_folder_in_its_out(tmp_path, capsys, inner):
    _linked(tmp_path / "out", inner, tmp_path / "elsewhere")
    code, _, err = run(capsys, ["infer", "resnet50", "--quick", "--scenario", "Offline", "--system", "box",
                                "--out", tmp_path / "out"])
    one_error_line(code, err, "symbolic link", inner)
    assert list((tmp_path / "elsewhere").iterdir()) == []


# --- nothing is written into a tree that is read -----------------------------------------------

def _system_desc(path: Path) -> Path:
    from mlpace.io import json_text
    from mlpace.submission.sysinfo import REQUIRED_FIELDS
    path.write_text(json_text({field: "x" for field in REQUIRED_FIELDS if field not in
                               ("submitter", "division", "status", "system_name")}))
    return path


@pytest.mark.parametrize("argv,option", [
    (["package", "TREE", "--org", "O", "--out", "TREE/packaged"], "--out"),
    (["package", "TREE", "--org", "O", "--out", "TREE"], "--out"),
    (["summarize", "TREE", "--csv", "TREE/Intel/scores.csv"], "--csv"),
    (["summarize", "TREE", "--json", "TREE/Intel/systems/scores.json"], "--json"),
    (["check", "TREE", "--no-compliance", "--json", "TREE/Intel/results/check.json"], "--json"),
    (["import", "TREE", "--db", "TREE/store.sqlite"], "--db"),
])
def test_an_output_inside_the_tree_being_read_is_refused(tmp_path, capsys, argv, option):
    tree = tmp_path / "tree"
    if argv[0] == "package":     # an mlpace infer result: package takes it as it is
        shutil.copytree(MLPACE_INFERENCE, tree)
        argv = [*argv, "--system-desc", str(_system_desc(tmp_path / "desc.json")), "--system-type", "edge"]
    else:
        shutil.copytree(INTEL, tree / "Intel")
    before = sorted(tree.rglob("*"))
    code, _, err = run(capsys, [a.replace("TREE", str(tree)) for a in argv])
    one_error_line(code, err, option, "inside")
    assert sorted(tree.rglob("*")) == before


def test_a_20_digit_node_count_fails_its_submission_in_one_line_not_a_traceback(tmp_path, capsys):
    import json
    org = shutil.copytree(INTEL, tmp_path / "tree" / "Intel")
    [path] = (org / "systems").glob("*.json")
    path.write_text(json.dumps({**json.loads(path.read_text()), "number_of_nodes": "9" * 20}))
    db = tmp_path / "store.sqlite"
    code, out, err = run(capsys, ["import", tmp_path / "tree", "--db", db])
    assert code == 2 and "Traceback" not in err
    assert "Intel" in err and "too large" in err and "0 results added" in out


def test_a_system_description_field_that_is_a_list_is_refused_before_packaging(tmp_path, capsys):
    import json
    desc = tmp_path / "desc.json"
    desc.write_text(json.dumps({"system_name": ["x"], "cooling": {"kind": "air"}}))
    code, _, err = run(capsys, ["sysinfo", "--overrides", desc])      # the official checker crashed on it
    one_error_line(code, err, "cooling", "system_name", "must be text")


# --- a result never certifies its own accuracy ---------------------------------------------------

def test_an_own_result_that_states_no_target_is_never_divided_by_a_published_one(tmp_path, capsys):
    # mlpace's own logs do not log eval_target, and `package` leaves score.json behind: a
    # packaged mini ssd result imported later used to be filed at ssd's reference target
    # (0.23 mAP on COCO) and compared with Google's TPU. Google's own logs, copied into a
    # folder that names no round, stand in for it here: they state no target either.
    mine = shutil.copytree(INTEL.parent / "Google", tmp_path / "mine" / "Me")
    (mine / "results" / "tpu-v4-128-TF").rename(mine / "results" / "box")
    (mine / "systems" / "tpu-v4-128-TF.json").rename(mine / "systems" / "box.json")
    db = tmp_path / "store.sqlite"
    code, _, err = run(capsys, ["import", tmp_path / "mine", INTEL.parent / "Google", "--db", db])
    assert code == 0, err
    code, out, _ = run(capsys, ["results", "--system", "box", "--benchmark", "ssd", "--format", "csv", "--db", db])
    assert ",unknown,unknown," in out.splitlines()[1]                   # scale, target
    code, out, err = run(capsys, ["compare", "box", "--against", "tpu-v4-128-TF", "--db", db])
    one_error_line(code, err, "not comparable")
    code, _, err = run(capsys, ["report", "--out", tmp_path / "site", "--db", db])
    page = next((tmp_path / "site" / "benchmarks").glob("training-ssd*.html")).read_text()
    assert code == 0 and "training local, unknown scale (not comparable" in page    # a table of its own
