"""Checks of user arguments at the API boundary: one-line errors that name the argument.

Every public function checks its arguments with these before it does any work, so a bad value
is a `ValueError` (or `TypeError` for a value of the wrong kind of object) that says where
(`sweep: record_every`), what is allowed and, shortened, what was given. Only concrete Python
and NumPy values are checked here; JAX arrays (which may be traced) never are.
"""

from __future__ import annotations

import math
import reprlib
import sys
from typing import Any

from gdkit import _memory

_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxlist, _REPR.maxtuple, _REPR.maxdict = 2, 4, 4, 4
_REPR.maxstring, _REPR.maxother, _REPR.maxlong = 40, 40, 30


def short(value: Any, limit: int = 60) -> str:
    """`repr(value)`, cut to about `limit` characters without ever building a huge string
    (a billion-element list or a number with a million digits costs no more than a small one).

    Example:
      >>> short([0.5] * 10**6)
      '[0.5, 0.5, 0.5, 0.5, ...]'
      >>> short(10**100000)
      '<an integer of 100001 digits>'
    """
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 96:
        digits = int(value.bit_length() * math.log10(2)) + 1
        return f"<an integer of {digits} digits>"
    np = sys.modules.get("numpy")  # not loaded: `value` is no NumPy array (and none is needed)
    if np is not None and isinstance(value, np.ndarray) and value.size > 8:
        text = f"array of shape {value.shape} ({value.dtype})"
    else:
        try:
            text = _REPR.repr(value)
        except Exception:  # a broken __repr__ must not hide the real error
            text = f"<{type(value).__name__}>"
    text = " ".join(text.split())  # one line, whatever the value's repr does
    return text if len(text) <= limit else text[: limit - 3] + "..."


def is_int(value: Any) -> bool:
    """A Python or NumPy integer, not a bool."""
    import numpy as np

    return isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_)


def is_real(value: Any) -> bool:
    """A Python or NumPy real number (integers included), not a bool."""
    import numpy as np

    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(
        value, bool | np.bool_
    )


def integer(where: str, name: str, value: Any, lo: int = 1, hi: int | None = None) -> int:
    """`value` as an int in [lo, hi]; ValueError naming `where: name` otherwise."""
    if not is_int(value) or value < lo or (hi is not None and value > hi):
        allowed = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
        raise ValueError(f"{where}: {name} must be an integer {allowed}, got {short(value)}")
    return int(value)


def real(
    where: str,
    name: str,
    value: Any,
    lo: float = -math.inf,
    hi: float = math.inf,
    *,
    lo_open: bool = False,
    hi_open: bool = False,
    finite: bool = True,
) -> float:
    """`value` as a float in the interval given (finite unless `finite=False`)."""
    ok = is_real(value)
    if ok:
        x = float(value)
        ok = not math.isnan(x) and (not finite or math.isfinite(x))
        ok = ok and (x > lo if lo_open else x >= lo) and (x < hi if hi_open else x <= hi)
    if not ok:
        raise ValueError(
            f"{where}: {name} must be {_interval(lo, hi, lo_open, hi_open, finite)}, "
            f"got {short(value)}"
        )
    return float(value)


def _interval(lo: float, hi: float, lo_open: bool, hi_open: bool, finite: bool) -> str:
    kind = "a finite number" if finite else "a number"
    if lo == -math.inf and hi == math.inf:
        return kind
    if hi == math.inf:
        return f"{kind} {'>' if lo_open else '>='} {lo:g}"
    if lo == -math.inf:
        return f"{kind} {'<' if hi_open else '<='} {hi:g}"
    return f"{kind} in {'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"


def boolean(where: str, name: str, value: Any) -> bool:
    """`value` if it is True or False (NumPy bools too)."""
    import numpy as np

    if not isinstance(value, bool | np.bool_):
        raise ValueError(f"{where}: {name} must be True or False, got {short(value)}")
    return bool(value)


def fits_in_memory(where: str, what: str, nbytes: int, hint: str = "") -> None:
    """Refuses, before allocating, what needs more memory than this machine has.

    `what` says what needs it (`"1000000000000 lanes"`), `hint` which argument to make
    smaller.
    """
    have = _memory.total_bytes()
    if nbytes > have:
        hint = f"; {hint}" if hint else ""
        raise ValueError(
            f"{where}: {what} would need {_memory.describe(nbytes)} of memory, more than "
            f"this machine's {_memory.describe(have)}{hint}"
        )
