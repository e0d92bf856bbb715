"""`mlpace check` and the official MLPerf Inference v1.1 submission checker agree on every tree.

The accepted tree is two real `mlpace infer` results (resnet50 SingleStream and Offline, full
length, open division; tests/data/mlpace/README.md says how they were made) packaged by
`mlpace package`.
Every other tree is that one with exactly one defect, one for each reason the official checker
rejected mlpace's trees (issue 18): both checkers must reject each. The official checker runs
unchanged, as a subprocess, from its copy in tests/data/official/. "Rejected" is what MLCommons
review means by it: the checker prints an ERROR line (some errors also end in "SUMMARY:
submission has errors", some only in the line).
"""

import hashlib
import importlib.util
import json
import os
import re
import shutil
import sys
from pathlib import Path

import pytest

from official_checkers import run_inference_checker as official

from mlpace.errors import MlpaceError
from mlpace.rules import inference as rules
from mlpace.submission.check import FAIL, PASS, check
from mlpace.submission.inference_package import truncate_accuracy_log
from mlpace.submission.package import package

DATA = Path(__file__).resolve().parents[1] / "data"
CHECKER_DIR = DATA / "official" / "inference-v1.1-submission-checker"
RUN = DATA / "mlpace" / "infer-resnet50-singlestream-full"   # `mlpace infer` output, as written
OFFLINE = DATA / "mlpace" / "infer-resnet50-offline-full"
QUICK = DATA / "mlpace" / "infer-resnet50-offline-quick"     # a --quick Offline run
PUBLISHED = DATA / "mlperf" / "inference_v1.1"
SYSTEM_DESC = {   # what a user gives `package --system-desc` for the fields mlpace cannot detect
    "host_processor_interconnect": "N/A (one socket)", "host_storage_type": "SSD",
    "host_networking": "N/A", "host_networking_topology": "N/A",
    "host_memory_configuration": "unknown (virtual machine)", "accelerator_host_interconnect": "N/A",
    "accelerator_frequency": "N/A", "accelerator_on-chip_memories": "N/A",
    "accelerator_memory_configuration": "N/A", "accelerator_memory_capacity": "N/A",
    "accelerator_interconnect": "N/A", "accelerator_interconnect_topology": "N/A", "cooling": "air",
    "hw_notes": "none", "host_processor_caches": "N/A", "host_processor_frequency": "N/A",
}
ORG = "MyOrg"


def mlpace(root: Path):
    return check(root, workers=1)


def failed(report) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for f in report.findings:
        if f.level == FAIL:
            out.setdefault(f.rule, []).append(f"{f.path}: {f.reason}")
    return out


@pytest.fixture(scope="module")
def accepted(tmp_path_factory) -> Path:
    """The packaged real run: a submission root holding open/MyOrg."""
    base = tmp_path_factory.mktemp("accepted")
    package([RUN, OFFLINE], ORG, base / "sub", availability="available", overrides=SYSTEM_DESC,
            system_type="edge")
    return base / "sub"


@pytest.fixture
def tree(accepted, tmp_path) -> Path:
    """A private copy of the accepted tree, to break one thing in."""
    root = tmp_path / "sub"
    shutil.copytree(accepted, root)
    return root


def org(root: Path) -> Path:
    return next(root.glob("*/" + ORG))


def result(root: Path, scenario: str = "SingleStream") -> Path:
    return next(org(root).glob(f"results/*/resnet50/{scenario}"))


def edit_json(path: Path, **changes) -> None:
    data = json.loads(path.read_text())
    for key, value in changes.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    path.write_text(json.dumps(data, indent=2))


def set_detail(path: Path, key: str, value) -> None:
    """Change one MLLOG record of a LoadGen detail log (a defect a test plants)."""
    lines = []
    for line in path.read_text().splitlines():
        if line.startswith(":::MLLOG") and f'"key": "{key}"' in line:
            record = json.loads(line[len(":::MLLOG "):])
            record["value"] = value
            line = ":::MLLOG " + json.dumps(record)
        lines.append(line)
    path.write_text("\n".join(lines) + "\n")


def to_closed(root: Path) -> Path:
    """The same tree filed under closed/ (its system description says so too)."""
    os.rename(root / "open", root / "closed")
    for desc in (root / "closed" / ORG / "systems").glob("*.json"):
        edit_json(desc, division="closed")
    return root


def assert_both_reject(root: Path, official_says: str, mlpace_rule: str) -> None:
    accepted_, errors, output = official(root)
    assert not accepted_, output
    assert any(official_says in line for line in errors), "\n".join(errors) or output
    report = mlpace(root)
    assert not report.ok
    assert mlpace_rule in failed(report), failed(report)


# --- the accepted tree ----------------------------------------------------------------------

def test_both_accept_a_packaged_full_length_run(accepted):
    accepted_, errors, output = official(accepted)
    assert accepted_, "\n".join(errors) or output
    report = mlpace(accepted)
    assert report.ok, failed(report)
    passed = {f.rule for f in report.findings if f.level == PASS}
    assert {"LoadGen validity", "v1.1 run rules", "measurements", "accuracy",
            "system description fields"} <= passed
    assert "Results=2, NoResults=0" in official(accepted)[2]          # SingleStream and Offline


def test_package_writes_only_the_official_files(accepted):
    root = org(accepted)
    perf = sorted(p.name for p in (result(accepted) / "performance" / "run_1").iterdir())
    assert perf == ["mlperf_log_detail.txt", "mlperf_log_summary.txt"]      # no mlpace_summary.json
    acc = result(accepted) / "accuracy"
    assert sorted(p.name for p in acc.iterdir()) == sorted(rules.ACCURACY_FILES)
    full = next(RUN.glob("*/*/results/*/resnet50/SingleStream/accuracy/mlperf_log_accuracy.json")).read_bytes()
    assert len(full) > rules.MAX_ACCURACY_LOG_BYTES                          # so truncation is exercised
    packed = (acc / "mlperf_log_accuracy.json").read_bytes()
    assert packed == full[:4096] + b"\n\n...\n\n" + full[-4096:]             # as truncate_accuracy_log.py
    assert f"hash={hashlib.sha256(full).hexdigest()}" in (acc / "accuracy.txt").read_text()
    desc = json.loads(next((root / "systems").glob("*.json")).read_text())
    assert (desc["status"], desc["system_type"], desc["division"]) == ("available", "edge", "open")
    assert all(desc[f] not in ("", None) for f in rules.SYSTEM_REQUIRED_FIELDS)
    measured = next(root.glob("measurements/*/resnet50/SingleStream"))
    record = json.loads(next(RUN.glob("*/*/results/*/resnet50/SingleStream/performance/run_1/"
                                      "mlpace_summary.json")).read_text())
    assert record["command"].startswith("mlpace infer resnet50 --scenario SingleStream")
    assert record["command"] in (measured / "README.md").read_text()        # the exact command
    assert (root / "code" / "resnet50" / "README.md").is_file()


def test_truncation_keeps_small_logs():
    assert truncate_accuracy_log(b"[]") == b"[]"
    big = bytes(range(256)) * 100
    assert len(truncate_accuracy_log(big)) == 2 * 4096 + len(b"\n\n...\n\n")


# --- one defect each: both reject -------------------------------------------------------------

def test_training_availability_word_is_rejected(tree):
    edit_json(next(org(tree).glob("systems/*.json")), status="onprem")
    assert_both_reject(tree, "has invalid status (onprem)", "availability")


def test_missing_system_type_is_rejected(tree):
    edit_json(next(org(tree).glob("systems/*.json")), system_type=None)
    assert_both_reject(tree, "has invalid system type (None)", "system type")


def test_missing_system_field_is_rejected(tree):
    edit_json(next(org(tree).glob("systems/*.json")), host_networking=None)
    assert_both_reject(tree, "field host_networking is missing", "system description fields")


def test_mlpace_files_in_the_official_tree_are_rejected(tree):
    (result(tree) / "performance" / "run_1" / "mlpace_summary.json").write_text("{}")
    assert_both_reject(tree, "has file list mismatch (['mlpace_summary.json'])", "file list")


@pytest.mark.parametrize("name, official_says", [
    ("README.md", "is missing README.md"), ("box.json", "is missing box*.json")])
def test_incomplete_measurements_are_rejected(tree, name, official_says):
    measured = next(org(tree).glob("measurements/*/resnet50/SingleStream"))
    target = measured / name if name != "box.json" else next(p for p in measured.glob("*.json"))
    official_says = official_says.replace("box", target.stem) if name == "box.json" else official_says
    target.unlink()
    assert_both_reject(tree, official_says, "measurements")


def test_untruncated_accuracy_log_is_rejected(tree):
    full = next(RUN.glob("*/*/results/*/resnet50/SingleStream/accuracy/mlperf_log_accuracy.json"))
    shutil.copyfile(full, result(tree) / "accuracy" / "mlperf_log_accuracy.json")
    assert_both_reject(tree, "mlperf_log_accuracy.json is not truncated", "accuracy log")


def test_accuracy_without_hash_is_rejected(tree):
    path = result(tree) / "accuracy" / "accuracy.txt"
    path.write_text("".join(l for l in path.read_text().splitlines(True) if not l.startswith("hash=")))
    assert_both_reject(tree, "not hash value for mlperf_log_accuracy.json", "accuracy log hash")


def test_scenario_without_accuracy_run_is_rejected(tree):
    """A SingleStream result needs its accuracy run as much as an Offline one."""
    (result(tree) / "accuracy" / "accuracy.txt").unlink()
    assert_both_reject(tree, "has no accuracy.txt", "accuracy run")


@pytest.mark.parametrize("key, value, official_says", [
    ("effective_performance_sample_count", 1000, "performance_sample_count, found 1000, needs to be >= 1024"),
    ("effective_min_query_count", 64, "Required minimum Query Count not met"),
    ("effective_min_duration_ms", 60000, "Test duration lesser than 600s"),
    ("effective_qsl_rng_seed", 12786827339337101903, "qsl_rng_seed is wrong"),
    ("result_validity", "INVALID", "performance/run_1 has issues"),
])
def test_loadgen_rule_breaches_are_rejected(tree, key, value, official_says):
    set_detail(result(tree) / "performance" / "run_1" / "mlperf_log_detail.txt", key, value)
    assert_both_reject(tree, official_says, "LoadGen validity" if key == "result_validity" else "v1.1 run rules")


def test_offline_query_below_the_minimum_is_rejected(tree):
    set_detail(result(tree, "Offline") / "performance" / "run_1" / "mlperf_log_detail.txt",
               "effective_samples_per_query", 20000)
    assert_both_reject(tree, "Required minimum samples per query not met", "v1.1 run rules")


def test_quick_offline_run_is_rejected(tmp_path):
    """A --quick run: one short Offline query, below 24,576 samples and 600 s."""
    package([QUICK], ORG, tmp_path / "sub", overrides=SYSTEM_DESC, system_type="edge")
    assert_both_reject(tmp_path / "sub", "Required minimum samples per query not met", "v1.1 run rules")
    reasons = " ".join(failed(mlpace(tmp_path / "sub"))["v1.1 run rules"])
    assert "samples per Offline query is 2111" in reasons and "min_duration (ms) is 1000" in reasons


def test_closed_result_needs_compliance_audits(tree):
    to_closed(tree)
    assert_both_reject(tree, "no compliance dir for", "compliance audits")


def test_closed_accuracy_at_98_percent_fails_whatever_the_file_says(tree):
    """98 % of the official 76.46 %: below the 99 % target, even with a verdict line saying PASS."""
    to_closed(tree)
    path = result(tree) / "accuracy" / "accuracy.txt"
    digest = [l for l in path.read_text().splitlines() if l.startswith("hash=")]
    path.write_text(f"accuracy={76.46 * 0.98:.3f}%, good=1, total=1\n"
                    "fp32_reference=76.460, target=74.930 (98% of fp32), result=PASS\n" + "\n".join(digest) + "\n")
    assert_both_reject(tree, "accuracy not valid", "accuracy target")
    [finding] = [f for f in mlpace(tree).findings if f.rule == "accuracy target" and "SingleStream" in f.path]
    assert finding.level == FAIL and "accuracy = 74.931 < 75.6954" in finding.reason


def test_closed_accuracy_is_read_in_the_official_format_only(tree):
    """An accuracy.txt the official regex cannot read (mlpace's old bert form) is no figure at all."""
    to_closed(tree)
    path = result(tree) / "accuracy" / "accuracy.txt"
    path.write_text('{"f1": 99.000}\n' + path.read_text().splitlines()[-1] + "\n")
    assert_both_reject(tree, "accuracy not valid", "accuracy")


def test_rnnt_accuracy_sign_follows_the_metric(tree):
    """WER is judged as accuracy = 100 - WER (higher is better): a passing result reads '>='."""
    to_closed(tree)
    results = org(tree) / "results"
    system = next(results.iterdir())
    os.rename(system / "resnet50", system / "rnnt")
    acc = system / "rnnt" / "SingleStream" / "accuracy" / "accuracy.txt"
    digest = acc.read_text().splitlines()[-1]
    acc.write_text(f"Word Error Rate: 7.5%, accuracy=92.5%\n{digest}\n")
    [finding] = [f for f in mlpace(tree).findings if f.rule == "accuracy target" and "SingleStream" in f.path]
    assert finding.level == PASS and "accuracy (100 - WER) = 92.5 >= 91.6" in finding.reason


def test_published_fixtures_are_rejected_by_both():
    """The shipped v1.1 fixtures are partial copies (no detail logs, measurements or audits):
    the official checker rejects them, so mlpace must too; their closed accuracies still pass."""
    accepted_, errors, _ = official(PUBLISHED)
    assert not accepted_ and errors
    report = mlpace(PUBLISHED)
    assert not report.ok
    targets = [f for f in report.findings if f.rule == "accuracy target"]
    assert len(targets) == 26 and all(f.level == PASS for f in targets)


# --- package refusals ---------------------------------------------------------------------------

def test_package_refuses_closed_division_of_mini_results(tmp_path):
    with pytest.raises(MlpaceError, match="open division by construction"):
        package([RUN], ORG, tmp_path / "sub", division="closed", overrides=SYSTEM_DESC, system_type="edge")
    assert not (tmp_path / "sub" / "closed").exists()


def test_package_refuses_empty_system_fields_instead_of_filling_them(tmp_path):
    with pytest.raises(MlpaceError, match="host_networking.* missing or empty"):
        package([RUN], ORG, tmp_path / "sub", overrides={**SYSTEM_DESC, "host_networking": ""},
                system_type="edge")
    with pytest.raises(MlpaceError, match="no system_type; pass --system-type"):
        package([RUN], ORG, tmp_path / "sub2", overrides=SYSTEM_DESC)
    assert not (tmp_path / "sub" / "open").exists() and not (tmp_path / "sub2" / "open").exists()


# --- the rules are the official checker's -------------------------------------------------------

def _checker_module():
    sys.path.insert(0, str(CHECKER_DIR))
    try:
        spec = importlib.util.spec_from_file_location("official_submission_checker",
                                                      CHECKER_DIR / "submission-checker.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(CHECKER_DIR))


def test_rules_match_the_official_checker():
    official_ = _checker_module()
    config = official_.MODEL_CONFIG["v1.1"]
    for model in rules.MODELS.values():
        cls = model.mlperf_class
        assert config["accuracy-target"][cls] == (model.metric, pytest.approx(model.target)), model.name
        assert config["performance-sample-count"][cls] == model.performance_sample_count
        assert {s: n for s, n in config["min-queries"][cls].items()} == model.min_queries
        assert config["latency-constraint"].get(cls, {}) == model.latency_ns
        assert official_.Config("v1.1", None).get_mlperf_model(model.name) == cls
    for name in ("efficientnet-lite0-quantized", "mobilenet-v2-1.0-224", "ssd-resnet50-fpn", "yolo-v3",
                 "mobilenet", "resnet", "bert-99.9", "my-own-net"):           # open-division names
        assert official_.Config("v1.1", None).get_mlperf_model(name) == rules.mlperf_class(name), name
    assert config["seeds"] == rules.SEEDS
    for system_type in ("datacenter", "edge", "datacenter,edge"):
        key = system_type.replace(",", "-")
        assert config[f"required-scenarios-{key}"] == rules.REQUIRED_SCENARIOS[system_type]
        assert config[f"optional-scenarios-{key}"] == rules.OPTIONAL_SCENARIOS[system_type]
    assert {k: v for k, v in official_.ACC_PATTERN.items() if k != "bleu"} == rules.ACCURACY_PATTERNS   # bleu: v0.5 gnmt
    assert official_.VALID_AVAILABILITIES == list(rules.AVAILABILITY)
    assert (official_.SYSTEM_DESC_REQUIRED_FIELDS + official_.SYSTEM_DESC_REQUIED_FIELDS_SINCE_V1
            == list(rules.SYSTEM_REQUIRED_FIELDS))
    assert official_.SYSTEM_DESC_REQUIED_FIELDS_POWER == list(rules.SYSTEM_POWER_FIELDS)
    assert official_.SYSTEM_IMP_REQUIRED_FILES == list(rules.IMPLEMENTATION_FIELDS)
    assert official_.REQUIRED_ACC_FILES == list(rules.ACCURACY_FILES)
    assert official_.REQUIRED_PERF_FILES == list(rules.PERFORMANCE_FILES)
    assert official_.REQUIRED_MEASURE_FILES == list(rules.MEASUREMENT_FILES)
    assert (official_.TEST_DURATION_MS, official_.OFFLINE_MIN_SPQ, official_.MAX_ACCURACY_LOG_SIZE) == \
        (rules.MIN_DURATION_MS, rules.OFFLINE_MIN_SAMPLES, rules.MAX_ACCURACY_LOG_BYTES)
    assert official_.RESULT_FIELD_NEW == rules.RESULT_KEYS
    for cls in set(m.mlperf_class for m in rules.MODELS.values()):
        for scenario in ("Offline", "Server", "MultiStream", "SingleStream"):
            expected = ["TEST01", "TEST04-A", "TEST04-B", "TEST05"]
            if cls in ["rnnt", "bert-99", "bert-99.9", "dlrm-99", "dlrm-99.9"] or scenario == "MultiStream":
                expected = ["TEST01", "TEST05"]
            assert rules.compliance_tests(cls, scenario) == expected


def test_accuracy_headlines_are_the_official_formats():
    """What mlpace's accuracy scripts print is read by the checker's own regexes (bert, rnnt)."""
    import numpy as np

    from mlpace.inference.runner import accuracy_headline
    from mlpace.inference.task import InferenceTask

    def task(name, metric, extra=None):
        return InferenceTask(name=name, total=4, load=lambda i: i, predict=lambda s: s, output_dtype="int32",
                             score=lambda o: 0.0, metric=metric, reference_score=0.0, extra_scores=extra)
    outputs = {i: np.zeros(1) for i in range(4)}
    for name, metric, score, pattern, figure in [
            ("resnet50", "accuracy", 0.75, "acc", 75.0), ("ssd-mobilenet", "mAP", 0.22, "mAP", 22.0),
            ("dlrm", "AUC", 0.8025, "AUC", 80.25), ("3d-unet", "DICE", 0.853, "DICE", 0.853),
            ("rnnt", "WER", 0.07452, "WER", 92.548), ("bert", "f1", 0.9, "F1", 90.0)]:
        line = accuracy_headline(task(name, metric, lambda o: {"exact_match": 0.8}), outputs, score)
        found = re.match(rules.ACCURACY_PATTERNS[pattern], line)
        assert found and float(found.group(1)) == pytest.approx(figure, abs=1e-3), line
