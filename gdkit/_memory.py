"""How much memory this machine has, and byte counts for people (for refusing sweeps that
cannot fit before they allocate anything)."""

from __future__ import annotations

import os
import pathlib


def total_bytes() -> int:
    """Physical memory, or the control group's limit when that is lower (a container)."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not POSIX: assume plenty, refuse nothing
        return 2**62
    for limit in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = pathlib.Path(limit).read_text().strip()
        except OSError:
            continue
        if text.isdigit() and 0 < int(text) < total:
            total = int(text)
    return total


def result_bytes(dim: int, records: int, itemsize: int) -> int:
    """Host bytes of one lane's results (what `gdkit.sweep.plan` reports as host memory): final
    x, final and best loss, gradient norm; steps to tol, divergence step; status (<U10); the
    thinned history."""
    return (dim + 3) * itemsize + 16 + 40 + records * itemsize


def describe(n: int | float) -> str:
    """`describe(3 * 2**30)` -> '3.0 GB' (powers of 1024; astronomically large counts as 10^k).

    >>> describe(1536), describe(10**40)
    ('1.5 KB', '10^40 bytes')
    """
    if n >= 2**70:
        return f"10^{len(str(int(n))) - 1} bytes"
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if n < 1024 or unit == "PB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError  # unreachable


def count(n: int) -> str:
    """A lane count for people: `count(1234)` -> '1,234'; huge ones as 10^k."""
    return f"{n:,}" if n < 10**15 else f"about 10^{len(str(int(n))) - 1}"
