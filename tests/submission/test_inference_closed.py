"""The closed division end to end on a real model: `mlpace infer --submission`'s flow (short
measurements, performance run, accuracy run, TEST01 / TEST04-A / TEST04-B / TEST05 and their
verification) on the reference resnet50 binding, packaged as closed, then judged by
`mlpace check` and by the official v1.1 submission checker.

Closed needs the reference scale. The cheapest honest reference run: the real ResNet-50 v1.5
network (seeded random weights saved as the user's checkpoint) on four JPEGs in ImageNet's
folder layout, read by the reference loader (resize 256, centre crop 224), at the test-only
shrunk minimums (`RunOptions.test_minimums`). Every log is LoadGen's own. Both checkers must
then reject the result for exactly what was shrunk (duration, samples per query, performance
sample count) and for the accuracy an untrained network has, and for nothing else: layout,
system description, truncated accuracy logs, hashes and the audits' folders must all pass.
"""

import re
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from official_checkers import run_inference_checker  # noqa: E402
from test_inference_package import SYSTEM_DESC  # noqa: E402

from mlpace.rules import inference as rules  # noqa: E402
from mlpace.submission.check import FAIL, PASS, check  # noqa: E402
from mlpace.submission.loadgen_log import parse_accuracy_file  # noqa: E402
from mlpace.submission.package import package  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

SHRUNK = {"min_duration": 100, "min_query_count": 8, "performance_sample_count_override": 4}
# What the official checker says about the shrunk minimums, and what follows from them.
SHRUNK_ERRORS = (r"performance_sample_count, found 4, needs to be >= 1024",
                 r"Required minimum samples per query not met by user config, Expected=24576, Found=8",
                 r"Test duration lesser than 600s in user config. expected=600000, found=100")
CONSEQUENCES = (r"performance/run_1 has issues$", r"does not have all required scenarios",
                r"NoResults ", r"SUMMARY: submission has errors")
ACCURACY_ERROR = r"Offline/accuracy, accuracy not valid"


@pytest.fixture(scope="module")
def closed_submission(tmp_path_factory):
    from mlpace.benchmarks.resnet.data import write_imagenet_like
    from mlpace.benchmarks.resnet.model import resnet50
    from mlpace.inference import models
    from mlpace.inference.runner import RunOptions, calibrate
    from mlpace.inference.suite import run_submission

    tmp = tmp_path_factory.mktemp("closed")
    data = write_imagenet_like(tmp / "imagenet", per_class=2, size=(64, 48))
    torch.manual_seed(0)
    torch.save(resnet50(2).state_dict(), tmp / "resnet50.pt")
    task = models.get_binding("resnet50").build(models.BuildOptions(
        scale="reference", data_dir=data, checkpoint=tmp / "resnet50.pt", threads=2))
    options = RunOptions(out=tmp / "runs", scale="reference", division="closed", system="sys",
                         workers=1, max_batch=2, test_minimums=dict(SHRUNK))
    records = run_submission(task, "Offline", options, calibrate(task, 2, repeats=1), lambda line: None)
    out = package([tmp / "runs"], "MyOrg", tmp / "sub", division="closed", overrides=SYSTEM_DESC,
                  system_type="datacenter")
    return records, out


def _verified(out: Path) -> dict[str, bool]:
    """Each audit's verification verdict as written (TEST04-B has no verify file of its own)."""
    root = out / "closed/MyOrg/compliance/sys/resnet50/Offline"
    return {test: rules.COMPLIANCE_PASS in (root / test / "verify_performance.txt").read_text()
            for test in ("TEST01", "TEST04-A", "TEST05")}


def test_every_run_of_the_closed_flow_is_real_and_complete(closed_submission):
    records, out = closed_submission
    by_name = {r.get("audit") or r["mode"]: r for r in records}
    assert set(by_name) == {"performance", "accuracy", *rules.COMPLIANCE_TESTS}
    assert by_name["performance"]["result"] == "VALID" and by_name["performance"]["scale"] == "reference"
    assert not any(r.get("valid_for_submission") for r in records)      # shrunk: never submittable
    root = out / "closed/MyOrg"
    for test in rules.COMPLIANCE_TESTS:
        run = root / "compliance/sys/resnet50/Offline" / test / "performance/run_1"
        assert (run / "mlperf_log_summary.txt").is_file() and (run / "mlperf_log_detail.txt").is_file()
    assert (root / "compliance/sys/resnet50/Offline/TEST01/verify_accuracy.txt").is_file()
    assert (root / "systems/sys.json").is_file() and (root / "code/resnet50/README.md").is_file()


def test_both_checkers_reject_only_what_was_shrunk_and_the_untrained_accuracy(closed_submission):
    _, out = closed_submission
    accuracy = parse_accuracy_file(out / "closed/MyOrg/results/sys/resnet50/Offline/accuracy/accuracy.txt")
    below_target = accuracy["metrics"]["accuracy"] < rules.MODELS["resnet50"].target
    verified = _verified(out)

    accepted, errors, output = run_inference_checker(out)
    assert not accepted
    for reason in SHRUNK_ERRORS:
        assert any(re.search(reason, e) for e in errors), (reason, output)
    assert any(re.search(ACCURACY_ERROR, e) for e in errors) == below_target, output
    # The official v1.1 check_compliance_dir keeps only the last audit's performance verdict
    # (its loop overwrites it), so of the audits it reports TEST05 alone.
    compliance_errors = [e for e in errors if "compliance" in e]
    assert bool(compliance_errors) == (not verified["TEST05"]), output
    expected = SHRUNK_ERRORS + CONSEQUENCES + (ACCURACY_ERROR, r"compliance dir .* has issues")
    unexplained = [e for e in errors if not any(re.search(p, e) for p in expected)]
    assert unexplained == [], output

    report = check(out, workers=1)
    failed = {(f.rule, Path(f.path).name) for f in report.findings if f.level == FAIL}
    run_rules = next(f for f in report.findings if f.rule == "v1.1 run rules")
    for words in ("performance_sample_count is 4", "samples per Offline query is 8", "min_duration (ms) is 100"):
        assert words in run_rules.reason
    assert (("accuracy target", "accuracy.txt") in failed) == below_target
    audits = {Path(f.path).name: f.level for f in report.findings if f.rule == "compliance audit"}
    assert set(audits) == set(rules.COMPLIANCE_TESTS)
    # mlpace fails every audit whose verification failed (stricter than the official loop).
    assert {t for t, level in audits.items() if level == FAIL} == {t for t, ok in verified.items() if not ok}
    assert audits["TEST04-B"] == PASS
    allowed = {"v1.1 run rules", "accuracy target", "required scenarios", "compliance audit"}
    assert {rule for rule, _ in failed} <= allowed, failed
