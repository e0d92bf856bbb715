"""A corpus of hostile submission trees, generated from real published results (no binaries
are checked in), and a way to prove what a verb read and wrote while it ran.

Every case starts from a copy of Intel's published MLPerf Training v1.0 resnet result and
breaks it the way an attacker or an accident would. `outside` is a folder beside the tree
holding a complete, valid submission with its own names (STOLEN...): if any of it is read,
scored or stored, the verb read outside the tree it was given.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
FIXTURES = HERE.parent / "data" / "mlperf"
INTEL = FIXTURES / "training_v1.0" / "Intel"
SYSTEM = "1-node-8s-8380H-tensorflow"
GRAPHCORE = FIXTURES / "training_v1.0" / "Graphcore"
KRAI = FIXTURES / "inference_v1.1" / "open" / "Krai"
OVER_LIMIT = 40 * 2**20          # above mlpace.io.MAX_FILE_BYTES (sparse: costs no disk)


def make_outside(base: Path) -> Path:
    """The secrets beside the tree: a valid org whose names say STOLEN, a system JSON, a log."""
    outside = base / "outside"
    org = outside / "Stolen"
    shutil.copytree(INTEL, org)
    (org / "results" / SYSTEM).rename(org / "results" / "STOLEN-system")
    (org / "systems" / f"{SYSTEM}.json").write_text('{"system_name": "STOLEN-SECRET", "division": "closed"}')
    (outside / "secret.json").write_text('{"system_name": "STOLEN-SECRET", "number_of_nodes": "1"}')
    shutil.copyfile(INTEL / "results" / SYSTEM / "resnet" / "result_1.txt", outside / "secret_log.txt")
    return outside


def base_tree(base: Path) -> Path:
    org = base / "tree" / "Intel"
    shutil.copytree(INTEL, org)
    return org


def _bench(org: Path) -> Path:
    return org / "results" / SYSTEM / "resnet"


def _log(org: Path, i: int = 1) -> Path:
    return _bench(org) / f"result_{i}.txt"


def _relink(path: Path, target: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()
    os.symlink(target, path)


def _sparse(path: Path, size: int = OVER_LIMIT) -> None:
    with open(path, "wb") as handle:
        handle.truncate(size)


def _edit_system(org: Path, **fields) -> None:
    path = org / "systems" / f"{SYSTEM}.json"
    desc = json.loads(path.read_text())
    desc.update(fields)
    path.write_text(json.dumps(desc))


def _odd_system(org: Path, name: bytes) -> None:
    """A system folder (and its description) whose name is raw bytes."""
    results = os.fsencode(org / "results")
    os.rename(os.fsencode(org / "results" / SYSTEM), results + b"/" + name)
    systems = os.fsencode(org / "systems")
    os.rename(os.fsencode(org / "systems" / f"{SYSTEM}.json"), systems + b"/" + name + b".json")


def _mllog_line(text: str) -> str:
    return f":::MLLOG {text}\n"


# name -> function(org, outside) that breaks the tree in place.
CASES = {
    # reads outside the tree
    "results folder is a link out": lambda org, out: _relink(org / "results", out / "Stolen" / "results"),
    "systems folder is a link out": lambda org, out: _relink(org / "systems", out / "Stolen" / "systems"),
    "system json is a link out": lambda org, out: _relink(org / "systems" / f"{SYSTEM}.json", out / "secret.json"),
    "result file is a link out": lambda org, out: _relink(_log(org, 2), out / "secret_log.txt"),
    "benchmark folder is a link out": lambda org, out: _relink(
        org / "results" / SYSTEM / "bert", out / "Stolen" / "results" / "STOLEN-system" / "resnet"),
    "system folder is a link inside": lambda org, out: os.symlink(SYSTEM, org / "results" / "alias"),
    "symlink loop": lambda org, out: (os.symlink("loop", _bench(org) / "loop"),
                                      os.symlink("b", _bench(org) / "a"), os.symlink("a", _bench(org) / "b")),
    "dangling link": lambda org, out: os.symlink("does-not-exist", _bench(org) / "result_9.txt"),
    "fifo as a result file": lambda org, out: os.mkfifo(_bench(org) / "result_8.txt"),
    # broken files
    "truncated log": lambda org, out: _log(org).write_bytes(_log(org).read_bytes()[:3000]),
    "garbled log": lambda org, out: _log(org).write_bytes(
        bytes(b ^ 0x5A if i % 7 == 0 else b for i, b in enumerate(_log(org).read_bytes()))),
    "binary log": lambda org, out: _log(org).write_bytes(bytes(range(256)) * 64),
    "empty log": lambda org, out: _log(org).write_bytes(b""),
    "utf-16 log": lambda org, out: _log(org).write_bytes(_log(org).read_text("latin-1").encode("utf-16")),
    "log over the size limit": lambda org, out: _sparse(_log(org)),
    "400-digit time_ms": lambda org, out: _log(org).write_text(
        _log(org).read_text("latin-1") + _mllog_line(
            '{"namespace": "", "time_ms": ' + "9" * 400 + ', "event_type": "POINT_IN_TIME", '
            '"key": "run_stop", "value": null, "metadata": {"status": "success"}}')),
    "brackets nested 100000 deep in a log": lambda org, out: _log(org).write_text(
        _mllog_line("[" * 100_000 + "]" * 100_000) + _log(org).read_text("latin-1")),
    "10 MB of long MLLOG lines": lambda org, out: _log(org).write_text(
        _log(org).read_text("latin-1") + _mllog_line('{"key": "x", "time_ms": 1, "value": "' + "v" * 10_000 + '"}') * 1000),
    "system json nested 100000 deep": lambda org, out: (org / "systems" / f"{SYSTEM}.json").write_text(
        "[" * 100_000 + "]" * 100_000),
    "system json over the size limit": lambda org, out: _sparse(org / "systems" / f"{SYSTEM}.json"),
    "system json with terminal escapes": lambda org, out: _edit_system(
        org, system_name="\x1b[2J\x1b[31mPWNED\x07", submitter="ok\rEVIL", framework="[/]x[bold]",
        accelerator_model_name="\x1b[2JACC\x07"),
    "system json is not an object": lambda org, out: (org / "systems" / f"{SYSTEM}.json").write_text("[1, 2]"),
    "system json with NaN": lambda org, out: (org / "systems" / f"{SYSTEM}.json").write_text(
        '{"system_name": NaN, "number_of_nodes": Infinity}'),
    # odd names
    "system name not utf-8": lambda org, out: _odd_system(org, b"box-\xff\xfe"),
    "system name with a newline": lambda org, out: _odd_system(org, b"box\nname"),
    "system name with markup": lambda org, out: _odd_system(org, b"<img src=x onerror=alert(1)>"),
    "folder names that make console markup": lambda org, out: (
        _bench(org).rename(_bench(org).with_name("]x")), _odd_system(org, b"box["),
        os.symlink("nowhere", org / "results" / "box[" / "]x" / "result_9.txt")),
    "system name starting with dashes": lambda org, out: _odd_system(org, b"--rf"),
    "system name 250 characters": lambda org, out: _odd_system(org, b"s" * 250),
    "benchmark folders differ in case only": lambda org, out: shutil.copytree(
        _bench(org), org / "results" / SYSTEM / "ResNet"),
}


# Inference: Alibaba's published v1.1 closed results, under tree/closed/Alibaba.
ALIBABA = FIXTURES / "inference_v1.1" / "closed" / "Alibaba"
_RUN = Path("results") / "T4x1_TRT" / "ssd-mobilenet" / "Offline"


def _summary(org: Path) -> Path:
    return org / _RUN / "performance" / "run_1" / "mlperf_log_summary.txt"


def _make_inference_outside(outside: Path) -> None:
    stolen = outside / "closed" / "Stolen"
    shutil.copytree(ALIBABA, stolen)
    text = _summary(stolen).read_text().replace("SUT name : ", "SUT name : STOLEN-")
    _summary(stolen).write_text(text)
    (outside / "secret_summary.txt").write_text(text)
    (outside / "secret_accuracy.txt").write_text("mAP=99.99999% STOLEN\n")


INFERENCE_CASES = {
    "LoadGen summary is a link out": lambda org, out: _relink(_summary(org), out / "secret_summary.txt"),
    "accuracy report is a link out": lambda org, out: _relink(
        org / _RUN / "accuracy" / "accuracy.txt", out / "secret_accuracy.txt"),
    "performance folder is a link out": lambda org, out: _relink(
        org / _RUN / "performance", out / "closed" / "Stolen" / _RUN / "performance"),
    "scenario folders differ in case only": lambda org, out: shutil.copytree(
        org / _RUN, org / _RUN.parent / "offline"),
    "folders nested 1200 deep": lambda org, out: _deep(org / _RUN / "performance", 1200),
    "LoadGen summary garbled": lambda org, out: _summary(org).write_bytes(
        bytes(b ^ 0x33 if i % 5 == 0 else b for i, b in enumerate(_summary(org).read_bytes()))),
    "LoadGen summary binary": lambda org, out: _summary(org).write_bytes(bytes(range(256)) * 16),
    "LoadGen summary utf-16": lambda org, out: _summary(org).write_bytes(_summary(org).read_text().encode("utf-16")),
    "LoadGen summary empty": lambda org, out: _summary(org).write_bytes(b""),
    "LoadGen summary over the size limit": lambda org, out: _sparse(_summary(org)),
    "LoadGen summary with a 5000-digit number": lambda org, out: _summary(org).write_text(
        _summary(org).read_text().replace("Samples per second : ", "Samples per second : " + "9" * 5000, 1)),
}


def build(base: Path, case: str) -> tuple[Path, Path]:
    """(org folder of the hostile tree, the outside folder) for one case of either kind."""
    outside = make_outside(base)
    if case in INFERENCE_CASES:
        _make_inference_outside(outside)
        org = base / "tree" / "closed" / "Alibaba"
        shutil.copytree(ALIBABA, org)
        INFERENCE_CASES[case](org, outside)
        return org, outside
    org = base_tree(base)
    CASES[case](org, outside)
    return org, outside


def _deep(folder: Path, levels: int) -> None:
    """`levels` folders inside each other (os.makedirs would recurse once per level)."""
    path = os.fsencode(folder)
    for _ in range(levels):
        path = os.path.join(path, b"d")
        os.mkdir(path)


def _walk(folder: Path):
    """(path, is_dir, is_link) of everything under `folder`, without recursion."""
    stack = [os.fsencode(folder)]
    while stack:
        with os.scandir(stack.pop()) as entries:
            for entry in entries:
                link = entry.is_symlink()
                is_dir = entry.is_dir(follow_symlinks=False)
                yield entry.path, is_dir, link
                if is_dir:
                    stack.append(entry.path)


def snapshot(folder: Path) -> dict[bytes, bytes]:
    """Every entry under `folder` (links by target, files by bytes), to prove nothing changed."""
    seen = {}
    for path, is_dir, link in _walk(folder):
        if link:
            seen[path] = b"link:" + os.readlink(path)
        elif not is_dir and os.path.isfile(path) and os.path.getsize(path) < 2**20:
            with open(path, "rb") as handle:
                seen[path] = handle.read()
        else:
            seen[path] = b"entry"
    return seen


def remove(folder: Path) -> None:
    """Delete `folder` without recursion (shutil.rmtree recurses once per level)."""
    folders = [os.fsencode(folder)]
    for path, is_dir, link in list(_walk(folder)):
        if is_dir:
            folders.append(path)
        else:
            os.unlink(path)
    for path in sorted(folders, key=len, reverse=True):
        os.rmdir(path)


class Accesses:
    """What the process opened, listed and copied while `watching` (an audit hook, PEP 578)."""

    def __init__(self):
        self.active = False
        self.reads: list[str] = []
        self.writes: list[str] = []
        sys.addaudithook(self._hook)

    def _hook(self, event, args):
        if not self.active or event not in ("open", "os.listdir", "os.scandir", "shutil.copyfile"):
            return
        path = args[0]
        if isinstance(path, int) or path is None:
            return
        path = os.fsdecode(path)
        if event == "open":
            mode, flags = (args[1] or ""), (args[2] or 0)
            writing = any(c in str(mode) for c in "wax+") or flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT)
            (self.writes if writing else self.reads).append(path)
        elif event == "shutil.copyfile":
            self.reads.append(path)
            self.writes.append(os.fsdecode(args[1]))
        else:
            self.reads.append(path)

    @contextlib.contextmanager
    def watching(self):
        self.reads.clear()
        self.writes.clear()
        self.active = True
        try:
            yield self
        finally:
            self.active = False

    def read_inside(self, folder: Path) -> list[str]:
        """Paths read that resolve into `folder` (through any link)."""
        real = os.path.realpath(folder)
        return [p for p in self.reads if os.path.realpath(p) == real
                or os.path.realpath(p).startswith(real + os.sep)]

    def written_outside(self, allowed: list[Path]) -> list[str]:
        """Paths written outside `allowed`, leaving out mlpace's own scratch copies (a
        temporary `mlpace-safe-*` folder, removed before the verb ends: see `scratch_left`)."""
        reals = [os.path.realpath(a) for a in allowed]
        return [p for p in self.writes if not scratch_pattern().match(p)
                and not any(os.path.realpath(p) == r or os.path.realpath(p).startswith(r + os.sep)
                            for r in reals)]


def scratch_left() -> list[str]:
    return [str(p) for p in Path(tempfile.gettempdir()).glob("mlpace-safe-*")]


def scratch_pattern() -> re.Pattern:
    """Where mlpace may put its scratch copies: the temporary folder of the moment (conftest.py
    gives each test its own)."""
    return re.compile(re.escape(os.path.join(tempfile.gettempdir(), "mlpace-safe-")) + r"[^/]+/[^/]+/[^/]+$")


ACCESSES = Accesses()


# --- running a verb ----------------------------------------------------------------------

def run(capsys, argv) -> tuple[int, str, str]:
    """`mlpace ARGV` in this process: (exit code, stdout, stderr)."""
    from mlpace import cli
    capsys.readouterr()
    code = cli.main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_error_line(code, err, *words):
    """The house answer to bad input: exit 2 and one line `error: ...` naming `words`."""
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), err
    for word in words:
        assert word in lines[0], lines[0]
