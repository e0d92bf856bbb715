"""`mlpace package` of inference results: compliance audits travel into the official layout."""

import hashlib
import json
import os
import shutil
from pathlib import Path

from mlpace.rules import inference as rules
from mlpace.submission.check import FAIL, PASS, check
from mlpace.submission.package import package

DATA = Path(__file__).resolve().parents[1] / "data"
RUN = DATA / "mlpace" / "infer-resnet50-singlestream-full"
SYSTEM_DESC = {name: "N/A" for name in (
    "host_processor_interconnect", "host_storage_type", "host_networking", "host_networking_topology",
    "host_memory_configuration", "accelerator_host_interconnect", "accelerator_frequency",
    "accelerator_on-chip_memories", "accelerator_memory_configuration", "accelerator_memory_capacity",
    "accelerator_interconnect", "accelerator_interconnect_topology", "cooling", "hw_notes",
    "host_processor_caches", "host_processor_frequency")}


def _with_audits(tmp_path: Path) -> tuple[Path, bytes]:
    """The real run plus audit folders where `mlpace infer --submission` writes them
    (<org>/compliance/<system>/<model>/<scenario>/TEST*), their logs taken from the real run."""
    source = tmp_path / "run"
    shutil.copytree(RUN, source)
    for path in [source, *source.rglob("*")]:
        os.chmod(path, 0o755 if path.is_dir() else 0o644)
    perf = next(source.glob("open/*/results/*/resnet50/SingleStream/performance/run_1"))
    log = (perf.parents[1] / "accuracy" / "mlperf_log_accuracy.json").read_bytes()
    audits = perf.parents[5] / "compliance" / perf.parents[3].name / "resnet50" / "SingleStream"
    for test in rules.COMPLIANCE_TESTS:
        run = audits / test / "performance" / "run_1"
        run.mkdir(parents=True)
        for name in ("mlperf_log_summary.txt", "mlperf_log_detail.txt", "mlpace_summary.json"):
            shutil.copyfile(perf / name, run / name)
        if test != "TEST04-B":
            (audits / test / "verify_performance.txt").write_text("TEST PASS\n")
    (audits / "TEST01" / "verify_accuracy.txt").write_text("TEST PASS\n")
    (audits / "TEST01" / "accuracy").mkdir()
    (audits / "TEST01" / "accuracy" / "mlperf_log_accuracy.json").write_bytes(log)
    return source, log


def test_compliance_audits_are_packaged_and_checked(tmp_path):
    source, log = _with_audits(tmp_path)
    out = package([source], "MyOrg", tmp_path / "sub", overrides=SYSTEM_DESC, system_type="edge")
    audits = next((out / "open" / "MyOrg" / "compliance").glob("*/resnet50/SingleStream"))
    assert sorted(p.name for p in audits.iterdir()) == list(rules.COMPLIANCE_TESTS)
    assert sorted(p.name for p in (audits / "TEST01" / "performance" / "run_1").iterdir()) == \
        ["mlperf_log_detail.txt", "mlperf_log_summary.txt"]                    # mlpace's file stays out
    acc = audits / "TEST01" / "accuracy"
    assert (acc / "mlperf_log_accuracy.json").stat().st_size <= rules.MAX_ACCURACY_LOG_BYTES
    assert (acc / "accuracy.txt").read_text() == f"hash={hashlib.sha256(log).hexdigest()}\n"
    assert not (audits / "TEST04-B" / "verify_performance.txt").exists()
    # filed as closed, the audits pass mlpace's compliance rules (the result fails for other
    # reasons: a mini model, and no Offline result for an edge system)
    os.rename(out / "open", out / "closed")
    desc = next((out / "closed" / "MyOrg" / "systems").glob("*.json"))
    desc.write_text(json.dumps({**json.loads(desc.read_text()), "division": "closed"}))
    report = check(out, workers=1)
    audits_found = [f for f in report.findings if f.rule == "compliance audit"]
    assert len(audits_found) == 4 and all(f.level == PASS for f in audits_found)
    verify = next((out / "closed").glob("MyOrg/compliance/*/resnet50/SingleStream/TEST05/verify_performance.txt"))
    verify.write_text("TEST FAIL\n")
    failed = [f for f in check(out, workers=1).findings if f.rule == "compliance audit" and f.level == FAIL]
    assert len(failed) == 1 and "TEST PASS" in failed[0].reason


def test_submission_audits_pass_the_official_compliance_checks(tmp_path):
    """`run_submission`'s audits (TEST01/04/05 and their verification), packaged, are what the
    official checker's compliance step reads, and mlpace judges them as it does: all pass, or
    (on a busy machine an audit's speed may miss its tolerance) both name the failure. (The run
    itself is a toy at shrunk minimums, so the checker rejects it for those, as it must.)"""
    import sys
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "inference"))
    from official_checkers import run_inference_checker
    from toy_task import toy_task

    from mlpace.inference.runner import RunOptions, calibrate
    from mlpace.inference.suite import run_submission

    task = toy_task(total=64, delay_s=0.002)
    options = RunOptions(out=tmp_path / "runs", division="closed", system="sys", workers=1,
                         test_minimums={"min_duration": 400, "min_query_count": 200})
    run_submission(task, "Offline", options, calibrate(task), lambda line: None)
    org = tmp_path / "runs" / "closed" / "mlpace"
    for area in ("results", "measurements", "compliance"):      # the toy stands in for resnet50
        os.rename(org / area / "sys" / "toy", org / area / "sys" / "resnet50")
    out = package([tmp_path / "runs"], "MyOrg", tmp_path / "sub", division="closed",
                  overrides=SYSTEM_DESC, system_type="datacenter")
    accepted, errors, output = run_inference_checker(out)
    assert not accepted and "Test duration lesser than 600s" in output     # shrunk minimums
    verified = {p.parent.name: "TEST PASS" in p.read_text()
                for p in out.glob("closed/MyOrg/compliance/sys/resnet50/Offline/TEST*/verify_performance.txt")}
    assert set(verified) == {"TEST01", "TEST04-A", "TEST05"}       # TEST04-B has no verify file
    report = check(out, workers=1)
    audits = {Path(f.path).name: f.level for f in report.findings if f.rule == "compliance audit"}
    assert set(audits) == set(rules.COMPLIANCE_TESTS)
    official_compliance = [e for e in errors if "compliance" in e or "TEST0" in e]
    # The official check_compliance_dir keeps only the last audit's performance verdict (its
    # loop overwrites it): it reports TEST05 alone; mlpace fails every audit that failed.
    assert bool(official_compliance) == (not verified["TEST05"]), "\n".join(errors)
    assert {t for t, level in audits.items() if level == FAIL} == {t for t, ok in verified.items() if not ok}
