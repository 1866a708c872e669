"""YAML for configs: numbers in scientific notation, errors with line numbers, `--set` overrides.

A config is small, so the loader refuses what only a hostile or broken file holds: nesting
deeper than `MAX_DEPTH`, more than `MAX_VALUES` values once aliases (`*name`) are expanded
(a "billion laughs" document of a few hundred bytes expands to hundreds of millions), an
alias inside the value it names, and a key given twice in one mapping.
"""

from __future__ import annotations

import copy
import re
import reprlib
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

MAX_DEPTH = 64  # nested sequences/mappings
MAX_VALUES = 1_000_000  # nodes of the document with every alias expanded


class ConfigError(ValueError):
    """A config that cannot be loaded or validated; the message is one line naming the key."""


class _Refused(Exception):
    """A document the loader will not build; `mark` is where (a yaml Mark) or None."""

    def __init__(self, message: str, mark=None):
        super().__init__(message)
        self.mark = mark


class _Loader(yaml.SafeLoader):
    """YAML 1.1 reads `1e-3` as a string; numbers in scientific notation are floats here.

    Bounded: see the module docstring."""

    _depth = 0

    def compose_node(self, parent, index):
        if self._depth >= MAX_DEPTH:
            raise _Refused(
                f"nested more than {MAX_DEPTH} levels deep", self.peek_event().start_mark
            )
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def get_single_node(self):
        node = super().get_single_node()
        if node is not None:
            _check_expanded(node)
        return node

    def construct_mapping(self, node, deep=False):
        if isinstance(node, MappingNode):
            seen: dict[tuple[str, str], Node] = {}
            for key, _ in node.value:
                if not isinstance(key, ScalarNode) or key.tag == "tag:yaml.org,2002:merge":
                    continue
                first = seen.setdefault((key.tag, key.value), key)
                if first is not key:
                    raise _Refused(
                        f"duplicate key {short(key.value)} (first given on line "
                        f"{first.start_mark.line + 1}); give each key once",
                        key.start_mark,
                    )
        return super().construct_mapping(node, deep=deep)


def _check_expanded(root: Node) -> None:
    """Counts the document's values with every alias expanded (each distinct node once, so a
    few hundred bytes of aliases cost a few hundred steps) and refuses a cycle or a total
    above MAX_VALUES."""
    size: dict[int, int] = {}
    active: set[int] = set()
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            active.discard(key)
            children = _children(node)
            size[key] = 1 + sum(size[id(c)] for c in children)
            if size[key] > MAX_VALUES:
                raise _Refused(
                    f"the document holds more than {MAX_VALUES:,} values once its aliases "
                    "(*name) are expanded; a config is far smaller",
                    node.start_mark,
                )
            continue
        if key in size:
            continue
        if key in active:
            raise _Refused("an alias (*name) inside the value it names", node.start_mark)
        active.add(key)
        stack.append((node, True))
        stack.extend((c, False) for c in _children(node) if id(c) not in size)


def _children(node: Node) -> list[Node]:
    if isinstance(node, SequenceNode):
        return list(node.value)
    if isinstance(node, MappingNode):
        return [n for pair in node.value for n in pair]
    return []


_SHORT = reprlib.Repr()
_SHORT.maxstring = _SHORT.maxother = 60
_SHORT.maxlist = _SHORT.maxtuple = _SHORT.maxdict = _SHORT.maxset = 6
_SHORT.maxlevel = 3


def short(value: Any) -> str:
    """`repr(value)` cut to a few dozen characters, for error messages; it never walks all of
    a big value.

    >>> short(list(range(100)))
    '[0, 1, 2, 3, 4, 5, ...]'
    """
    return _SHORT.repr(value)


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
    """The YAML document `text` (ConfigError naming `source` and the line when it is malformed
    or refused)."""
    try:
        return yaml.load(text, Loader=_Loader)  # a SafeLoader subclass: no arbitrary objects
    except _Refused as e:
        where = f" line {e.mark.line + 1}" if e.mark is not None else ""
        raise ConfigError(f"{source}:{where}: {e}") from None
    except RecursionError:
        raise ConfigError(f"{source}: nested too deeply") from None
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
            raise ConfigError(f"--set {short(item)}: expected KEY=VALUE")
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
