"""The MLPerf Inference v1.1 rules, as data, once.

Source: the official v1.1 submission checker (mlcommons/inference, branch r1.1, commit
c5b89189, tools/submission/submission-checker.py: `MODEL_CONFIG["v1.1"]` and the constants
below it) and the round's mlperf.conf. Everything in mlpace that runs, packages or checks an
inference result reads these tables; nothing else states an inference rule.

Units are the checker's: accuracy targets in the unit the official accuracy scripts print
(percent for top-1, mAP, F1, AUC and 100 - WER; a fraction for DICE), latencies in ns,
durations in ms.
"""

from __future__ import annotations

from dataclasses import dataclass

ROUND = "v1.1"
SCENARIOS = ("SingleStream", "MultiStream", "Server", "Offline")

# The `status` of a v1.1 system description, and the spellings mlpace accepts for each
# (training rounds spell availability differently: onprem, cloud, ...).
AVAILABILITY = ("available", "preview", "rdi")
AVAILABILITY_SPELLINGS = {
    "available": "available", "onprem": "available", "on-premise": "available", "cloud": "available",
    "preview": "preview",
    "rdi": "rdi", "research": "rdi",
}
SYSTEM_TYPES = ("datacenter", "edge", "datacenter,edge", "edge,datacenter")

# Fields every v1.1 system description must hold (SYSTEM_DESC_REQUIRED_FIELDS + ..._SINCE_V1).
SYSTEM_REQUIRED_FIELDS = (
    "division", "submitter", "status", "system_name", "number_of_nodes", "host_processor_model_name",
    "host_processors_per_node", "host_processor_core_count", "host_memory_capacity",
    "host_storage_capacity", "host_storage_type", "accelerators_per_node", "accelerator_model_name",
    "accelerator_memory_capacity", "framework", "operating_system",
    "system_type", "other_software_stack", "host_processor_frequency", "host_processor_caches",
    "host_memory_configuration", "host_processor_interconnect", "host_networking",
    "host_networking_topology", "accelerator_frequency", "accelerator_host_interconnect",
    "accelerator_interconnect", "accelerator_interconnect_topology",
    "accelerator_memory_configuration", "accelerator_on-chip_memories", "cooling", "hw_notes",
    "sw_notes",
)
# Fields the checker knows besides those (power submissions); any other field is "unknown".
SYSTEM_POWER_FIELDS = (
    "power_management", "filesystem", "boot_firmware_version", "management_firmware_version",
    "other_hardware", "number_of_type_nics_installed", "nics_enabled_firmware", "nics_enabled_os",
    "nics_enabled_connected", "network_speed_mbit", "power_supply_quantity_and_rating_watts",
    "power_supply_details", "disk_drives", "disk_controllers",
)
# Fields of measurements/<system>/<model>/<scenario>/<system>*.json (SYSTEM_IMP_REQUIRED_FILES).
IMPLEMENTATION_FIELDS = ("input_data_types", "retraining", "starting_weights_filename",
                         "weight_data_types", "weight_transformations")

# The seeds of the round (mlperf.conf); a performance run must use them.
SEEDS = {"qsl_rng_seed": 1624344308455410291, "sample_index_rng_seed": 517984244576520566,
         "schedule_rng_seed": 10051496985653635065}

MIN_DURATION_MS = 600_000            # every performance run, every scenario
OFFLINE_MIN_SAMPLES = 24_576         # samples in the one Offline query
MAX_ACCURACY_LOG_BYTES = 10 * 1024   # a packaged mlperf_log_accuracy.json is truncated below this
ACCURACY_LOG_KEEP_BYTES = 4096       # truncation keeps this much of its start and of its end

# Files of each folder of a result (the checker's REQUIRED_*_FILES).
PERFORMANCE_FILES = ("mlperf_log_summary.txt", "mlperf_log_detail.txt")
PERFORMANCE_OPTIONAL_FILES = ("mlperf_log_accuracy.json", "mlperf_log_trace.json", "results.json")
ACCURACY_FILES = ("mlperf_log_summary.txt", "mlperf_log_detail.txt", "accuracy.txt",
                  "mlperf_log_accuracy.json")
MEASUREMENT_FILES = ("mlperf.conf", "user.conf", "README.md")
COMPLIANCE_PERFORMANCE_FILES = ("mlperf_log_summary.txt", "mlperf_log_detail.txt")
COMPLIANCE_TEST01_ACCURACY_FILES = ("mlperf_log_accuracy.json", "accuracy.txt")
# What a compliance audit's verification script prints when the audit passed.
COMPLIANCE_PASS = "TEST PASS"
# The performance result LoadGen's detail log states, by scenario.
RESULT_KEYS = {"Offline": "result_samples_per_second",
               "SingleStream": "result_90.00_percentile_latency_ns",
               "MultiStream": "effective_samples_per_query",
               "Server": "result_scheduled_samples_per_sec"}

# The regex each official accuracy script's headline matches (ACC_PATTERN), by metric.
ACCURACY_PATTERNS = {
    "acc": r"^accuracy=([\d\.]+).*",
    "AUC": r"^AUC=([\d\.]+).*",
    "mAP": r"^mAP=([\d\.]+).*",
    "F1": r"^{\"exact_match\"\:\s*[\d\.]+,\s*\"f1\"\:\s*([\d\.]+)}",
    "WER": r"Word Error Rate\:.*, accuracy=([0-9\.]+)%",
    "DICE": r"Accuracy\:\s*mean\s*=\s*([\d\.]+).*",
}
HASH_PATTERN = r"^hash=([\w\d]+)$"


@dataclass(frozen=True)
class InferenceModel:
    """One MLPerf Inference v1.1 model as a result folder names it (`bert-99`, `resnet50`)."""
    name: str                     # the result folder's name, as the official layout has it
    mlperf_class: str             # the checker's model class (resnet50 -> resnet, ssd-mobilenet -> ssd-small)
    benchmark: str                # mlpace's inference benchmark (its binding and `mlpace infer` name)
    loadgen_model: str            # the model's name in mlperf.conf
    fraction: float               # share of the FP32 reference quality to reach: 0.99 or 0.999
    metric: str                   # the checker's accuracy type (a key of ACCURACY_PATTERNS)
    reference_quality: float      # the FP32 reference model's quality, in the metric's unit
    performance_sample_count: int
    min_queries: dict             # scenario -> the smallest min_query_count allowed
    latency_ns: dict              # scenario -> the p99 latency bound LoadGen must meet

    @property
    def target(self) -> float:
        """The absolute accuracy a closed result must reach (the checker's `accuracy-target`)."""
        return self.reference_quality * self.fraction


_SERVER_QUERIES = 270_336
_LATENCY_MS = {"resnet": {"Server": 15, "MultiStream": 50}, "ssd-small": {"MultiStream": 50},
               "ssd-large": {"Server": 100, "MultiStream": 66}, "rnnt": {"Server": 1000},
               "bert": {"Server": 130}, "dlrm": {"Server": 30}}


def _model(name, mlperf_class, benchmark, loadgen_model, fraction, metric, reference, count, scenarios):
    family = mlperf_class.rsplit("-9", 1)[0]
    queries = {"SingleStream": 1024, "Server": _SERVER_QUERIES, "Offline": 1}
    return InferenceModel(name, mlperf_class, benchmark, loadgen_model, fraction, metric, reference,
                          count, {s: queries[s] for s in scenarios},
                          {s: ms * 1_000_000 for s, ms in _LATENCY_MS.get(family, {}).items()})


_SS_SV_OFF = ("SingleStream", "Server", "Offline")
MODELS: dict[str, InferenceModel] = {m.name: m for m in [
    _model("resnet50", "resnet", "resnet50", "resnet50", 0.99, "acc", 76.46, 1024, _SS_SV_OFF),
    _model("ssd-mobilenet", "ssd-small", "ssd-mobilenet", "ssd-mobilenet", 0.99, "mAP", 22.0, 256,
           ("SingleStream", "Offline")),
    _model("ssd-resnet34", "ssd-large", "ssd-resnet34", "ssd-resnet34", 0.99, "mAP", 20.0, 64, _SS_SV_OFF),
    _model("bert-99", "bert-99", "bert", "bert", 0.99, "F1", 90.874, 10833, _SS_SV_OFF),
    _model("bert-99.9", "bert-99.9", "bert", "bert", 0.999, "F1", 90.874, 10833, _SS_SV_OFF),
    _model("dlrm-99", "dlrm-99", "dlrm", "dlrm", 0.99, "AUC", 80.25, 204800, ("Server", "Offline")),
    _model("dlrm-99.9", "dlrm-99.9", "dlrm", "dlrm", 0.999, "AUC", 80.25, 204800, ("Server", "Offline")),
    _model("3d-unet-99", "3d-unet-99", "3d-unet", "3d-unet", 0.99, "DICE", 0.853, 16,
           ("SingleStream", "Offline")),
    _model("3d-unet-99.9", "3d-unet-99.9", "3d-unet", "3d-unet", 0.999, "DICE", 0.853, 16,
           ("SingleStream", "Offline")),
    _model("rnnt", "rnnt", "rnnt", "rnnt", 0.99, "WER", 100 - 7.452, 2513, _SS_SV_OFF),
]}
# Other folder names the checker maps to a model class (its `model_mapping`), and the open-
# division names it guesses a class for (`get_mlperf_model`): first matching fragment wins.
CLASS_ALIASES = {"mobilenet": "resnet"}
OPEN_NAME_GUESSES = (("ssdlite", "ssd-small"), ("ssd-inception", "ssd-small"), ("yolo", "ssd-small"),
                     ("ssd-mobilenet", "ssd-small"), ("ssd-resnet50", "ssd-small"),
                     ("mobilenet", "resnet"), ("efficientnet", "resnet"), ("rcnn", "ssd-small"))

# Scenarios each model class must (required) or may (optional) have, by system type.
_EDGE = {"resnet": ["SingleStream", "Offline"], "ssd-small": ["SingleStream", "Offline"],
         "ssd-large": ["SingleStream", "Offline"], "rnnt": ["SingleStream", "Offline"],
         "bert-99": ["SingleStream", "Offline"], "3d-unet-99": ["SingleStream", "Offline"],
         "3d-unet-99.9": ["SingleStream", "Offline"]}
_DATACENTER = {c: ["Offline"] for c in ("resnet", "ssd-large", "rnnt", "bert-99", "bert-99.9",
                                         "dlrm-99", "dlrm-99.9", "3d-unet-99", "3d-unet-99.9")}
_DATACENTER_OPTIONAL = {c: ["Server"] for c in ("resnet", "ssd-large", "rnnt", "bert-99", "bert-99.9",
                                                 "dlrm-99", "dlrm-99.9")}
REQUIRED_SCENARIOS = {
    "datacenter": _DATACENTER, "edge": _EDGE,
    "datacenter,edge": {**_EDGE, "bert-99.9": ["Offline"], "dlrm-99": ["Offline"], "dlrm-99.9": ["Offline"]},
}
OPTIONAL_SCENARIOS = {"datacenter": _DATACENTER_OPTIONAL, "edge": {},
                      "datacenter,edge": _DATACENTER_OPTIONAL}
REQUIRED_SCENARIOS["edge,datacenter"] = REQUIRED_SCENARIOS["datacenter,edge"]
OPTIONAL_SCENARIOS["edge,datacenter"] = OPTIONAL_SCENARIOS["datacenter,edge"]

# --- compliance audits ------------------------------------------------------------------------
# Source: mlcommons/inference r1.1 compliance/nvidia/TEST0x (audit.config, run_verification.py,
# verify_*.py) and the checker's check_compliance_dir. Where a value is mlpace's choice, not
# MLPerf's, the comment says so.

# Audits a closed result needs, and the models and scenarios exempt from TEST04 (no caching
# advantage possible there: variable-size samples; MultiStream queries repeat anyway).
COMPLIANCE_TESTS = ("TEST01", "TEST04-A", "TEST04-B", "TEST05")
TEST04_EXEMPT_CLASSES = ("rnnt", "bert-99", "bert-99.9", "dlrm-99", "dlrm-99.9")
TEST04_EXEMPT_SCENARIOS = ("MultiStream",)

AUDIT_MODE = 2        # audit.config `mode`: 0 submission, 1 accuracy, 2 performance, 3 find peak
TEST01_LOG_SEED = 720381539243781796              # accuracy_log_rng_seed of every TEST01
# accuracy_log_sampling_target of TEST01: the responses it asks LoadGen to log, by benchmark.
# ssd-mobilenet (1024) and dlrm (4096) are mlcommons' values. The others are mlpace's choice:
# no authoritative copy was at hand, so mlpace logs about one performance sample set (the
# rule the TEST01 README gives: chosen from the performance sample count and a response's size).
TEST01_SAMPLING_TARGET = {"resnet50": 1024, "ssd-mobilenet": 1024, "ssd-resnet34": 64,
                          "bert": 4096, "dlrm": 4096, "rnnt": 2513, "3d-unet": 16}
TEST01_DEFAULT_SAMPLING_TARGET = 1024             # mlpace's choice, for a model not above (tests' toys)
TEST04B_SAME_INDEX = 3                            # the one sample TEST04-B issues P times
TEST05_SEEDS = {"qsl_rng_seed": 313588358309856706,
                "sample_index_rng_seed": 471397156132239067,
                "schedule_rng_seed": 413914573387865862}

# Pass thresholds of the verify scripts: the audit's metric against the result's.
TEST01_PERFORMANCE_TOLERANCE = 0.10   # either way
TEST04_TOLERANCE = 0.10               # TEST04-B may be this much faster than TEST04-A (noise)
TEST05_TOLERANCE = 0.05               # not this much worse than the result
# Latencies at or below these (ns) are noisy: the tolerance is SHORT_LATENCY_TOLERANCE instead.
# MultiStream's bound is the later rounds' scripts' (v1.1 had no latency metric there): the
# MultiStream mlpace runs is that later scenario.
SHORT_LATENCY_NS = {"SingleStream": 200_000, "MultiStream": 1_600_000}
SHORT_LATENCY_TOLERANCE = 0.20
# TEST01's fall-back when responses differ (non-determinism is allowed): the accuracy of the
# logged samples must be within this relative delta of the accuracy run's on the same
# samples, by accuracy fraction (the TEST01 README, part III).
TEST01_ACCURACY_DELTA = {0.99: 0.01, 0.999: 0.001}
# Scenarios whose metric is a latency (lower is better); the others' is a rate.
LATENCY_SCENARIOS = ("SingleStream", "MultiStream")

# mlpace's inference benchmarks (the names `mlpace infer` takes), in the round's order, with
# the accuracy fractions each has, and the scenarios mlpace runs for it: the v1.1 ones, plus
# MultiStream where v1.0 had it (LoadGen 6 runs only the v2.0 definition of MultiStream; such
# results are open-division only).
BENCHMARKS = ("resnet50", "ssd-mobilenet", "ssd-resnet34", "bert", "dlrm", "3d-unet", "rnnt")
# The benchmark folder (`mlpace.benchmarks.<folder>`) whose model and data each one serves:
# its `serve.py` is the binding. Names are MLPerf's; folders are mlpace's training benchmarks.
FOLDERS = {"resnet50": "resnet", "ssd-mobilenet": "ssd", "ssd-resnet34": "ssd", "bert": "bert",
           "dlrm": "dlrm", "3d-unet": "unet3d", "rnnt": "rnnt"}
_V1_0_MULTISTREAM = ("resnet50", "ssd-mobilenet", "ssd-resnet34")


def models_of(benchmark: str) -> list[InferenceModel]:
    """The v1.1 models an mlpace inference benchmark can produce (bert -> bert-99, bert-99.9)."""
    return [m for m in MODELS.values() if m.benchmark == benchmark]


def fractions(benchmark: str) -> tuple[float, ...]:
    return tuple(m.fraction for m in models_of(benchmark))


def model_for(benchmark: str, fraction: float) -> InferenceModel:
    """The model (and so the result folder name) of a benchmark at an accuracy fraction."""
    for model in models_of(benchmark):
        if abs(model.fraction - fraction) < 1e-9:
            return model
    raise KeyError(f"{benchmark} at {fraction}")


def scenarios_of(benchmark: str) -> list[str]:
    """Scenarios `mlpace infer` runs for a benchmark, in LoadGen's order."""
    have = {s for m in models_of(benchmark) for s in m.min_queries}
    if benchmark in _V1_0_MULTISTREAM:
        have.add("MultiStream")
    return [s for s in SCENARIOS if s in have]


def mlperf_class(folder: str) -> str:
    """The checker's model class of a result folder name (`get_mlperf_model`), else the name."""
    if folder in MODELS:
        return MODELS[folder].mlperf_class
    if folder in {m.mlperf_class for m in MODELS.values()}:
        return folder
    if folder in CLASS_ALIASES:
        return CLASS_ALIASES[folder]
    guessed = next((cls for fragment, cls in OPEN_NAME_GUESSES if fragment in folder), folder)
    return CLASS_ALIASES.get(guessed, guessed)


def model_by_class(mlperf_class_name: str) -> InferenceModel | None:
    """A model of this class (its targets and minimums are the class's)."""
    return next((m for m in MODELS.values() if m.mlperf_class == mlperf_class_name), None)


def compliance_tests(mlperf_class_name: str, scenario: str) -> list[str]:
    """The audits a closed result of this class and scenario must carry."""
    if mlperf_class_name in TEST04_EXEMPT_CLASSES or scenario in TEST04_EXEMPT_SCENARIOS:
        return ["TEST01", "TEST05"]
    return list(COMPLIANCE_TESTS)


def compliance_tests_of(loadgen_model: str, scenario: str) -> list[str]:
    """The audits for a model by its mlperf.conf name (`bert`: the bert-99 class's, the same
    for both of its classes); an unknown name (a test's toy model) is its own class."""
    known = [m for m in MODELS.values() if m.loadgen_model == loadgen_model]
    return compliance_tests(known[0].mlperf_class if known else loadgen_model, scenario)


def test01_sampling_target(loadgen_model: str) -> int:
    return TEST01_SAMPLING_TARGET.get(loadgen_model, TEST01_DEFAULT_SAMPLING_TARGET)


def availability(spelling: str) -> str | None:
    """The v1.1 `status` for an availability spelling (onprem -> available), or None."""
    return AVAILABILITY_SPELLINGS.get(spelling.strip().lower())


# --- mlperf.conf, generated from the tables above ---------------------------------------------
# LoadGen settings that are not rules of the checker but of the round's mlperf.conf. Two
# deliberate departures, because LoadGen >= 2.0 no longer implements the v1.1 definitions:
# MultiStream is the v2.0+ scenario (8 samples per query, p99 latency), and 3d-unet is the
# KiTS19 benchmark of later rounds (whole data set as performance samples, equal-issue
# permutation), not the v1.1 BraTS one.
_CONF_EXTRA = [
    "3d-unet.*.performance_sample_count_override = 0",
    "3d-unet.*.sample_concatenate_permutation = 1",
    "*.SingleStream.target_latency_percentile = 90",
    "*.MultiStream.target_latency_percentile = 99",
    "*.MultiStream.samples_per_query = 8",
    "*.MultiStream.min_query_count = 662",
    "*.Server.target_latency_percentile = 99",
    "*.Server.target_duration = 0",
    "*.Offline.target_latency_percentile = 90",
    "3d-unet.Offline.min_query_count = 43",
    # Defaults that user.conf overrides.
    "*.SingleStream.target_latency = 10",
    "*.MultiStream.target_latency = 80",
    "*.Server.target_qps = 1.0",
    "*.Offline.target_qps = 1.0",
]


def mlperf_conf_text() -> str:
    """The v1.1 mlperf.conf (`model.scenario.key = value`; times in ms)."""
    lines = ["# MLPerf Inference v1.1 rules, generated by mlpace from mlpace.rules.inference."]
    counts = {}
    for model in MODELS.values():
        counts.setdefault(model.loadgen_model, model.performance_sample_count)
    lines += [f"{name}.*.performance_sample_count_override = {count}"
              for name, count in counts.items() if name != "3d-unet"]
    lines += [f"*.*.{key} = {value}" for key, value in SEEDS.items()]
    lines += [f"*.{s}.min_duration = {MIN_DURATION_MS}" for s in SCENARIOS]
    lines += ["*.SingleStream.min_query_count = 1024", f"*.Server.min_query_count = {_SERVER_QUERIES}",
              # In Offline there is one query; LoadGen reads min_query_count as the sample count.
              f"*.Offline.min_query_count = {OFFLINE_MIN_SAMPLES}", "*.Server.target_latency = 10"]
    servers = {}
    for model in MODELS.values():
        if "Server" in model.latency_ns:
            servers.setdefault(model.loadgen_model, model.latency_ns["Server"] // 1_000_000)
    lines += [f"{name}.Server.target_latency = {ms}" for name, ms in servers.items()]
    lines += _CONF_EXTRA
    return "\n".join(lines) + "\n"


# dlrm: one LoadGen sample is one user's query, a run of consecutive click-log lines (user-
# item pairs). Its length is drawn from the quantile function in mlcommons' reference
# (tools/dist_quantile.txt, read with np.random.seed(123): --numpy-rand-seed's default):
# 100 pairs with probability 0.10, 200 with 0.60, 300 with 0.10, 400-700 with 0.05 each,
# 270 on average. These values reproduce the reference's published verification trace
# (tools/dist_trace_verification.txt) draw for draw.
DLRM_PAIRS_QUANTILE = (100, 100) + (200,) * 12 + (300, 300, 400, 500, 600, 700)
DLRM_PAIRS_SEED = 123
