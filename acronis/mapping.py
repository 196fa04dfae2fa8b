"""Pure mapping of upstream Acronis dicts into the seed's shapes (dicts in, dicts out).

No I/O and no ORM: ``acronis/services.py`` writes, ``acronis/selectors.py`` reads through
the cache and calls these.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from acronis.client import same_guid

SUCCESS_RESULTS = frozenset({"ok", "warning"})
FAILED_RESULTS = frozenset({"error", "abandoned", "timedout"})
SEED_DATE_FORMAT = "%d/%m/%Y %H:%M:%S"


# --- small helpers ---------------------------------------------------------------------------


def is_guid(value: Any) -> bool:
    try:
        uuid.UUID(str(value))
    except (TypeError, ValueError):
        return False
    return True


def parse_time(value: Any) -> datetime | None:
    """RFC3339 (Task Manager, Workload Management) to an aware datetime; ``None`` if absent."""
    if not isinstance(value, str) or not value:
        return None
    text = value.strip().replace("Z", "+00:00").replace("z", "+00:00")
    # Python < 3.11 chokes on 9 fraction digits; trim to microseconds.
    if "." in text:
        head, _, rest = text.partition(".")
        digits = "".join(ch for ch in rest if ch.isdigit())
        tail = rest[len(digits) :]
        text = f"{head}.{digits[:6].ljust(6, '0')}{tail}"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def seed_date(value: datetime | None) -> str | None:
    """``31/01/2025 10:00:00`` (UTC), the seed's backup date format."""
    return value.astimezone(UTC).strftime(SEED_DATE_FORMAT) if value else None


def format_bytes(size: int | float | None) -> str:
    """``1073741824`` -> ``1.0 GB`` (binary multiples, as the seed's example)."""
    value = float(size or 0)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1024 or unit == "TB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} PB"  # pragma: no cover


def format_uptime(seconds: float) -> str:
    """``5 days, 3 hours, 20 minutes`` (units of zero are left out; minutes always shown)."""
    minutes_total = int(seconds // 60)
    days, rest = divmod(minutes_total, 1440)
    hours, minutes = divmod(rest, 60)
    parts = []
    if days:
        parts.append(f"{days} day{'s' if days != 1 else ''}")
    if hours:
        parts.append(f"{hours} hour{'s' if hours != 1 else ''}")
    parts.append(f"{minutes} minute{'s' if minutes != 1 else ''}")
    return ", ".join(parts)


def lower(value: Any) -> str:
    return str(value).strip().lower() if value else ""


def _short_host(name: Any) -> str:
    return lower(name).split(".", 1)[0]


# --- agents ----------------------------------------------------------------------------------

_FAMILIES = {"WINDOWS": "Windows", "LINUX": "Linux", "MACOS": "macOS", "MAC": "macOS"}


def map_agent(raw: dict) -> dict[str, Any]:
    """An upstream agent (cloud API §3) in the seed's shape, minus uptime (added per request)."""
    platform = raw.get("platform") if isinstance(raw.get("platform"), dict) else {}
    family = platform.get("family")
    major, minor = platform.get("version_major"), platform.get("version_minor")
    version = f"{major}.{minor}" if major is not None and minor is not None else None
    tenant = raw.get("tenant") if isinstance(raw.get("tenant"), dict) else {}
    return {
        "id_agent": raw.get("id"),
        "hostname": raw.get("hostname") or raw.get("name") or "",
        "id_tenant": tenant.get("id"),
        "online": bool(raw.get("online")),
        "platform": {
            "family": _FAMILIES.get(str(family).upper(), family) if family else None,
            "arch": str(platform["arch"]).lower() if platform.get("arch") else None,
            "name": platform.get("name"),
            "version": version,
        },
    }


def with_uptime(agent: dict, online_since: str | None, now: datetime | None = None) -> dict[str, Any]:
    """The seed's agent row: ``uptime`` text and ``uptime_timestamp`` (start of the streak, Unix)."""
    now = now or datetime.now(UTC)
    since = datetime.fromisoformat(online_since) if online_since and agent.get("online") else None
    row = dict(agent)
    row["uptime"] = format_uptime((now - since).total_seconds()) if since else None
    row["uptime_timestamp"] = round(since.timestamp(), 3) if since else None
    return row


# --- workloads and associations -------------------------------------------------------------


def workload_hostname(raw: dict) -> str:
    attributes = raw.get("attributes") if isinstance(raw.get("attributes"), dict) else {}
    return attributes.get("host_name") or raw.get("name") or raw.get("user_defined_name") or ""


def map_workload(raw: dict) -> dict[str, Any]:
    alias = raw.get("type_alias") or raw.get("type") or ""
    kind = alias[len("resource.") :] if alias.startswith("resource.") else alias
    return {
        "id_workload": raw.get("id"),
        "hostname": workload_hostname(raw),
        "id_tenant": raw.get("tenant_id"),
        "type": kind,
        "status": "active" if raw.get("enabled", True) else "disabled",
        "agent_id": raw.get("agent_id"),
    }


def build_associations(workloads: list[dict], policy_statuses: list[dict], agents: list[dict]) -> list[dict]:
    """Agent-workload pairs (cloud API §5): ``workload.agent_id``, then the policy
    statuses' ``context.agent_id``, then hostname within the same tenant; unmatched
    workloads have no association."""
    policy_agent = {}
    for status in policy_statuses:
        context = status.get("context") if isinstance(status, dict) else None
        if isinstance(context, dict) and context.get("id") and context.get("agent_id"):
            policy_agent.setdefault(lower(context["id"]), context["agent_id"])
    by_host: dict[tuple[str, str], dict] = {}
    for agent in agents:
        by_host.setdefault((lower(agent.get("id_tenant")), _short_host(agent.get("hostname"))), agent)
    rows = []
    for workload in workloads:
        agent_id, kind = workload.get("agent_id"), "direct"
        if not agent_id:
            agent_id, kind = policy_agent.get(lower(workload.get("id_workload"))), "policy"
        if not agent_id:
            match = by_host.get((lower(workload.get("id_tenant")), _short_host(workload.get("hostname"))))
            agent_id, kind = (match["id_agent"], "hostname") if match else (None, None)
        if not agent_id:
            continue
        rows.append(
            {
                "agent_id": agent_id,
                "workload_id": workload.get("id_workload"),
                "hostname": workload.get("hostname"),
                "association_type": kind,
            }
        )
    return rows


# --- backups (Task Manager activities) -------------------------------------------------------


def is_root_activity(raw: dict) -> bool:
    context = raw.get("context") if isinstance(raw.get("context"), dict) else {}
    if context.get("IsProcessRoot") is False:
        return False
    return not (raw.get("parentActivityIdString") or raw.get("parentActivityId"))


def _bytes(raw: dict, key: str) -> int:
    context = raw.get("context") if isinstance(raw.get("context"), dict) else {}
    runtime = context.get("_runtime") if isinstance(context.get("_runtime"), dict) else {}
    progress = raw.get("progress") if isinstance(raw.get("progress"), dict) else {}
    value = runtime.get(key, progress.get(key, 0))
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def _error_text(result: dict) -> str | None:
    error = result.get("error") if isinstance(result, dict) else None
    if not isinstance(error, dict):
        return None
    context = error.get("context") if isinstance(error.get("context"), dict) else {}
    debug = error.get("debug") if isinstance(error.get("debug"), dict) else {}
    return error.get("reason") or context.get("cause_str") or debug.get("msg")


def compact_activity(raw: dict) -> dict[str, Any]:
    """What we keep of an upstream activity (cached 2 min; small and JSON-safe)."""
    context = raw.get("context") if isinstance(raw.get("context"), dict) else {}
    result = raw.get("result") if isinstance(raw.get("result"), dict) else {}
    resource = raw.get("resource") if isinstance(raw.get("resource"), dict) else {}
    executor = raw.get("executor") if isinstance(raw.get("executor"), dict) else {}
    tenant = raw.get("tenant") if isinstance(raw.get("tenant"), dict) else {}
    return {
        "id": raw.get("idString") or str(raw.get("id") or ""),
        "parent": raw.get("parentActivityIdString")
        or (str(raw["parentActivityId"]) if raw.get("parentActivityId") else None),
        "root": is_root_activity(raw),
        "state": raw.get("state"),
        "result": result.get("code"),
        "error": _error_text(result),
        "started_at": raw.get("startedAt"),
        "completed_at": raw.get("completedAt"),
        "resource_id": resource.get("id"),
        "resource_name": resource.get("name"),
        "agent_id": executor.get("id"),
        "tenant_id": tenant.get("id"),
        "run_mode": context.get("runMode"),
        "title": context.get("title"),
        "bytes_saved": _bytes(raw, "bytesSaved"),
        "bytes_processed": _bytes(raw, "bytesProcessed"),
    }


def _duration_minutes(started: datetime | None, completed: datetime | None) -> int | None:
    if not started or not completed:
        return None
    return max(0, round((completed - started).total_seconds() / 60))


def map_child_activity(activity: dict) -> dict[str, Any]:
    state, result = activity.get("state"), activity.get("result")
    status = result if state == "completed" and result else state
    if status == "ok":
        status = "completed"
    if result in FAILED_RESULTS:
        status = "failed"
    details = activity.get("error") or activity.get("title") or ""
    return {
        "activity_id": activity["id"],
        "type": "backup",
        "status": status,
        "started_at": seed_date(parse_time(activity.get("started_at"))),
        "completed_at": seed_date(parse_time(activity.get("completed_at"))),
        "details": details,
        "bytes_processed": activity.get("bytes_processed", 0),
    }


def map_backup(
    root: dict, children: list[dict], *, with_activities: bool = True, formatted_bytes: bool = False
) -> dict[str, Any]:
    started, completed = parse_time(root.get("started_at")), parse_time(root.get("completed_at"))
    run_mode = root.get("run_mode")
    row: dict[str, Any] = {
        "backup_id": root["id"],
        "started_at": seed_date(started),
        "completed_at": seed_date(completed),
        "state": root.get("state"),
        "run_mode": run_mode.capitalize() if isinstance(run_mode, str) and run_mode else None,
        "bytes_saved": root.get("bytes_saved", 0),
    }
    if formatted_bytes:
        row["bytes_saved_formatted"] = format_bytes(row["bytes_saved"])
    row["result"] = root.get("result")
    row["duration_minutes"] = _duration_minutes(started, completed)
    if root.get("error"):
        row["error"] = root["error"]
    if with_activities:
        row["activities"] = [map_child_activity(c) for c in children]
    return row


def _counts(roots: list[dict]) -> tuple[int, int]:
    success = sum(1 for r in roots if r.get("state") == "completed" and r.get("result") in SUCCESS_RESULTS)
    failed = sum(1 for r in roots if r.get("state") == "completed" and r.get("result") in FAILED_RESULTS)
    return success, failed


def success_rate(success: int, failed: int) -> float | None:
    """Percentage of finished backups that succeeded (``warning`` counts as success); ``None``
    when nothing finished (a rate of 0 would claim failures that did not happen)."""
    finished = success + failed
    return round(100.0 * success / finished, 2) if finished else None


def _newest_first(items: list[dict]) -> list[dict]:
    return sorted(
        items, key=lambda a: parse_time(a.get("started_at")) or datetime.min.replace(tzinfo=UTC), reverse=True
    )


def _children_by_parent(activities: list[dict]) -> dict[str, list[dict]]:
    children: dict[str, list[dict]] = {}
    for activity in activities:
        if not activity["root"] and activity.get("parent"):
            children.setdefault(activity["parent"], []).append(activity)
    return children


def backup_statistics(activities: list[dict], workloads: list[dict], *, limit: int) -> dict[str, Any]:
    """``GET /backups`` data: summary plus backups grouped per workload (``resource.id``,
    case-insensitive), newest first, ``limit`` per workload; only root activities count."""
    by_id = {lower(w.get("id_workload")): w for w in workloads}
    children = _children_by_parent(activities)
    groups: dict[str, list[dict]] = {}
    for activity in activities:
        if activity["root"] and activity.get("resource_id"):
            groups.setdefault(lower(activity["resource_id"]), []).append(activity)
    workload_data: dict[str, Any] = {}
    total_success = total_failed = total_count = total_bytes = 0
    for key, roots in groups.items():
        workload = by_id.get(key)
        success, failed = _counts(roots)
        total_success += success
        total_failed += failed
        total_count += len(roots)
        total_bytes += sum(r.get("bytes_saved", 0) for r in roots)
        ordered = _newest_first(roots)
        workload_data[workload["id_workload"] if workload else key] = {
            "hostname": workload["hostname"] if workload else ordered[0].get("resource_name"),
            "id_tenant": workload["id_tenant"] if workload else ordered[0].get("tenant_id"),
            "backup_count": len(roots),
            "success_count": success,
            "failed_count": failed,
            "backups": [map_backup(r, children.get(r["id"], [])) for r in ordered[:limit]],
        }
    return {
        "summary": {
            "num_backups": total_count,
            "success": total_success,
            "failed": total_failed,
            "success_rate": success_rate(total_success, total_failed),
            "total_bytes_saved": total_bytes,
        },
        "workload_data": workload_data,
    }


def agent_backups(
    agent: dict, activities: list[dict], workload_ids: Iterable[str], *, limit: int, include_activities: bool
) -> dict[str, Any]:
    """``GET /agent/{id}/backups`` data: the agent's root backups (executor is the agent, or
    the resource is one of its workloads), newest first."""
    agent_id = agent["id_agent"]
    workload_keys = {lower(w) for w in workload_ids}
    children = _children_by_parent(activities)
    roots = [
        a
        for a in activities
        if a["root"] and (same_guid(a.get("agent_id"), agent_id) or lower(a.get("resource_id")) in workload_keys)
    ]
    success, failed = _counts(roots)
    return {
        "agent_info": {"id_agent": agent_id, "hostname": agent.get("hostname"), "online": agent.get("online")},
        "backup_summary": {
            "total_backups": len(roots),
            "successful": success,
            "failed": failed,
            "success_rate": success_rate(success, failed),
        },
        "backups": [
            map_backup(r, children.get(r["id"], []), with_activities=include_activities, formatted_bytes=True)
            for r in _newest_first(roots)[:limit]
        ],
    }
