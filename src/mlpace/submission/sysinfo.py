"""Capture the official MLPerf system description of the machine mlpace runs on.

The fields are those `mlperf_logging.system_desc_checker` requires (training and inference
share them). Detection is best effort and never imports torch: versions come from package
metadata and GPUs from `nvidia-smi`, so this works on a machine without the ML stack.
A user corrects or completes any field with an overrides file (JSON).
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import socket
import subprocess
from importlib import metadata
from pathlib import Path

import psutil

from mlpace.errors import MlpaceError
from mlpace.io import loads_bounded, read_option_file

REQUIRED_FIELDS = [
    "submitter", "division", "status", "system_name", "number_of_nodes",
    "host_processors_per_node", "host_processor_model_name", "host_processor_core_count",
    "host_processor_vcpu_count", "host_processor_frequency", "host_processor_caches",
    "host_processor_interconnect", "host_memory_capacity", "host_storage_type",
    "host_storage_capacity", "host_networking", "host_networking_topology",
    "host_memory_configuration", "accelerators_per_node", "accelerator_model_name",
    "accelerator_host_interconnect", "accelerator_frequency", "accelerator_on-chip_memories",
    "accelerator_memory_configuration", "accelerator_memory_capacity",
    "accelerator_interconnect", "accelerator_interconnect_topology", "cooling", "hw_notes",
    "framework", "other_software_stack", "operating_system", "sw_notes",
]

# Versions worth recording in other_software_stack, when installed.
SOFTWARE_PACKAGES = ["torch", "numpy", "mlperf-logging", "mlcommons-loadgen", "onnxruntime", "mlpace"]


def _read_proc(key: str) -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(key):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def _cpu_model() -> str:
    return _read_proc("model name") or platform.processor() or platform.machine()


def _sockets() -> int:
    try:
        ids = {line.split(":")[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
               if line.startswith("physical id")}
        return max(len(ids), 1)
    except OSError:
        return 1


def _gpus() -> list[tuple[str, str]]:
    """(name, memory) of each NVIDIA GPU, via nvidia-smi; empty when there is none."""
    if not shutil.which("nvidia-smi"):
        return []
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=20, check=True).stdout
    except (subprocess.SubprocessError, OSError):
        return []
    return [tuple(part.strip() for part in line.split(",", 1)) for line in out.splitlines() if "," in line]


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _os_name() -> str:
    try:
        info = platform.freedesktop_os_release()
        return info.get("PRETTY_NAME", platform.platform())
    except OSError:
        return platform.platform()


def default_system_name() -> str:
    """A stable, file-name-safe system name: host, accelerator kind and framework."""
    gpus = _gpus()
    accel = f"{len(gpus)}x{gpus[0][0].split()[-1]}" if gpus else "cpu"
    name = f"{socket.gethostname()}_{accel}_pytorch"
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name)


def capture_system_description(system_name: str | None = None, submitter: str = "mlpace",
                               division: str = "open", status: str = "onprem") -> dict:
    """The official system-description dict for this machine (all REQUIRED_FIELDS present)."""
    gpus = _gpus()
    freq = psutil.cpu_freq()
    disk = psutil.disk_usage(str(Path.cwd()))
    software = {p: v for p in SOFTWARE_PACKAGES if (v := _version(p))}
    torch_version = software.get("torch")
    desc = {
        "submitter": submitter,
        "division": division,
        "status": status,
        "system_name": system_name or default_system_name(),
        "number_of_nodes": "1",
        "host_processors_per_node": str(_sockets()),
        "host_processor_model_name": _cpu_model(),
        "host_processor_core_count": str(psutil.cpu_count(logical=False) or os.cpu_count() or 1),
        "host_processor_vcpu_count": str(os.cpu_count() or 1),
        "host_processor_frequency": f"{freq.max or freq.current:.0f} MHz" if freq else "",
        "host_processor_caches": _read_proc("cache size"),
        "host_processor_interconnect": "",
        "host_memory_capacity": f"{psutil.virtual_memory().total / 2**30:.0f} GB",
        "host_storage_type": "",
        "host_storage_capacity": f"{disk.total / 2**30:.0f} GB",
        "host_networking": "",
        "host_networking_topology": "",
        "host_memory_configuration": "",
        "accelerators_per_node": str(len(gpus)),
        "accelerator_model_name": gpus[0][0] if gpus else "N/A",
        "accelerator_host_interconnect": "",
        "accelerator_frequency": "",
        "accelerator_on-chip_memories": "",
        "accelerator_memory_configuration": "",
        "accelerator_memory_capacity": gpus[0][1] if gpus else "",
        "accelerator_interconnect": "",
        "accelerator_interconnect_topology": "",
        "cooling": "",
        "hw_notes": "",
        "framework": f"PyTorch {torch_version}" if torch_version else "mlpace (no framework installed)",
        "other_software_stack": {**software, "python": platform.python_version()},
        "operating_system": _os_name(),
        "sw_notes": "captured by mlpace",
    }
    return desc


def load_overrides(path: str | os.PathLike | None) -> dict:
    """Fields a user sets by hand, from a JSON object file; unknown fields are refused."""
    if not path:
        return {}
    data = loads_bounded(read_option_file(path, "cannot read system description overrides"),
                         f"system description overrides {path}")
    if not isinstance(data, dict):
        raise MlpaceError(f"{path} must hold a JSON object of system-description fields")
    from mlpace.rules.inference import SYSTEM_POWER_FIELDS, SYSTEM_REQUIRED_FIELDS
    unknown = sorted(set(data) - set(REQUIRED_FIELDS) - set(SYSTEM_REQUIRED_FIELDS) - set(SYSTEM_POWER_FIELDS))
    if unknown:
        raise MlpaceError(f"{path}: unknown system-description field(s) {', '.join(unknown)}")
    # The official checkers join these fields as text: a list or an object crashes them.
    nested = sorted(k for k, v in data.items() if isinstance(v, (list, dict)) and k != "other_software_stack")
    if nested:
        raise MlpaceError(f"{path}: field(s) {', '.join(nested)} must be text, not a list or an object")
    return data
