"""Query semantics of the fake: Acronis filter expressions (§0) and each list's filters."""

from __future__ import annotations

import email.utils
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

Query = dict[str, list[str]]
Selector = Callable[[list[dict], Query], list[dict]]

_FRACTION = re.compile(r"(\.\d{1,6})\d*")


def parse_time(value: str) -> float:
    """Unix time from RFC3339, RFC1123, a Unix timestamp or ``<ns>ns`` (§0)."""
    text = value.strip()
    if text.endswith("ns") and text[:-2].isdigit():
        return int(text[:-2]) / 1e9
    try:
        return float(text)
    except ValueError:
        pass
    try:
        iso = _FRACTION.sub(lambda m: m.group(1), text.replace("Z", "+00:00").replace("z", "+00:00"))
        parsed = datetime.fromisoformat(iso)
    except ValueError:
        try:
            parsed = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            raise ValueError(f"unparseable date {value!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


_CALL = re.compile(r"^\s*(\w+)\((.*)\)\s*$", re.DOTALL)


def split_call(expr: str) -> tuple[str | None, list[str]]:
    """``gt(X)`` → ``("gt", ["X"])``; ``a`` → ``(None, ["a"])``."""
    match = _CALL.match(expr)
    if not match:
        return None, [expr]
    return match.group(1).lower(), [part.strip() for part in match.group(2).split(",")]


def matches_values(actual: Any, exprs: list[str], *, casefold: bool = False) -> bool:
    """Equality filter: repeated values and ``or(...)`` are alternatives; ``not(...)`` excludes."""
    if actual is None:
        return False
    norm = (lambda s: str(s).lower()) if casefold else str
    value = norm(actual)
    wanted: set[str] = set()
    for expr in exprs:
        op, args = split_call(expr)
        if op == "not":
            if value in {norm(a) for a in args}:
                return False
        elif op == "or" or op is None:
            wanted.update(norm(a) for a in args)
        else:
            raise ValueError(f"unsupported operator {op!r}")
    return not wanted or value in wanted


def matches_time(actual: str | None, exprs: list[str]) -> bool:
    """Comparison filter: every repeated expression must hold (``gt(A)&lt(B)``)."""
    if not actual:
        return False
    when = parse_time(actual)
    for expr in exprs:
        op, args = split_call(expr)
        bounds = [parse_time(a) for a in args]
        if op == "gt":
            ok = when > bounds[0]
        elif op == "ge":
            ok = when >= bounds[0]
        elif op == "lt":
            ok = when < bounds[0]
        elif op == "le":
            ok = when <= bounds[0]
        elif op == "range":
            ok = bounds[0] <= when <= bounds[1]
        elif op == "xrange":
            ok = bounds[0] < when < bounds[1]
        elif op is None:
            ok = when == bounds[0]
        else:
            raise ValueError(f"unsupported operator {op!r}")
        if not ok:
            return False
    return True


def dig(item: dict, dotted: str) -> Any:
    value: Any = item
    for part in dotted.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def sort_key(item: dict, field: str) -> float:
    return int(item["idString"]) if field == "id" else parse_time(item[field])


def select_agents(items: list[dict], q: Query) -> list[dict]:
    if "tenant_id" in q:
        items = [a for a in items if matches_values(a["tenant"]["id"], q["tenant_id"])]
    for expr in q.get("hostname", []):
        op, args = split_call(expr)
        pattern = args[0].lower().replace("%", "")
        if op == "hlike":
            items = [a for a in items if pattern in a["hostname"].lower()]
        else:
            items = [a for a in items if a["hostname"].lower() == pattern]
    return items


def select_workloads(items: list[dict], q: Query) -> list[dict]:
    for key, field in (("tenant_id", "tenant_id"), ("workload_id", "id"), ("type", "type")):
        if key in q:
            items = [w for w in items if matches_values(w.get(field), q[key], casefold=True)]
    return items


def select_by_type(field: str) -> Selector:
    def select(items: list[dict], q: Query) -> list[dict]:
        if "type" in q:
            items = [i for i in items if matches_values(dig(i, field), q["type"])]
        if "tenant_id" in q:
            items = [i for i in items if matches_values(dig(i, "context.tenant_id"), q["tenant_id"])]
        return items

    return select


def select_activities(items: list[dict], q: Query) -> list[dict]:
    for key in ("completedAt", "startedAt", "createdAt", "updatedAt"):
        if key in q:
            items = [a for a in items if matches_time(a.get(key), q[key])]
    simple = {
        "state": ("state", False),
        "resultCode": ("result.code", False),
        "resourceId": ("resource.id", True),
        "type": ("type", True),
        "id": ("idString", False),
        "taskId": ("taskIdString", False),
        "policyId": ("policy.id", True),
    }
    for key, (field, casefold) in simple.items():
        if key in q:
            items = [a for a in items if matches_values(dig(a, field), q[key], casefold=casefold)]
    for policy_type in q.get("policyType", []):
        wanted = policy_type if policy_type.startswith("policy.") else f"policy.{policy_type}"
        items = [a for a in items if a["policy"]["type"] == wanted or a["policy"]["type"].startswith(wanted + ".")]
    for expr in q.get("order", [])[:1]:
        op, args = split_call(expr)
        if op not in ("asc", "desc"):
            raise ValueError(f"bad order {expr!r}")
        field = args[0]
        present = [a for a in items if a.get(field) is not None]
        missing = [a for a in items if a.get(field) is None]
        items = sorted(present, key=lambda a, f=field: sort_key(a, f), reverse=op == "desc") + missing
    return items


def select_policy_statuses(tenant_ids: Callable[[str], set[str] | None]) -> Selector:
    """§4d documents ``tenant_id=<uuid or or(...)>``; the fake insists on it.

    ``tenant_ids(uuid)`` gives the legacy ids whose statuses a tenant UUID covers (its own
    and its children's), or ``None`` for an unknown UUID.
    """

    def select(items: list[dict], q: Query) -> list[dict]:
        if not q.get("tenant_id"):
            raise ValueError("tenant_id is required")
        allowed: set[str] = set()
        for expr in q["tenant_id"]:
            op, args = split_call(expr)
            if op not in (None, "or"):
                raise ValueError(f"unsupported operator {op!r} for tenant_id")
            for value in args:
                covered = tenant_ids(value.lower())
                if covered is None:
                    raise ValueError(f"tenant_id {value!r} is not a known tenant UUID")
                allowed |= covered
        return [i for i in items if dig(i, "context.tenant_id") in allowed]

    return select
