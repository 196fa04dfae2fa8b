"""Reading ids and whole numbers that callers type into URLs and query strings.

``str.isdigit()`` is not the test for that: it is true for ``"³"`` and ``"٣"``, which
``int()`` refuses or reads as 3, and any number of digits passes it while PostgreSQL's
``bigint`` ends at 2**63 - 1. Both ended as server errors.
"""

from __future__ import annotations

import re
from typing import Any

BIGINT_MAX = 2**63 - 1
_ASCII_INTEGER = re.compile(r"-?[0-9]{1,19}")


def parse_int(value: Any) -> int | None:
    """``value`` as an int if it is written with ASCII digits (an optional leading minus)
    and fits a signed 64-bit integer; otherwise ``None``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and _ASCII_INTEGER.fullmatch(value.strip()):
        number = int(value.strip())
    else:
        return None
    return number if -BIGINT_MAX - 1 <= number <= BIGINT_MAX else None


def parse_id(value: Any) -> int | None:
    """A primary key: a whole number from 1 to 2**63 - 1, else ``None`` (no such row)."""
    number = parse_int(value)
    return number if number is not None and number >= 1 else None


def is_id(value: Any) -> bool:
    return parse_id(value) is not None
