"""Formula strings -> pure JAX objectives, parsed from Python's `ast` against an allow-list.

Nothing is ever passed to `eval` or `exec`: the formula is parsed into a syntax tree, every node
is checked against a short list of what arithmetic needs, and the tree is then interpreted
directly on JAX arrays.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Sequence

import jax.numpy as jnp
import numpy as np

from gdkit._checks import short
from gdkit.objectives._base import Objective, wrap

FUNCTIONS = {
    "sin": jnp.sin,
    "cos": jnp.cos,
    "tan": jnp.tan,
    "arcsin": jnp.arcsin,
    "arccos": jnp.arccos,
    "arctan": jnp.arctan,
    "sinh": jnp.sinh,
    "cosh": jnp.cosh,
    "tanh": jnp.tanh,
    "exp": jnp.exp,
    "log": jnp.log,
    "log1p": jnp.log1p,
    "sqrt": jnp.sqrt,
    "abs": jnp.abs,
    "sign": jnp.sign,
}
CONSTANTS = {"pi": math.pi, "e": math.e}
_BINARY = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Pow: operator.pow,
}
_UNARY = {ast.USub: operator.neg, ast.UAdd: operator.pos}
_MAX_LENGTH = 10_000  # characters
_MAX_DEPTH = 250  # levels of the syntax tree: parentheses, signs, chained operators
_MAX_NODES = 5_000  # numbers, names, operators and calls
_NUMPY = {name: getattr(np, name) for name in FUNCTIONS}  # to evaluate constant parts


class ExpressionError(ValueError):
    """A formula string that is malformed or uses something outside the allow-list."""


def from_expression(
    expr: str, variables: Sequence[str] | None = None, *, name: str | None = None, **wrap_kwargs
) -> Objective:
    """Turns a formula such as ``"x**2 + 3*x*y + y**2"`` into an `Objective`.

    Allowed: numbers, variable names, the constants ``pi`` and ``e``, ``+ - * / **``, unary minus,
    parentheses, and calls (positional arguments only) to: sin, cos, tan, arcsin, arccos, arctan,
    sinh, cosh, tanh, exp, log, log1p, sqrt, abs, sign. Anything else (attribute access,
    subscripts, other calls, comparisons, comprehensions, lambdas, dunder names, ...) is refused
    with an `ExpressionError` that names it. A formula may have at most 10,000 characters,
    250 levels of nesting and 5,000 terms, and a part without variables must be a finite
    number (``1/0``, ``9**9**9`` or ``log(0)`` is refused; ``x/0`` is inf where x is not 0).

    Args:
      expr: the formula.
      variables: the order of the coordinates, x[0], x[1], ... Default: the free names of the
        formula sorted alphabetically, so ``"y + x"`` has variables ``("x", "y")``.
      name: the objective's name (default: the formula itself).
      **wrap_kwargs: `x0`, `bounds`, `minima` as for `gdkit.objectives.wrap`.

    Example:
      >>> import jax.numpy as jnp
      >>> from gdkit.objectives import from_expression
      >>> obj = from_expression("x**2 - 2*x + 3")
      >>> float(obj(jnp.array([1.0])))
      2.0
    """
    tree = _parse(expr)
    free = _check(tree.body)
    _fold(tree.body, expr)
    if variables is None:
        variables = sorted(free)
    variables = tuple(variables)
    for v in variables:
        if not isinstance(v, str) or not v.isidentifier() or v in FUNCTIONS or v in CONSTANTS:
            raise ExpressionError(f"expression: invalid variable name {short(v)} in variables")
    if len(set(variables)) != len(variables):
        raise ExpressionError(f"expression: variables repeat a name: {short(variables)}")
    missing = sorted(free - set(variables))
    if missing:
        raise ExpressionError(
            f"expression uses {missing[0]!r}, which is not among the variables "
            f"{short(list(variables))}"
        )
    if not variables:
        raise ExpressionError(f"expression {short(expr)} has no variables")
    index = {v: i for i, v in enumerate(variables)}
    body = tree.body

    def fn(x):
        return jnp.asarray(_interpret(body, x, index), dtype=x.dtype)

    fn.__name__ = "expression"
    return wrap(
        fn,
        dim=len(variables),
        name=name or expr.strip(),
        description=f"f({', '.join(variables)}) = {expr.strip()}",
        **wrap_kwargs,
    )


def _parse(expr: str) -> ast.Expression:
    """The syntax tree of `expr`, refused (before the parser can run out of stack) when the
    formula is too long or nested too deeply, and after parsing when it is too big."""
    if not isinstance(expr, str) or not expr.strip():
        raise ExpressionError(f"expression must be a non-empty string, got {short(expr)}")
    if len(expr) > _MAX_LENGTH:
        raise ExpressionError(f"expression is longer than {_MAX_LENGTH} characters")
    too_deep = ExpressionError(
        f"expression is nested more than {_MAX_DEPTH} levels deep (parentheses, signs or "
        "operators in a chain)"
    )
    if _nesting(expr) > _MAX_DEPTH:
        raise too_deep
    try:
        tree = ast.parse(expr.strip(), mode="eval")
    except SyntaxError as e:
        raise ExpressionError(f"cannot parse expression {short(expr)}: {e.msg}") from None
    except (RecursionError, MemoryError):  # the parser's own stack limits
        raise too_deep from None
    except ValueError:  # an integer literal of more digits than Python converts
        raise ExpressionError(
            f"cannot parse expression {short(expr)}: a number in it has too many digits"
        ) from None
    depth, nodes = _size(tree.body)
    if depth > _MAX_DEPTH:
        raise too_deep
    if nodes > _MAX_NODES:
        raise ExpressionError(f"expression has more than {_MAX_NODES} terms and operators")
    return tree


def _nesting(expr: str) -> int:
    """An upper bound the parser needs no stack for: open parentheses, or signs in a row."""
    depth = deepest = signs = 0
    for ch in expr:
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        if ch in "+-~":
            signs += 1
        elif not ch.isspace():
            signs = 0
        deepest = max(deepest, depth, signs)
    return deepest


def _size(root: ast.AST) -> tuple[int, int]:
    """(depth, number of nodes) of a syntax tree, without recursion."""
    depth = nodes = 0
    stack = [(root, 1)]
    while stack:
        node, d = stack.pop()
        nodes += 1
        depth = max(depth, d)
        if nodes > _MAX_NODES or depth > _MAX_DEPTH:
            break
        stack.extend((child, d + 1) for child in ast.iter_child_nodes(node))
    return depth, nodes


def _fold(node: ast.AST, expr: str) -> float | None:
    """Evaluates every part of the (checked) tree without variables in float64, refusing one
    that overflows, divides by zero or leaves the reals (`9**9**9`, `1/0`, `log(0)`,
    `sqrt(-1)`): such a constant would make every evaluation of the formula inf or NaN.
    Returns the value of `node` if it is constant, else None."""
    match node:
        case ast.Constant(value=v):
            try:
                value = np.float64(v)
            except OverflowError:
                value = np.float64(np.inf)
            return _finite(value, node, expr)
        case ast.Name(id=n):
            return np.float64(CONSTANTS[n]) if n in CONSTANTS else None
        case ast.BinOp(left=l, op=op, right=r):
            a, b = _fold(l, expr), _fold(r, expr)
            if a is None or b is None:
                return None
            return _finite(_evaluate(_BINARY[type(op)], a, b), node, expr)
        case ast.UnaryOp(op=op, operand=o):
            a = _fold(o, expr)
            return None if a is None else _UNARY[type(op)](a)
        case ast.Call(func=ast.Name(id=f), args=[a]):
            v = _fold(a, expr)
            return None if v is None else _finite(_evaluate(_NUMPY[f], v), node, expr)
    raise AssertionError(f"unchecked node {node!r}")  # _check rejects everything else


def _evaluate(fn, *args) -> np.float64:
    with np.errstate(all="ignore"):
        try:
            return np.float64(fn(*args))
        except (ZeroDivisionError, OverflowError, ValueError):
            return np.float64(np.nan)


def _finite(value: np.float64, node: ast.AST, expr: str) -> np.float64:
    if not np.isfinite(value):
        part = ast.unparse(node)
        raise ExpressionError(
            f"expression {short(expr)}: its constant part {short(part)} is {value} "
            "(an overflow, a division by zero or a value outside a function's domain)"
        )
    return value


def _check(node: ast.AST) -> set[str]:
    """Validates the tree against the allow-list; returns the free variable names."""
    match node:
        case ast.Constant(value=v) if isinstance(v, int | float) and not isinstance(v, bool):
            return set()
        case ast.Constant(value=v):
            raise ExpressionError(f"constant {v!r} is not allowed (numbers only)")
        case ast.Name(id=n):
            if n.startswith("__") or n.startswith("_"):
                raise ExpressionError(f"name {n!r} is not allowed (no underscore names)")
            if n in FUNCTIONS:
                raise ExpressionError(f"function {n!r} must be called, as {n}(...)")
            return set() if n in CONSTANTS else {n}
        case ast.BinOp(left=l, op=op, right=r):
            if type(op) not in _BINARY:
                raise ExpressionError(
                    f"operator {_describe(op)} is not allowed (allowed: + - * / **)"
                )
            return _check(l) | _check(r)
        case ast.UnaryOp(op=op, operand=o):
            if type(op) not in _UNARY:
                raise ExpressionError(f"operator {_describe(op)} is not allowed")
            return _check(o)
        case ast.Call(func=ast.Name(id=f), args=args, keywords=[]) if f in FUNCTIONS:
            if len(args) != 1:
                raise ExpressionError(f"{f}() takes exactly one argument, got {len(args)}")
            return _check(args[0])
        case ast.Call(func=ast.Name(id=f)):
            if f in FUNCTIONS:
                raise ExpressionError(f"{f}() takes no keyword arguments")
            raise ExpressionError(
                f"call to {f!r} is not allowed (allowed functions: {', '.join(FUNCTIONS)})"
            )
        case ast.Call(func=func):
            _check(func)  # refuses the callee itself (an attribute, a lambda, ...) by name
            raise ExpressionError(f"call {_describe(func)!r} is not allowed")
        case _:
            raise ExpressionError(f"{_describe(node)} is not allowed in an expression")


def _interpret(node: ast.AST, x, index: dict[str, int]):
    match node:
        case ast.Constant(value=v):
            return float(v)
        case ast.Name(id=n) if n in CONSTANTS:
            return CONSTANTS[n]
        case ast.Name(id=n):
            return x[index[n]]
        case ast.BinOp(left=l, op=op, right=r):
            return _BINARY[type(op)](_interpret(l, x, index), _interpret(r, x, index))
        case ast.UnaryOp(op=op, operand=o):
            return _UNARY[type(op)](_interpret(o, x, index))
        case ast.Call(func=ast.Name(id=f), args=[a]):
            return FUNCTIONS[f](_interpret(a, x, index))
    raise AssertionError(f"unchecked node {node!r}")  # _check rejects everything else


_KINDS = {
    ast.Attribute: "attribute access",
    ast.Subscript: "subscript",
    ast.Call: "call",
    ast.Lambda: "lambda",
    ast.ListComp: "list comprehension",
    ast.SetComp: "set comprehension",
    ast.DictComp: "dict comprehension",
    ast.GeneratorExp: "generator expression",
    ast.Compare: "comparison",
    ast.BoolOp: "boolean operator",
    ast.IfExp: "conditional expression",
    ast.NamedExpr: "assignment expression",
    ast.Starred: "starred expression",
    ast.List: "list",
    ast.Tuple: "tuple",
    ast.Dict: "dict",
    ast.Set: "set",
    ast.JoinedStr: "f-string",
    ast.Await: "await",
    ast.Yield: "yield",
    ast.MatMult: "'@'",
    ast.FloorDiv: "'//'",
    ast.Mod: "'%'",
    ast.BitAnd: "'&'",
    ast.BitOr: "'|'",
    ast.BitXor: "'^'",
    ast.LShift: "'<<'",
    ast.RShift: "'>>'",
    ast.Invert: "'~'",
    ast.Not: "'not'",
}


def _describe(node: ast.AST) -> str:
    kind = _KINDS.get(type(node), type(node).__name__)
    try:
        text = ast.unparse(node)
    except Exception:
        text = ""
    return f"{kind} {text!r}" if text and not isinstance(node, ast.operator | ast.unaryop) else kind
