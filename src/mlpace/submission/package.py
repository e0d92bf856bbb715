"""Build an official MLPerf submission tree from mlpace's own runs.

Training (from `mlpace train` output, `<org>/results/<system>/<benchmark>/result_<i>.txt`):

    <out>/<org>/results/<system>/<benchmark>/result_<i>.txt      (renumbered from 0)
    <out>/<org>/systems/<system>.json                            (division, availability set)
    <out>/<org>/benchmarks/<benchmark>/implementations/mlpace/README.md   (how to reproduce)

Inference (from `mlpace infer` output, `<division>/<org>/results/<system>/<model>/<scenario>/`),
the layout the official v1.1 submission checker reads (see `mlpace.submission.inference_package`).

Nothing is written unless the whole set is acceptable: a benchmark with the wrong number of
runs for its round, a run from another division, a system description with missing or empty
fields, or an unsafe name stops packaging with every reason listed. The tree is built in a
temporary folder beside `--out` and renamed into place, so an existing submission is never
overwritten or left half-written.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from mlpace.errors import MlpaceError
from mlpace.io import SafeTree, make_folder, read_json_limited, refuse_linked_folders, safe_name
from mlpace.rules import inference as inference_rules
from mlpace.rules.divisions import AVAILABILITY_SPELLINGS, DIVISIONS, require_division_allowed
from mlpace.rules.rounds import MLPACE_RULESET, round_for_ruleset
from mlpace.submission.inference_package import source_problems, write_inference
from mlpace.submission.loadgen_log import canonical_scenario
from mlpace.submission.sysinfo import REQUIRED_FIELDS, capture_system_description
from mlpace.submission.training_log import parse_result_file

AVAILABILITY = AVAILABILITY_SPELLINGS   # accepted spellings -> the `status` value of v1.x
_RESULT_FILE = re.compile(r"^result_(\d+)\.txt$")
_SEARCH_DEPTH = 8


@dataclass
class TrainingSet:
    system: str
    benchmark: str
    files: list[Path]
    system_json: Path | None


@dataclass
class Plan:
    """What `package` will write, found and validated before anything is written."""

    training: list[TrainingSet] = field(default_factory=list)
    inference: list[tuple[str, Path]] = field(default_factory=list)   # (division, org folder)
    problems: list[str] = field(default_factory=list)
    run_counts: list[str] = field(default_factory=list)   # result sets with the wrong number of runs


def _walk(tree: SafeTree, folder: Path, depth: int):
    yield folder
    if depth:
        for sub in tree.folders(folder):
            yield from _walk(tree, sub, depth - 1)


def find_runs(source: Path, ruleset: str = MLPACE_RULESET) -> Plan:
    """Training result sets and inference trees under `source` (an mlpace output folder)."""
    tree = SafeTree(source)
    plan = Plan()
    round_ = round_for_ruleset(ruleset)
    for folder in _walk(tree, tree.root, _SEARCH_DEPTH):
        if canonical_scenario(folder.name) and tree.is_folder(folder / "performance"):
            # <division>/<org>/results/<system>/<benchmark>/<scenario>
            org = folder.parents[3]
            division = org.parent.name if len(folder.parents) > 4 else ""
            if division not in DIVISIONS:
                plan.problems.append(f"{tree.relative(folder)}: inference results must sit under "
                                     "<closed|open>/<org>/results/ (as `mlpace infer` writes them)")
            elif (division, org) not in plan.inference:
                plan.inference.append((division, org))
            continue
        results = sorted((p for p in tree.files(folder) if _RESULT_FILE.match(p.name)),
                         key=lambda p: int(_RESULT_FILE.match(p.name).group(1)))
        if not results:
            continue
        benchmark, system = folder.name, folder.parent.name
        system_json = folder.parents[2] / "systems" / f"{system}.json" if len(folder.parents) > 2 else None
        plan.training.append(TrainingSet(system, benchmark, results,
                                         system_json if system_json and tree.is_file(system_json) else None))
        need = round_.required_runs(benchmark)
        if need is None:
            plan.problems.append(f"{tree.relative(folder)}: {benchmark!r} is not an MLPerf Training benchmark")
        elif len(results) != need:
            plan.run_counts.append(_run_count_line(str(source / tree.relative(folder)), benchmark,
                                                   len(results), need))
    for path, reason in tree.problems:
        plan.problems.append(f"{tree.relative(path)}: {reason}")
    return plan


def _run_count_line(folder: str, benchmark: str, have: int, need: int) -> str:
    runs = f"{have} run{'' if have == 1 else 's'} of {benchmark}; a result needs exactly {need}"
    if have < need:
        return f"{folder}: {runs}: make one with `mlpace train {benchmark} --runs {need}`"
    return f"{folder}: {runs}: remove the extra runs"


def _not_packaged_error(plan: Plan, ruleset: str) -> MlpaceError:
    """Incomplete results (the suite's one-run output): a short line, then one line per result
    below it with the command that completes it, then any other problem."""
    n = len(plan.run_counts)
    if not n:
        return MlpaceError("not packaged: " + " | ".join(plan.problems))
    summary = (f"not packaged: a submission holds, per benchmark, exactly the runs its rules ask "
               f"for (ruleset {ruleset}); {n} result{' is' if n == 1 else 's are'} not complete:")
    details = plan.run_counts + ["(`mlpace train` writes a new folder under mlpace-results/; "
                                 "package that folder)"]
    if plan.problems:
        details += ["other problems:"] + [f"  {problem}" for problem in plan.problems]
    return MlpaceError(summary, details=details)


def _system_description(tset: TrainingSet, org: str, division: str, status: str,
                        overrides: dict) -> dict:
    if tset.system_json:
        desc = read_json_limited(tset.system_json)
        if not isinstance(desc, dict):
            raise MlpaceError(f"{tset.system_json} is not a JSON object")
    else:
        desc = capture_system_description(system_name=tset.system)
    desc.update(overrides)
    desc.update({"submitter": org, "division": division, "status": status})
    return desc


def _empty_fields(desc: dict, required) -> list[str]:
    """Required system-description fields that are missing or empty (never filled in for the user)."""
    return [name for name in required if desc.get(name) in (None, "", [], {})]


def _recorded_scale(folder: Path) -> str | None:
    """The scale `mlpace train` recorded for a result folder (its score.json), if any."""
    try:
        record = read_json_limited(folder / "score.json")     # never through a link
    except MlpaceError:
        return None
    return record.get("scale") if isinstance(record, dict) else None


def _check_logs(tset: TrainingSet, division: str) -> list[str]:
    """Runs must say the benchmark and division they are filed under, at a scale that may
    claim that division (mini results are open by construction)."""
    problems = []
    folder = tset.files[0].parent
    try:
        require_division_allowed(_recorded_scale(folder) or "reference", division)
    except MlpaceError as err:
        problems.append(f"{folder}: {err}")
    for path in tset.files:
        run = parse_result_file(path)
        if run.benchmark and run.benchmark != tset.benchmark:
            problems.append(f"{path}: logs benchmark {run.benchmark!r} but sits under {tset.benchmark}/")
        if run.division and run.division != division:
            problems.append(f"{path}: logged for the {run.division} division, packaging for {division}")
        if run.status is None:
            problems.append(f"{path}: has no run_stop (the run was cut short); rerun it")
    return problems


def _reproduce_command(tset: TrainingSet) -> str | None:
    """The exact command `mlpace train` recorded for this result (score.json beside the logs)."""
    path = tset.files[0].parent / "score.json"
    record = read_json_limited(path) if path.is_file() else None
    command = record.get("command") if isinstance(record, dict) else None
    return command if isinstance(command, str) and command else None


def _readme(benchmark: str, tset: TrainingSet, desc: dict, ruleset: str) -> str:
    seeds = []
    for path in tset.files:
        seed = parse_result_file(path).seed
        seeds.append(str(seed) if seed is not None else "?")
    command = _reproduce_command(tset)
    reproduce = (["```", command, "```"] if command else
                 ["These runs carry no `mlpace train` record (score.json), so the command that "
                  "made them is not known."])
    return "\n".join([
        f"# {benchmark}: mlpace implementation", "",
        f"Produced by mlpace (its version is in `other_software_stack` of "
        f"systems/{tset.system}.json) under the rules of MLPerf Training ruleset {ruleset}.", "",
        "## Reproduce", "",
        *reproduce, "",
        f"Seeds of the packaged runs, in order: {', '.join(seeds)}.",
        f"System: {desc.get('system_name')} ({desc.get('host_processor_model_name')}, "
        f"{desc.get('accelerators_per_node')} x {desc.get('accelerator_model_name')}), "
        f"framework {desc.get('framework')}.", "",
    ])


def package(sources: list[str | os.PathLike], org: str, out: str | os.PathLike,
            division: str = "open", availability: str = "onprem",
            overrides: dict | None = None, ruleset: str = MLPACE_RULESET,
            system_type: str | None = None) -> Path:
    """Build the submission tree for `org` under `out`; returns `out`. See the module doc.
    `system_type` (datacenter, edge or both) is the v1.1 inference field; training has none."""
    org = safe_name(org, "organisation")
    if division not in DIVISIONS:
        raise MlpaceError(f"division must be one of {', '.join(DIVISIONS)}, not {division!r}")
    status = AVAILABILITY.get(availability.lower())
    inference_status = inference_rules.availability(availability)
    if status is None or inference_status is None:
        raise MlpaceError(f"availability must be one of {', '.join(sorted(set(AVAILABILITY)))}, "
                          f"not {availability!r}")
    if system_type is not None and system_type not in inference_rules.SYSTEM_TYPES:
        raise MlpaceError(f"system type must be one of {', '.join(inference_rules.SYSTEM_TYPES)}, "
                          f"not {system_type!r}")
    plan = Plan()
    for source in sources:
        found = find_runs(Path(source), ruleset)
        plan.training += found.training
        plan.inference += found.inference
        plan.problems += found.problems
        plan.run_counts += found.run_counts
    if not plan.training and not plan.inference and not plan.problems:
        raise MlpaceError(f"no training results (result_<i>.txt) or inference results under "
                          f"{', '.join(map(str, sources))}")
    for tset in plan.training:
        for name, what in ((tset.system, "system name"), (tset.benchmark, "benchmark name")):
            try:
                safe_name(name, what)
            except MlpaceError as err:
                plan.problems.append(str(err))
        plan.problems += _check_logs(tset, division)
    for source_division, source_org in plan.inference:
        if source_division != division:
            plan.problems.append(f"{source_org}: run for the {source_division} division (mlpace infer "
                                 f"--division), packaging for {division}")
        plan.problems += source_problems(source_org, division)
    seen = [(t.system, t.benchmark) for t in plan.training]
    for key in {k for k in seen if seen.count(k) > 1}:
        plan.problems.append(f"{key[0]}/{key[1]} found in more than one source folder")
    if plan.problems or plan.run_counts:
        raise _not_packaged_error(plan, ruleset)

    out = Path(out)
    targets = [out / org] if plan.training else []
    targets += [out / division / org for _ in plan.inference]
    for target in targets:
        if target.exists():
            raise MlpaceError(f"{target} already exists; choose another --out or move it away "
                              "(package never overwrites a submission)")
    make_folder(out)    # an existing file named as --out: one line, not a traceback
    refuse_linked_folders(out, [org, *DIVISIONS, *(Path(d) / org for d in DIVISIONS)])
    staging = Path(tempfile.mkdtemp(prefix=".mlpace-package-", dir=out))
    try:
        problems = _write_training(staging, plan.training, org, division, status, overrides or {}, ruleset)
        for _, source_org in plan.inference:
            problems += write_inference(staging / division / org, source_org, org, division,
                                        inference_status, system_type, overrides or {})
        if problems:
            raise MlpaceError("not packaged: " + " | ".join(dict.fromkeys(problems)))
        for item in staging.iterdir():
            if item.name in (org,) or item.name in DIVISIONS:
                _move_into(item, out / item.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out


def _move_into(src: Path, dst: Path) -> None:
    """Move a staged folder into place; merge only into folders that do not hold it yet."""
    if not dst.exists():
        os.replace(src, dst)
        return
    for child in src.iterdir():
        _move_into(child, dst / child.name)


def _write_training(root: Path, sets: list[TrainingSet], org: str, division: str, status: str,
                    overrides: dict, ruleset: str) -> list[str]:
    """Write the training sets under `root`; returns why the tree may not be kept."""
    problems = []
    for tset in sets:
        base = root / org
        results = base / "results" / tset.system / tset.benchmark
        results.mkdir(parents=True, exist_ok=True)
        for index, path in enumerate(tset.files):
            shutil.copyfile(path, results / f"result_{index}.txt")
        desc = _system_description(tset, org, division, status, overrides)
        empty = _empty_fields(desc, REQUIRED_FIELDS)
        if empty:
            problems.append(f"systems/{tset.system}.json: {', '.join(empty)} missing or empty; give them "
                            "in --system-desc FILE (start from `mlpace sysinfo --out FILE`)")
        systems = base / "systems"
        systems.mkdir(parents=True, exist_ok=True)
        (systems / f"{tset.system}.json").write_text(json.dumps(desc, indent=2) + "\n")
        impl = base / "benchmarks" / tset.benchmark / "implementations" / "mlpace"
        impl.mkdir(parents=True, exist_ok=True)
        (impl / "README.md").write_text(_readme(tset.benchmark, tset, desc, ruleset))
    return problems
