"""Query parameters as a document lists them: typed, and nothing else where it lists them all.

A view declares ``query_params`` (``{name: Param}``); ``check_query`` refuses, in one error,
every parameter of the wrong type and, with ``strict``, every parameter the document does
not list. Errors are located in the query (db-backup-platform.md shows them as
``{"loc": ["query", "limit"], "type": "type_error.integer"}``).
"""

from __future__ import annotations

from dataclasses import dataclass

from django.utils.dateparse import parse_date, parse_datetime

from backupplatform.errors import FieldError, ValidationFailed
from backupplatform.ids import parse_int


@dataclass(frozen=True)
class Param:
    kind: str = "str"  # "str", "int", "choice", "date"
    choices: tuple[str, ...] = ()
    minimum: int | None = None
    maximum: int | None = None


def Int(minimum: int | None = None, maximum: int | None = None) -> Param:
    return Param("int", minimum=minimum, maximum=maximum)


def Choice(*choices: str) -> Param:
    return Param("choice", choices=tuple(choices))


STR, DATE, ID = Param("str"), Param("date"), Param("int", minimum=1)


def _problem(param: Param, raw: str) -> FieldError | None:
    if param.kind == "int":
        value = parse_int(raw)
        if value is None:
            return FieldError("value is not a valid integer", "type_error.integer")
        if param.minimum is not None and value < param.minimum:
            return FieldError(
                f"ensure this value is greater than or equal to {param.minimum}", "value_error.number.not_ge"
            )
        if param.maximum is not None and value > param.maximum:
            return FieldError(
                f"ensure this value is less than or equal to {param.maximum}", "value_error.number.not_le"
            )
    elif param.kind == "choice" and raw not in param.choices:
        permitted = ", ".join(repr(c) for c in param.choices)
        return FieldError(f"value is not a valid enumeration member; permitted: {permitted}", "type_error.enum")
    elif param.kind == "date" and parse_datetime(raw) is None and parse_date(raw) is None:
        return FieldError("invalid date format: use YYYY-MM-DD or an ISO 8601 date-time", "value_error.date")
    return None


def check_query(request, params: dict[str, Param], *, strict: bool = True) -> None:
    """Raise one ``ValidationFailed`` (location ``query``) naming every bad parameter."""
    errors: dict[str, list[FieldError]] = {}
    for name in request.query_params:
        if name not in params:
            if strict:
                errors[name] = [FieldError("extra fields not permitted", "value_error.extra")]
            continue
        raw = request.query_params.get(name)
        if raw in (None, ""):
            continue
        try:
            problem = _problem(params[name], raw)
        except ValueError:  # a date out of range
            problem = FieldError("invalid date", "value_error.date")
        if problem is not None:
            errors[name] = [problem]
    if errors:
        raise ValidationFailed(details=errors, location="query")
