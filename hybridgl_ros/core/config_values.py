"""A config dataclass's values by grouped name (``proposals.points_per_side``): the flat view
the ROS parameters, ``--set FIELD=VALUE`` and the YAML files use, converted to each field's
type (``core/config.py`` holds the fields).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import fields, replace
from pathlib import Path
from typing import Any, Collection, Mapping

from hybridgl_ros.core.errors import ConfigError


def flatten(config) -> dict[str, Any]:
    """Flat grouped-name view of a config dataclass (tuples kept as tuples)."""
    flat: dict[str, Any] = {}
    for f in fields(config):
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(value):
            for sub in fields(value):
                flat[f'{f.name}.{sub.name}'] = getattr(value, sub.name)
        else:
            flat[f.name] = value
    return flat


def unflatten(values: Mapping[str, Any], base):
    """Applies grouped-name values on top of ``base``, converting to each field's type."""
    known = flatten(base)
    groups: dict[str, dict[str, Any]] = {}
    top: dict[str, Any] = {}
    for name, value in values.items():
        if name not in known:
            raise ConfigError(f'unknown config field {name!r}')
        value = _coerce(name, value, known[name])
        if '.' in name:
            group, key = name.split('.', 1)
            groups.setdefault(group, {})[key] = value
        else:
            top[name] = value
    for group, changes in groups.items():
        top[group] = replace(getattr(base, group), **changes)
    return replace(base, **top)


def _coerce(name: str, value: Any, default: Any) -> Any:
    """Converts a YAML/ROS value to the type of the field's default."""
    try:
        if isinstance(default, bool):
            return _boolean(value)
        if isinstance(value, bool) and isinstance(default, (int, float, tuple)):
            raise ValueError('a number, not true/false')
        if isinstance(default, int):
            if isinstance(value, float) and not value.is_integer():
                raise ValueError('not an integer')
            return int(value)
        if isinstance(default, float):
            return float(value)
        if isinstance(default, tuple):
            items = tuple(float(v) for v in value)
            if len(items) != len(default):
                raise ValueError(f'needs {len(default)} values')
            return items
        return str(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f'{name}: cannot use {value!r} ({exc})') from exc


_TRUE_WORDS = ('1', 'true', 'yes', 'on')
_FALSE_WORDS = ('0', 'false', 'no', 'off')


def _boolean(value: Any) -> bool:
    """true/false, yes/no, on/off, 1/0 (any case), or 1/0; anything else (a typo such as
    'ture', 2, 0.5) is an error rather than a silent false."""
    if isinstance(value, bool):
        return value
    word = value.strip().lower() if isinstance(value, str) else value
    if word in _TRUE_WORDS or (not isinstance(word, str) and word == 1):
        return True
    if word in _FALSE_WORDS or (not isinstance(word, str) and word == 0):
        return False
    raise ValueError(f'true or false, not {value!r}')


def load_yaml_values(path: str | Path, known: Collection[str]) -> dict[str, Any]:
    """Grouped-name values from a YAML file with sections (``proposals: {points_per_side: 8}``).

    A ROS parameter file (``/**: {ros__parameters: {...}}``, or keyed by a node name) is read
    too: its first section with ``ros__parameters``; the node-only parameters in it (those not
    in ``known``, the config's names) are ignored here.
    """
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f'config file not found: {path}')
    with path.open() as stream:
        data = yaml.safe_load(stream) or {}
    if not isinstance(data, dict):
        raise ConfigError(f'{path}: expected a mapping at the top level')
    ros_file = False
    for node_section in data.values():
        if isinstance(node_section, dict) and 'ros__parameters' in node_section:
            data, ros_file = node_section['ros__parameters'], True
            break
    flat = _flatten_mapping(data)
    if ros_file:
        flat = {k: v for k, v in flat.items() if k in known}
    return flat


def _flatten_mapping(data: Mapping[str, Any], prefix: str = '') -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        name = f'{prefix}{key}'
        if isinstance(value, dict):
            flat.update(_flatten_mapping(value, name + '.'))
        else:
            flat[name] = value
    return flat


def check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    """ConfigError unless ``value`` is one of ``choices`` (``name``: the field, for messages)."""
    if value not in choices:
        raise ConfigError(f'{name} must be one of {", ".join(choices)}, not {value!r}')


def check_range(name: str, value: float, low: float | None = None, high: float | None = None,
                *, low_open: bool = False) -> None:
    """ConfigError unless ``low <= value <= high`` (``low < value`` with ``low_open``; None:
    no bound); NaN is never in range."""
    inside = value == value and (
        low is None or (value > low if low_open else value >= low)) and (
        high is None or value <= high)
    if not inside:
        if low is not None and high is not None:
            bounds = f'in {"(" if low_open else "["}{low}, {high}]'
        elif low is not None:
            bounds = f'{">" if low_open else ">="} {low}'
        else:
            bounds = f'<= {high}'
        raise ConfigError(f'{name} must be {bounds}, not {value}')


def check_finite(flat: Mapping[str, Any]) -> None:
    """ConfigError if a number (or a number in a tuple) of a flat config view is NaN or
    infinite: no field means anything by them, and a NaN weight or bias made every score NaN
    while the answer still said found."""
    for name, value in flat.items():
        if isinstance(value, (bool, str)):
            continue
        items = value if isinstance(value, tuple) else (value,)
        if not all(math.isfinite(item) for item in items):
            raise ConfigError(f'{name} must be finite, not {value}')
