"""What objectives and optimizers gdkit has, read from their declarations without importing
them (so `gdkit list` and config checks do not start JAX).

Every built-in is declared once, by its `@register("name", "description", ...)` decorator
and its signature. This module reads those declarations from the source files with `ast`
(nothing is executed); the registries (`gdkit.objectives`, `gdkit.optimizers`) hold the
same entries once their modules are imported, and a test checks that both agree.
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import functools
import inspect
import math
import operator
import pathlib
from typing import Any

_ROOT = pathlib.Path(__file__).resolve().parent


@dataclasses.dataclass(frozen=True)
class Declared:
    """A registered objective or optimizer as its source declares it.

    `params`: parameter name -> default (`inspect.Parameter.empty` when required; a default
    that is not a literal is kept as its source text, e.g. `math.inf`).
    """

    name: str
    description: str
    kind: str
    params: dict[str, Any]
    module: str


class Source(str):
    """A default value that is not a literal, shown as its source text."""

    def __repr__(self) -> str:
        return str(self)


def objectives() -> list[Declared]:
    """The built-in objectives, sorted by name (as `gdkit.objectives.entries()`)."""
    return sorted(_declared("objectives"), key=lambda d: d.name)


def optimizers() -> list[Declared]:
    """The optimizers in `gdkit.optimizers.names()` order: first order, line search,
    second order; each sorted by name."""
    kinds = _literal("optimizers/_registry.py", "KINDS")
    return sorted(_declared("optimizers"), key=lambda d: (kinds.index(d.kind), d.name))


def optimizer_options() -> dict[str, Any]:
    """The options every optimizer takes on top of its own hyperparameters, with defaults
    (`gdkit.optimizers.OPTIONS`)."""
    return _literal("optimizers/_options.py", "OPTIONS")


def optimizer_keys(declared: Declared) -> list[str]:
    """Everything an optimizer entry of a config may set: hyperparameters, then options."""
    return [*declared.params, *(k for k in optimizer_options() if k not in declared.params)]


def find(what: str, name: str) -> Declared:
    """The declaration of objective or optimizer `name` (`what`: "objective" or "optimizer");
    ValueError with the message the registry gives for an unknown name."""
    entries = objectives() if what == "objective" else optimizers()
    for d in entries:
        if d.name == name:
            return d
    known = [d.name for d in entries]
    close = difflib.get_close_matches(name, known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    tail = ", or an import path 'module:name' of a marked objective" * (what == "objective")
    from gdkit._checks import short

    raise ValueError(f"unknown {what} {short(name)}{hint}; known: {', '.join(known)}{tail}")


@functools.cache
def _declared(package: str) -> tuple[Declared, ...]:
    out = []
    for path in sorted((_ROOT / package).glob("*.py")):
        lines = path.read_text(encoding="utf-8").splitlines()
        module = f"gdkit.{package}.{path.stem}"
        for i, line in enumerate(lines):
            if line.startswith("@register("):
                node = _statement(lines, i, "\n    ...")
                deco = next(d for d in node.decorator_list if _is_register(d))
                out.append(_declaration(deco, node, module))
    return tuple(out)


def _statement(lines: list[str], start: int, body: str = "") -> ast.stmt:
    """The top-level statement that begins at `lines[start]`, parsed alone: the shortest run
    of lines that parses (with `body` appended: a function's signature without its body).
    Parsing a few lines instead of whole modules keeps `gdkit list` quick."""
    for end in range(start + 1, len(lines) + 1):
        try:
            return ast.parse("\n".join(lines[start:end]) + body).body[0]
        except SyntaxError:
            continue
    raise SyntaxError(f"no statement at line {start + 1}")  # pragma: no cover


def _is_register(deco: ast.expr) -> bool:
    return (
        isinstance(deco, ast.Call)
        and isinstance(deco.func, ast.Name)
        and deco.func.id == "register"
        and bool(deco.args)
        and isinstance(deco.args[0], ast.Constant)
    )


def _declaration(deco: ast.Call, fn: ast.FunctionDef, module: str) -> Declared:
    args = [ast.literal_eval(a) for a in deco.args]
    kw = {k.arg: ast.literal_eval(k.value) for k in deco.keywords}
    name, description = args[0], args[1] if len(args) > 1 else kw.get("description", "")
    kind = args[2] if len(args) > 2 else kw.get("kind", "first_order")
    return Declared(name, description, kind, _params(fn.args), module)


def _params(a: ast.arguments) -> dict[str, Any]:
    positional = [*a.posonlyargs, *a.args]
    defaults = [None] * (len(positional) - len(a.defaults)) + list(a.defaults)
    pairs = [
        *zip(positional, defaults, strict=True),
        *zip(a.kwonlyargs, a.kw_defaults, strict=True),
    ]
    return {arg.arg: _default(node) for arg, node in pairs}


def _default(node: ast.expr | None) -> Any:
    if node is None:
        return inspect.Parameter.empty
    try:
        return _value(node)
    except ValueError:
        return Source(ast.unparse(node))


_OPERATORS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Pow: operator.pow,
}


def _value(node: ast.expr) -> Any:
    """A literal, or arithmetic on numbers and `math` constants (`2.0 * math.pi`)."""
    if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
        return _OPERATORS[type(node.op)](_value(node.left), _value(node.right))
    if (
        isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "math"
        and isinstance(getattr(math, node.attr, None), float)
    ):
        return getattr(math, node.attr)
    return ast.literal_eval(node)


@functools.cache
def _literal(relative: str, name: str) -> Any:
    """The value of the module-level assignment `name = <literal>` in a gdkit source file."""
    lines = (_ROOT / relative).read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines):
        if line.startswith((f"{name} =", f"{name}:")):
            return _value(_statement(lines, i).value)
    raise LookupError(f"{relative} assigns no {name}")  # pragma: no cover - a source edit
