"""How the lab's Markdown tables write numbers: milliseconds, dollars, MiB, ratios.

One home, so ``slimbert cost`` and ``slimbert report`` print the same figure the same way; a
missing value is an en dash, never ``None`` or ``nan``.
"""

from __future__ import annotations

import math
from typing import Any

MIB = 1 << 20
DASH = "–"


def ms(x: float | None) -> str:
    """Milliseconds with about three significant digits (0.85, 12.3, 1,234)."""
    if x is None:
        return DASH
    return f"{x:,.0f}" if x >= 100 else f"{x:.1f}" if x >= 10 else f"{x:.2f}"


def usd(x: float | None) -> str:
    """Dollars to the cent; four decimals below a cent, where per-prediction costs live."""
    if x is None:
        return DASH
    return f"${x:,.2f}" if abs(x) >= 0.01 or x == 0 else f"${x:.4f}"


def usd3(x: float | None) -> str:
    """Dollars to three significant digits (at least to the cent): $0.0312, $0.240, $1.87. For
    costs per prediction, where the cent rounding of :func:`usd` would hide a target's margin."""
    if x is None:
        return DASH
    if x == 0:
        return "$0.00"
    decimals = max(2, 2 - math.floor(math.log10(abs(x))))
    return f"${x:,.{decimals}f}"


def mib(n: float | None) -> str:
    """Bytes as MiB with one decimal."""
    return DASH if n is None else f"{n / MIB:.1f}"


def num(x: Any, spec: str) -> str:
    """``x`` formatted with ``spec`` when it is a number, else a dash (JSON may hold anything)."""
    return format(x, spec) if isinstance(x, int | float) and not isinstance(x, bool) else DASH


def times(x: float | None) -> str:
    """A ratio such as 1.25×."""
    return DASH if x is None else f"{x:.2f}×"
