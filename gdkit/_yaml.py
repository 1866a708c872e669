"""YAML for configs: numbers in scientific notation, errors with line numbers, `--set` overrides."""

from __future__ import annotations

import copy
import re
from typing import Any

import yaml


class ConfigError(ValueError):
    """A config that cannot be loaded or validated; the message is one line naming the key."""


class _Loader(yaml.SafeLoader):
    """YAML 1.1 reads `1e-3` as a string; numbers in scientific notation are floats here."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def parse_yaml(text: str, source: str = "<string>") -> Any:
    try:
        return yaml.load(text, Loader=_Loader)  # a SafeLoader subclass: no arbitrary objects
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"{source}:{where}: malformed YAML: {problem}") from None


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    """`["optimizers.0.name=rmsprop", "steps=500"]` applied to a copy of the raw config."""
    raw = copy.deepcopy(raw)
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE")
        value = parse_yaml(text, f"--set {key}")
        node: Any = raw
        parts = key.split(".")
        for i, part in enumerate(parts):
            where = ".".join(parts[: i + 1])
            last = i == len(parts) - 1
            if isinstance(node, list):
                if not part.lstrip("-").isdigit() or not -len(node) <= int(part) < len(node):
                    raise ConfigError(
                        f"--set {key}: {where}: no item {part} (the list has {len(node)})"
                    )
                part = int(part)
            elif not isinstance(node, dict):
                raise ConfigError(f"--set {key}: {'.'.join(parts[:i])} is not a mapping")
            if last:
                node[part] = value
            else:
                if isinstance(node, dict) and part not in node:
                    node[part] = {}
                node = node[part]
    return raw
