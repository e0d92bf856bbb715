"""Check a submission tree: every rule, one report in plain words, an exit code for CI.

Training results go through the official `mlperf_logging` checkers, run in-process (and in
parallel across files): the compliance checker with the round's ruleset (it picks the
division's rules from the log), the seed checker and the RCP checker (closed division, as the
official package checker runs them; a closed result whose RCP check cannot run does not
pass), and the system-description checker. mlpace adds what the official package checker
does per folder (file names, run counts, olympic failures). Scores come from `summarize`, so
check and summarize agree on what every run counts for (the score-changing rules, e.g. the
init-time limit, are applied there). Inference results get every rule of the official v1.1
inference submission checker (`mlpace.submission.inference_check`).

Drift: the current `mlperf-logging` turns ruleset 1.1.0's weights_initialization checks into
errors that were warnings when v1.1 was published; `check` reports them as warnings and says
why (the round's own rules win).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import warnings
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from mlpace.io import SafeTree, read_json_limited
from mlpace.rules.rcp import rcp_verdict
from mlpace.rules.rounds import WEIGHTS_INIT_DRIFT, Round
from mlpace.submission.inference_check import check_inference_org
from mlpace.submission.summarize import Summary, TrainingResult, summarize
from mlpace.submission.sysinfo import REQUIRED_FIELDS
from mlpace.submission.tree import find_org_folders

PASS, WARN, FAIL = "pass", "warn", "fail"
# Compliance checking costs ~70 ms a file; below this many files one process is faster.
PARALLEL_MIN_FILES = 16


@dataclass
class Finding:
    path: str          # relative to the checked root
    rule: str
    level: str         # pass | warn | fail
    reason: str


@dataclass
class CheckReport:
    root: str
    round: Round | None
    findings: list[Finding] = field(default_factory=list)

    def add(self, path, rule, level, reason="") -> None:
        self.findings.append(Finding(str(path), rule, level, reason))

    def count(self, level: str) -> int:
        return sum(1 for f in self.findings if f.level == level)

    @property
    def ok(self) -> bool:
        return self.count(FAIL) == 0

    def to_json(self) -> dict:
        return {"root": self.root, "ruleset": self.round.ruleset if self.round else None,
                "passed": self.ok, "counts": {lvl: self.count(lvl) for lvl in (PASS, WARN, FAIL)},
                "findings": [vars(f) for f in self.findings]}


# --- the official compliance checker, in words -------------------------------------------

def _short(text: str, limit: int = 110) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _without_context(message: str) -> str:
    """A checker message without the state dump it appends (`current context[s]=...`), which
    names every key the rules keep state for (initialized_tensors ...) whatever rule failed."""
    return message.split("\ncurrent context[s]=", 1)[0]


def plain_compliance_message(message: str) -> str:
    """One line in plain words for one (often multi-line) compliance checker message."""
    first = message.strip().splitlines()[0] if message.strip() else "unknown problem"
    failed_test = next((line[len("failed test: "):] for line in message.splitlines()
                        if line.startswith("failed test: ")), "")
    if "initialized_tensors" in _without_context(message):
        return "the weights_initialization lines do not name the reference model's tensors"
    if m := re.match(r"Required (\w+) occurrence of (.+?)(?: but found (\d+))?$", first):
        need = {"AT_LEAST_ONE": "at least one", "EXACTLY_ONE": "exactly one"}.get(m.group(1), m.group(1))
        found = f"; it has {m.group(3)}" if m.group(3) else ""
        return f"the log needs {need} {m.group(2)} line{found}"
    if m := re.match(r"Failed checks for (\w+) : (.*)", first):
        hint = " (the run did not reach the quality target)" if m.group(1) == "eval_accuracy" else ""
        return f"'{m.group(1)}' breaks the rule `{_short(m.group(2))}`{hint}"
    if m := re.match(r"CHECK for '([^']+)' failed in line (\d+)", first):
        return f"line {m.group(2)} ('{m.group(1)}') breaks the rule `{_short(failed_test)}`"
    if first.startswith("failed test:"):
        return f"end-of-log rule broken: `{_short(failed_test or first)}`"
    if first.startswith("Could not find config file"):
        return "no official rules for this benchmark and division in this ruleset"
    if first.startswith("Log lines had parsing errors"):
        return "some MLLOG lines are not valid JSON (cut or corrupt lines)"
    return _short(first)


def _is_known_drift(ruleset: str, message: str) -> bool:
    rule = _without_context(message)
    return ruleset in WEIGHTS_INIT_DRIFT and ("weights_initialization" in rule or "initialized_tensors" in rule)


def _compliance(args: tuple[str, str]) -> tuple[bool, list[str], list[str]]:
    """(valid, error messages, warning messages) of the official checker on one file."""
    path, ruleset = args
    from mlperf_logging.compliance_checker import mlp_compliance
    logging.disable(logging.CRITICAL)
    try:
        checker = mlp_compliance.make_checker("training", ruleset, quiet=False, werror=False)
        with contextlib.redirect_stdout(io.StringIO()):
            valid = checker.check_file(path, f"training_{ruleset}/common.yaml")
        errors = [*checker.overwritable.values(), *checker.not_overwritable]
        return bool(valid), errors, list(checker.warnings.values())
    except Exception as err:  # noqa: BLE001 - a checker crash is a finding, not a crash of mlpace
        return False, [f"the official compliance checker crashed: {err}"], []
    finally:
        logging.disable(logging.NOTSET)


def _run_compliance(paths: list[str], ruleset: str, workers: int | None) -> list[tuple]:
    workers = workers if workers is not None else min(4, os.cpu_count() or 1)
    jobs = [(p, ruleset) for p in paths]
    if workers <= 1 or len(jobs) < PARALLEL_MIN_FILES:
        return [_compliance(job) for job in jobs]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(_compliance, jobs, chunksize=max(1, len(jobs) // (workers * 4))))


# --- training ------------------------------------------------------------------------------

class _Capture(logging.Handler):
    """Collects the official checkers' logged errors (they report through `logging`)."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record):
        self.messages.append(record.getMessage().strip())


@contextlib.contextmanager
def _captured_logging():
    handler = _Capture()
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


def _division(result: TrainingResult) -> str:
    divisions = {r.division for r in result.runs if r.division}
    return divisions.pop() if len(divisions) == 1 else ""


def _check_training_result(report: CheckReport, tree: SafeTree, result: TrainingResult,
                           round_: Round) -> None:
    folder = Path(result.folder)
    where = tree.relative(folder)
    need = result.required_runs
    have = len(result.runs)
    from mlpace.words import plural
    if need and have < need:
        report.add(where, "run count", FAIL, f"{plural(have, 'result file')}; {result.benchmark} needs {need}")
    elif need and have > need:
        report.add(where, "run count", WARN, f"{plural(have, 'result file')}; {result.benchmark} needs {need} "
                                             "(extra runs are scored too)")
    elif need:
        report.add(where, "run count", PASS, plural(have, "run"))
    else:
        report.add(where, "run count", WARN, f"{result.benchmark!r} is not a benchmark of round "
                                             f"v{round_.version}")
    unknown = [p.name for p in tree.files(folder)
               if not re.match(r"^result_\d+\.txt$", p.name) and p.name != "scaling.json"]
    if unknown:
        report.add(where, "file names", WARN, f"files the official layout does not know: {', '.join(unknown[:5])}"
                   + (" ..." if len(unknown) > 5 else ""))
    for run in result.runs:
        for note in run.notes:
            if note.startswith("counts as a failed run"):
                report.add(tree.relative(run.path), "score-changing rules", WARN, note)
    score = result.score
    if score and score.minutes is None:
        report.add(where, "olympic scoring", FAIL, score.reason)
    elif score:
        extra = f"; {score.failed} failed run(s) dropped" if score.failed else ""
        report.add(where, "olympic scoring", PASS, f"score {result.minutes:.4f} min{extra}")
    division = _division(result)
    if division == "closed" and round_.has_rcp_checks and \
            not any(_not_read(run) for run in result.runs):
        with tree.safe_copy(folder) as checked:     # the RCP checker opens all it lists
            _official_seed_and_rcp(report, where, checked, result, round_)


def _official_seed_and_rcp(report, where, folder: Path, result: TrainingResult, round_: Round):
    from mlperf_logging.package_checker.seed_checker import SeedChecker
    files = [r.path for r in result.runs]
    with _captured_logging() as capture:
        try:
            seeds_ok = SeedChecker(round_.ruleset).check_seeds(files, False)
        except Exception as err:  # noqa: BLE001
            seeds_ok, capture.messages = False, [f"seed checker crashed: {err}"]
    # The checker names files by full path; the folder is already in the report line.
    said = " ".join(capture.messages).replace(str(folder) + os.sep, "")
    # Repeated seeds break the rules; a seed that is not logged was bypassable in review.
    level = PASS if seeds_ok else (FAIL if "same seed" in said or "crashed" in said else WARN)
    report.add(where, "seeds (official)", level,
               "" if seeds_ok else _short(said or "seeds repeat or are missing", 300))
    verdict = rcp_verdict(folder, round_.ruleset, result.benchmark)
    if not verdict.ran:
        report.add(where, "RCP (official)", FAIL, f"{verdict.message}: a closed result needs a "
                   "passing RCP check")
    elif not verdict.passed:
        report.add(where, "RCP (official)", FAIL, f"{verdict.message}: converges in fewer epochs "
                   "than the reference allows (only the review committee can accept it, with rcp_bypass)")
    elif verdict.factor > 1.0 and round_.has_rcp_factor:
        report.add(where, "RCP (official)", PASS, f"{verdict.message}; the RCP checker's "
                   f"normalisation factor is {verdict.factor:.4f} (it changes the score only once "
                   "the review committee leaves it in scaling.json)")
    else:
        report.add(where, "RCP (official)", PASS, verdict.message)


def _check_system_descriptions(report: CheckReport, tree: SafeTree, org: Path, training: bool,
                               ruleset: str | None) -> None:
    systems = org / "systems"
    used = {p.name for p in tree.folders(org / "results")}
    described = {p.stem: p for p in tree.files(systems) if p.suffix == ".json"}
    for name in sorted(used - set(described)):
        report.add(tree.relative(systems / f"{name}.json"), "system description", FAIL,
                   f"missing: results/{name} has no systems/{name}.json")
    for name, path in sorted(described.items()):
        where = tree.relative(path)
        try:
            desc = read_json_limited(path)
        except Exception as err:  # noqa: BLE001 - MlpaceError from a malformed file
            report.add(where, "system description", FAIL, str(err))
            continue
        if not isinstance(desc, dict):
            report.add(where, "system description", FAIL, "not a JSON object")
            continue
        missing = [f for f in REQUIRED_FIELDS if f not in desc]
        # Inference v1.1 checked fewer fields than training does: a gap there is a warning.
        level = PASS if not missing else (FAIL if training else WARN)
        report.add(where, "system description fields", level,
                   f"missing field(s): {', '.join(missing)}" if missing else "")
        if training and ruleset:
            _official_system_desc(report, where, path, ruleset)


def _official_system_desc(report, where, path: Path, ruleset: str) -> None:
    from mlperf_logging.system_desc_checker.system_desc_checker import check_system_desc
    with _captured_logging() as capture:
        try:
            valid = check_system_desc(str(path), "training", ruleset)[0]
        except Exception as err:  # noqa: BLE001
            valid, capture.messages = False, [f"checker crashed: {err}"]
    reason = _short("; ".join(m for m in capture.messages if m), 200)
    report.add(where, "system description (official)", PASS if valid else FAIL,
               "" if valid else reason or "rejected")


# --- the whole tree ------------------------------------------------------------------------

def check(root: str | os.PathLike, ruleset: str | None = None, compliance: bool = True,
          workers: int | None = None) -> CheckReport:
    """Check every result under `root`; see the module doc for the rules."""
    summary: Summary = summarize(root, ruleset=ruleset, workers=workers)
    tree = SafeTree(Path(root))
    report = CheckReport(str(root), summary.round)
    for path, problem in summary.problems:
        if Path(path).parent.name != "systems":     # system descriptions are checked below
            rule = "result file" if problem.startswith("unreadable") else "tree"
            report.add(tree.relative(path), rule, FAIL, problem)
    training_orgs = {result.org_folder for result in summary.training}
    round_ = summary.round
    if summary.training and round_:
        if compliance:
            files = [run.path for result in summary.training for run in result.runs
                     if not _not_read(run)]      # the official checkers get readable logs only
            outcomes = dict(zip(files, _run_compliance(files, round_.ruleset, workers)))
            for result in summary.training:
                _report_compliance(report, tree, result, round_, outcomes)
        for result in summary.training:
            _check_training_result(report, tree, result, round_)
    for org in find_org_folders(tree):
        if str(org) in training_orgs:
            _check_system_descriptions(report, tree, org, True, round_.ruleset if round_ else None)
        else:
            check_inference_org(report, tree, org)     # the v1.1 inference rules (inference_check)
    for path, problem in tree.problems:
        if (str(path), problem) not in summary.problems:
            report.add(tree.relative(path), "tree", FAIL, problem)
    return report


def _not_read(run) -> bool:
    """A log mlpace refused to read (over the size limit, or lines that would cost the official
    parser minutes): never handed to the official checkers."""
    return any(note.startswith("unreadable: ") for note in run.notes)


def _report_compliance(report, tree, result: TrainingResult, round_: Round, outcomes) -> None:
    """One finding per file. As the official package checker does, up to `drop` failing files
    per benchmark (1, unet3d 4) are accepted under olympic scoring: warnings, not failures."""
    ruleset = round_.ruleset
    rule = f"compliance (official, ruleset {ruleset})"
    failing = {}
    for run in result.runs:
        if run.path not in outcomes:     # unreadable: reported as such
            continue
        valid, errors, warnings = outcomes[run.path]
        rel = tree.relative(run.path)
        real_errors = [e for e in errors if not _is_known_drift(ruleset, e)]
        drift = [e for e in errors if _is_known_drift(ruleset, e)]
        if real_errors:
            reasons = list(dict.fromkeys(plain_compliance_message(e) for e in real_errors))
            more = f" (and {len(reasons) - 3} more)" if len(reasons) > 3 else ""
            failing[rel] = "; ".join(reasons[:3]) + more
        elif drift:
            report.add(rel, rule, WARN, plain_compliance_message(drift[0]) + " - a warning under "
                       "v1.1 as published; today's mlperf-logging makes it an error")
        else:
            report.add(rel, rule, PASS, "; ".join(plain_compliance_message(w) for w in warnings))
    tolerated = len(failing) <= round_.drop(result.benchmark)
    for rel, reasons in failing.items():
        if tolerated:
            report.add(rel, rule, WARN, reasons + " - accepted as the dropped run of olympic scoring")
        else:
            report.add(rel, rule, FAIL, reasons + f" - {len(failing)} files fail; at most "
                       f"{round_.drop(result.benchmark)} may")
