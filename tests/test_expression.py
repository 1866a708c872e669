"""The formula parser: what it computes, and everything it must refuse."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gdkit import objectives
from gdkit.objectives import ExpressionError, from_expression


def test_saddle_formula_matches_the_registered_saddle():
    expr = from_expression("x**2 + 3*x*y + y**2")
    saddle = objectives.get("saddle")
    rng = np.random.default_rng(0)
    for x in rng.normal(size=(5, 2)).astype(np.float32):
        assert float(expr(jnp.asarray(x))) == pytest.approx(float(saddle(jnp.asarray(x))))


def test_rosenbrock_formula_has_the_analytic_gradient():
    expr = from_expression("100*(y - x**2)**2 + (1 - x)**2")
    np.testing.assert_allclose(
        jax.grad(expr.fn)(jnp.array([-1.2, 1.0])), [-215.6, -88.0], rtol=1e-6
    )


def test_variables_default_to_sorted_free_names():
    obj = from_expression("y - 2*x")
    assert obj.dim == 2
    assert float(obj(jnp.array([1.0, 0.0]))) == -2.0  # x = 1, y = 0


def test_explicit_variable_order():
    obj = from_expression("y - 2*x", variables=["y", "x"])
    assert float(obj(jnp.array([1.0, 0.0]))) == 1.0  # y = 1, x = 0
    unused = from_expression("x**2", variables=["x", "z"])
    assert unused.dim == 2


def test_functions_and_constants():
    obj = from_expression("sin(pi*x) + exp(-abs(y)) + sqrt(e) * tanh(z) - -log(1 + x**2)")
    x, y, z = 0.25, -0.7, 0.3
    expected = np.sin(np.pi * x) + np.exp(-abs(y)) + np.sqrt(np.e) * np.tanh(z) + np.log(1 + x**2)
    assert float(obj(jnp.array([x, y, z]))) == pytest.approx(expected, rel=1e-6)


def test_expression_objective_is_pure_and_vmaps():
    obj = from_expression("x**2 - 2*x + 3", bounds=[[-3.0, 5.0]], minima=[([1.0], 2.0)])
    xs = jnp.linspace(-3.0, 5.0, 9)[:, None]
    np.testing.assert_allclose(jax.jit(jax.vmap(obj.fn))(xs), xs[:, 0] ** 2 - 2 * xs[:, 0] + 3)
    assert obj.f_min == 2.0
    with jax.enable_x64(True):
        assert obj(jnp.array([1.0])).dtype == jnp.float64


@pytest.mark.parametrize(
    ("expr", "refused"),
    [
        ("x.__class__", "attribute access"),
        ("x.real", "attribute access"),
        ("x[0]", "subscript"),
        ("__import__('os').system('true')", "attribute access"),
        ("__import__('os')", "call to '__import__'"),
        ("open('/etc/passwd')", "call to 'open'"),
        ("eval('1')", "call to 'eval'"),
        ("(lambda: 1)()", "lambda"),
        ("lambda x: x", "lambda"),
        ("[x for x in y]", "list comprehension"),
        ("{x: 1}", "dict"),
        ("import os", "cannot parse"),
        ("x = 1", "cannot parse"),
        ("x if y else 1", "conditional"),
        ("x < y", "comparison"),
        ("x and y", "boolean"),
        ("(x, y)", "tuple"),
        ("'text'", "constant 'text'"),
        ("True", "constant True"),
        ("1j * x", "constant 1j"),
        ("x @ y", "operator '@'"),
        ("x // y", "operator '//'"),
        ("x % y", "operator '%'"),
        ("~x", "operator '~'"),
        ("_x + 1", "underscore"),
        ("__builtins__", "underscore"),
        ("sin(x, y)", "exactly one argument"),
        ("sin(x=1)", "keyword"),
        ("sin + x", "must be called"),
        ("(y := 2)", "assignment expression"),
        ("f'{x}'", "f-string"),
        ("", "non-empty"),
        ("3 + 4", "no variables"),
    ],
)
def test_refusals_name_what_was_refused(expr, refused):
    with pytest.raises(ExpressionError, match=refused):
        from_expression(expr)


def test_variables_must_cover_the_formula():
    with pytest.raises(ExpressionError, match="'y', which is not among the variables"):
        from_expression("x + y", variables=["x"])
    with pytest.raises(ExpressionError, match="invalid variable name"):
        from_expression("x", variables=["x", "sin"])


def test_errors_are_value_errors_with_one_line():
    with pytest.raises(ValueError) as info:
        from_expression("x.__globals__")
    assert "\n" not in str(info.value)
