"""Flat, typed benchmark configs.

A benchmark's config is one frozen dataclass of plain fields (no nesting); a scale is an
instance of it. Users change fields with `--set key=value` or a JSON/YAML file; values are
converted to the field's declared type, and an unknown key is an error, never ignored.
"""

from __future__ import annotations

import dataclasses
import json
import math
import typing
from pathlib import Path
from typing import Any

from mlpace.errors import MlpaceError
from mlpace.io import read_option_file


def parse_set_options(items: list[str] | None) -> dict[str, str]:
    """`["lr=0.1", "batch_size=64"]` -> {"lr": "0.1", "batch_size": "64"}."""
    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise MlpaceError(f"--set expects key=value, got {item!r}")
        out[key.strip()] = value.strip()
    return out


def load_config_file(path: str | Path | None) -> dict[str, Any]:
    """Overrides from a JSON or YAML file holding one flat mapping."""
    if not path:
        return {}
    path = Path(path)
    text = read_option_file(path, "cannot read config file")
    try:
        if path.suffix in (".yaml", ".yml"):
            import yaml
            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except Exception as err:  # noqa: BLE001 - any parse error is the user's file
        raise MlpaceError(f"config file {path} is not valid {path.suffix.lstrip('.') or 'JSON'}: "
                          f"{str(err).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise MlpaceError(f"config file {path} must hold a mapping of config keys to values")
    return data


def _convert(name: str, value: Any, typ: Any) -> Any:
    if typing.get_origin(typ) is typing.Union or isinstance(typ, type(int | None)):
        args = [a for a in typing.get_args(typ) if a is not type(None)]
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            return None
        typ = args[0]
    if typing.get_origin(typ) is tuple:
        item_type = typing.get_args(typ)[0]
        items = value.split(",") if isinstance(value, str) else list(value)
        return tuple(_convert(name, v.strip() if isinstance(v, str) else v, item_type) for v in items)
    if typ is bool:
        if isinstance(value, bool):
            return value
        if str(value).lower() in ("1", "true", "yes", "on"):
            return True
        if str(value).lower() in ("0", "false", "no", "off"):
            return False
        raise MlpaceError(f"config key {name!r} expects true/false, got {value!r}")
    try:
        if typ is int and isinstance(value, float) and not value.is_integer():
            raise ValueError
        return typ(value)
    except (TypeError, ValueError):
        raise MlpaceError(f"config key {name!r} expects {typ.__name__}, got {value!r}") from None


# Values are checked by what they mean, so a typo fails in one line before a model is built
# (batch_size=0 divides by zero, base_lr=nan trains nothing, batch_size=99999999 allocates
# until the machine swaps). Names are matched on their last word.
MAX_BATCH = 65536               # the largest global batch of any published MLPerf result
MAX_COUNT = 10**9               # steps, images, epochs, layers ...
MAX_THREADS = 4096              # torch threads: threads=100000 crashes torch (segfault)
MAX_PROCESSES = 256             # data-loader workers: each one is a new process
FRACTIONS = ("dropout", "momentum", "beta1", "beta2", "label_smoothing", "overlap",
             "oversampling", "ema")                       # in [0, 1)
NEGATIVE_SENTINELS = {"eval_interval_samples": -1}         # -1: MLPerf's own schedule
SIGNED = ("bias",)                                         # initial values: any finite number
UNBOUNDED = ("clip_norm",)                                 # inf: no clipping


def _is_rate(name: str) -> bool:
    """Learning rates that must be above zero (a final or minimum rate may be zero)."""
    return (name in ("lr", "base_lr") or name.endswith("_lr") or name.endswith("learning_rate")) \
        and not name.startswith(("min_", "end_", "final_"))


def check_count(name: str, value: int, low: int, high: int) -> int:
    """An integer option within [low, high], or MlpaceError in one line."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise MlpaceError(f"{name} must be a whole number from {low} to {high}, not {value!r}")
    return value


def check_meaning(name: str, value: Any) -> Any:
    """`value` of config key `name` if it means something a run can use; else MlpaceError."""
    if isinstance(value, tuple):
        for item in value:
            check_meaning(name, item)
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return value
    if isinstance(value, float) and not math.isfinite(value) and \
            not (value == math.inf and name.endswith(UNBOUNDED)):
        raise MlpaceError(f"config key {name!r} must be a finite number, not {value!r}")
    if value == NEGATIVE_SENTINELS.get(name) or name.endswith(SIGNED):
        return value
    if name.endswith("batch_size") or name.endswith("_batch"):
        if not 1 <= value <= MAX_BATCH:
            raise MlpaceError(f"config key {name!r} is a batch size: from 1 to {MAX_BATCH}, not {value!r}")
    elif _is_rate(name):
        if value <= 0:
            raise MlpaceError(f"config key {name!r} is a learning rate: it must be above 0, not {value!r}")
    elif name.endswith(FRACTIONS):
        if not 0 <= value < 1:
            raise MlpaceError(f"config key {name!r} is a fraction: from 0 up to (not including) 1, "
                              f"not {value!r}")
    elif value < 0:
        raise MlpaceError(f"config key {name!r} must not be negative, not {value!r}")
    if name.endswith("threads") and value > MAX_THREADS:
        raise MlpaceError(f"config key {name!r} is a thread count: at most {MAX_THREADS}, not {value!r}")
    if name.endswith("workers") and value > MAX_PROCESSES:
        raise MlpaceError(f"config key {name!r} is a count of processes: at most {MAX_PROCESSES}, "
                          f"not {value!r}")
    if isinstance(value, int) and value > MAX_COUNT:
        raise MlpaceError(f"config key {name!r} = {value} is over the limit of {MAX_COUNT}")
    return value


def apply_overrides(config: Any, overrides: dict[str, Any]) -> Any:
    """A copy of the dataclass `config` with `overrides` converted to the declared types."""
    hints = typing.get_type_hints(type(config))
    names = [f.name for f in dataclasses.fields(config)]
    unknown = sorted(set(overrides) - set(names))
    if unknown:
        raise MlpaceError(f"unknown config key(s) {', '.join(unknown)} for {type(config).__name__}; "
                          f"known: {', '.join(names)}")
    converted = {k: check_meaning(k, _convert(k, v, hints[k])) for k, v in overrides.items()}
    return dataclasses.replace(config, **converted)


def config_dict(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config)
