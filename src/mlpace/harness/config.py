"""Flat, typed benchmark configs.

A benchmark's config is one frozen dataclass of plain fields (no nesting); a scale is an
instance of it. Users change fields with `--set key=value` or a JSON/YAML file; values are
converted to the field's declared type, and an unknown key is an error, never ignored.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from pathlib import Path
from typing import Any

from mlpace.errors import MlpaceError


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
    try:
        text = path.read_text()
    except OSError as err:
        raise MlpaceError(f"cannot read config file {path}: {err.strerror or err}") from None
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


def apply_overrides(config: Any, overrides: dict[str, Any]) -> Any:
    """A copy of the dataclass `config` with `overrides` converted to the declared types."""
    hints = typing.get_type_hints(type(config))
    names = [f.name for f in dataclasses.fields(config)]
    unknown = sorted(set(overrides) - set(names))
    if unknown:
        raise MlpaceError(f"unknown config key(s) {', '.join(unknown)} for {type(config).__name__}; "
                          f"known: {', '.join(names)}")
    converted = {k: _convert(k, v, hints[k]) for k, v in overrides.items()}
    return dataclasses.replace(config, **converted)


def config_dict(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config)
