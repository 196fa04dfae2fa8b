"""Sizes and costs as the APIs show them (``size_gb``, ``used_gb``, ``monthly_cost``).

Rounded to significant digits, not decimal places: a backup of a few MB is 0.00341 GB and
costs 7.8e-05 a month, where rounding to two places showed 0.0 for both.
"""

from __future__ import annotations

from decimal import Decimal

GIB = 1024**3
SIGNIFICANT_DIGITS = 6


def significant(value: float, digits: int = SIGNIFICANT_DIGITS) -> float:
    return float(f"{value:.{digits}g}") if value else 0.0


def gigabytes(size_bytes: int | float | None) -> float:
    """Bytes in GiB (the seeds' ``_gb``), to six significant digits."""
    return significant((size_bytes or 0) / GIB)


def monthly_cost(size_bytes: int | float | None, price_per_gb_month: Decimal | float) -> float:
    """What storing ``size_bytes`` for a month costs at ``price_per_gb_month``."""
    return significant(float(Decimal(int(size_bytes or 0)) / Decimal(GIB) * Decimal(str(price_per_gb_month))))
