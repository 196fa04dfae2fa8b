"""Restore drill evidence for auditors: every finished drill of a workspace in a period, as
JSON (for programs) or PDF (reportlab, as the backup reports), each with the backup drilled
(id, SHA-256 checksum, when it read its data), the timings (RTO: time to restore; RPO: age of
the restored data at drill time) and every assertion with its result.

Served by the platform API (``GET /api/v1/drills/evidence``), the admin (workspace action
"Download restore drill evidence") and built by :func:`evidence_generate` for both.
"""

from __future__ import annotations

import io
import json
import statistics
from datetime import date
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.utils import timezone

from audit.services import emit
from backupplatform import humanize
from backupplatform.errors import ValidationFailed
from backups.reporting import day_bounds
from backups.reports import Report, report_range
from tenants.models import Tenant

from .models import Drill, DrillStatus

FORMATS = {"pdf": "application/pdf", "json": "application/json"}
#: The most drills one report lists (newest kept); the summary still counts them all.
MAX_DRILLS = 2000


def _iso(value) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def drill_evidence(drill: Drill) -> dict[str, Any]:
    """One drill as the evidence shows it (also the API's drill body)."""
    return {
        "id": drill.pk,
        "schedule_id": drill.job_id,
        "schedule_name": drill.job_name,
        "trigger": drill.trigger,
        "scheduled_for": _iso(drill.scheduled_for),
        "status": drill.status,
        "passed": drill.passed,
        "backup_id": drill.backup_ref,
        "backup_checksum": f"sha256:{drill.backup_checksum}" if drill.backup_checksum else "",
        "checksum_verified": drill.checksum_verified,
        "backup_taken_at": _iso(drill.backup_taken_at),
        "started_at": _iso(drill.started_at),
        "completed_at": _iso(drill.completed_at),
        "rto_seconds": drill.rto_seconds,
        "rpo_seconds": drill.rpo_seconds,
        "duration_seconds": drill.duration_seconds,
        "assertions": drill.assertions or [],
        "scratch_dropped": bool((drill.scratch or {}).get("dropped")) if drill.scratch else None,
        "error": drill.error_message,
        "created_at": _iso(drill.created_at),
    }


def evidence_data(*, tenant: Tenant, start: date, end: date) -> dict[str, Any]:
    low, high = day_bounds(start, end)
    qs = Drill.objects.filter(
        tenant=tenant, status__in=(DrillStatus.PASSED, DrillStatus.FAILED), created_at__gte=low, created_at__lt=high
    ).order_by("-created_at", "-id")
    total = qs.count()
    drills = [drill_evidence(d) for d in qs[:MAX_DRILLS]]
    rtos = [d["rto_seconds"] for d in drills if d["rto_seconds"] is not None]
    rpos = [d["rpo_seconds"] for d in drills if d["rpo_seconds"] is not None]
    passed = qs.filter(passed=True).count()
    return {
        "workspace": {"slug": tenant.slug, "name": tenant.name},
        "period": {"start_date": start.isoformat(), "end_date": end.isoformat()},
        "generated_at": _iso(timezone.now()),
        "summary": {
            "drills": total,
            "passed": passed,
            "failed": total - passed,
            "rto_seconds_median": round(statistics.median(rtos), 3) if rtos else None,
            "rto_seconds_max": max(rtos) if rtos else None,
            "rpo_seconds_max": max(rpos) if rpos else None,
        },
        "drills": drills,
        "truncated": total > len(drills),
    }


def evidence_generate(
    *, tenant: Tenant, format: str = "pdf", start: date | None = None, end: date | None = None, location: str = "body"
) -> Report:
    """The workspace's drill evidence for ``start``..``end`` (UTC days; default the last 30).
    ``location`` says where the caller's fields are, for its validation errors (``query``)."""
    if format not in FORMATS:
        raise ValidationFailed(details={"format": [f"Use one of: {', '.join(FORMATS)}."]}, location=location)
    for name, value in (("start_date", start), ("end_date", end)):
        if value is not None and not date(1970, 1, 1) <= value <= date(9999, 12, 30):
            raise ValidationFailed(details={name: ["Must be between 1970-01-01 and 9999-12-30."]}, location=location)
    try:
        start, end = report_range(start, end)
    except ValidationFailed as exc:
        raise ValidationFailed(exc.message, details=exc.details, location=location) from None
    data = evidence_data(tenant=tenant, start=start, end=end)
    filename = f"drill_evidence_{tenant.slug}_{start:%Y%m%d}_{end:%Y%m%d}.{format}"
    emit(
        action="drill_evidence_export",
        tenant=tenant,
        resource_type="report",
        resource_id=filename,
        details={"format": format, "start_date": start, "end_date": end, "drills": data["summary"]["drills"]},
    )
    body = json.dumps(data, cls=DjangoJSONEncoder, indent=2).encode("utf-8") if format == "json" else render_pdf(data)
    return Report(filename, FORMATS[format], iter([body]))


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.1f} s" if value < 120 else humanize.clock(value)


def _assertion_label(item: dict) -> str:
    kind = item.get("type")
    if kind == "checksum":
        return "artifact SHA-256"
    if kind == "row_count":
        where = f"{item['database']}: " if item.get("database") else ""
        return f"rows in {where}{item.get('table')}"
    if kind == "sql":
        return f"SQL {item.get('sql')}"
    if kind == "file":
        return f"file {item.get('path')}" + (" (SHA-256)" if item.get("sha256") else "")
    return str(kind)


def _expected(item: dict) -> str:
    if item.get("type") == "row_count":
        return str(item["expect"]) if "expect" in item else f">= {item.get('min')}"
    if item.get("type") == "sql":
        return json.dumps(item["expect"]) if "expect" in item else "truthy"
    if item.get("type") == "file":
        return item.get("sha256") or "exists"
    return str(item.get("expect") or "")


def render_pdf(data: dict[str, Any]) -> bytes:
    """A4: title and period, a summary, one table of drills, then each drill's assertions."""
    from xml.sax.saxutils import escape

    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.lib.units import mm
    from reportlab.platypus import (
        KeepTogether,
        Paragraph,
        SimpleDocTemplate,
        Spacer,
        Table,
        TableStyle,
    )

    styles = getSampleStyleSheet()
    small = styles["BodyText"].clone("small", fontSize=7.5, leading=9)
    out = io.BytesIO()
    period = data["period"]
    doc = SimpleDocTemplate(
        out,
        pagesize=A4,
        leftMargin=15 * mm,
        rightMargin=15 * mm,
        topMargin=15 * mm,
        bottomMargin=15 * mm,
        author="Backup platform",
        title=f"Restore drill evidence {period['start_date']} - {period['end_date']}",
    )
    grid = TableStyle(
        [
            ("GRID", (0, 0), (-1, -1), 0.25, colors.grey),
            ("FONTSIZE", (0, 0), (-1, -1), 8),
            ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e8eef6")),
            ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ]
    )
    green, red = colors.HexColor("#2e7d32"), colors.HexColor("#c62828")

    def p(text: Any) -> Paragraph:
        return Paragraph(escape(str(text if text is not None else "-")), small)

    s = data["summary"]
    story: list = [
        Paragraph(f"Restore drill evidence: {escape(data['workspace']['name'])}", styles["Title"]),
        Paragraph(
            f"{period['start_date']} to {period['end_date']} (UTC), generated {data['generated_at']}", styles["Normal"]
        ),
        Spacer(1, 5 * mm),
        Paragraph("Summary", styles["Heading2"]),
        Table(
            [
                ["Drills", "Passed", "Failed", "Median RTO", "Longest RTO", "Largest RPO"],
                [
                    s["drills"],
                    s["passed"],
                    s["failed"],
                    _seconds(s["rto_seconds_median"]),
                    _seconds(s["rto_seconds_max"]),
                    _seconds(s["rpo_seconds_max"]),
                ],
            ],
            style=grid,
            hAlign="LEFT",
        ),
        Spacer(1, 3 * mm),
        Paragraph(
            "RTO: time to restore the backup into a scratch copy. RPO: age of the restored data at drill "
            "time. Each drill restores the job's latest completed backup, checks its SHA-256, runs the "
            "job's assertions and drops the scratch copy.",
            small,
        ),
        Paragraph("Drills", styles["Heading2"]),
    ]
    if not data["drills"]:
        story.append(Paragraph("No restore drill finished in this period.", styles["Normal"]))
    else:
        rows = [["Drill", "Schedule", "Backup", "Started (UTC)", "RTO", "RPO", "Assertions", "Result"]]
        result_styles = []
        for index, d in enumerate(data["drills"], start=1):
            ok = sum(1 for a in d["assertions"] if a.get("passed"))
            rows.append(
                [
                    str(d["id"]),
                    p(d["schedule_name"]),
                    str(d["backup_id"] or "-"),
                    (d["started_at"] or "-")[:19].replace("T", " "),
                    _seconds(d["rto_seconds"]),
                    _seconds(d["rpo_seconds"]),
                    f"{ok}/{len(d['assertions'])}",
                    "passed" if d["passed"] else "failed",
                ]
            )
            result_styles.append(("TEXTCOLOR", (7, index), (7, index), green if d["passed"] else red))
        table = Table(
            rows,
            colWidths=[13 * mm, 40 * mm, 15 * mm, 30 * mm, 18 * mm, 18 * mm, 20 * mm, 16 * mm],
            repeatRows=1,
            style=grid,
            hAlign="LEFT",
        )
        table.setStyle(TableStyle(result_styles))
        story.append(table)
        if data["truncated"]:
            story.append(Paragraph(f"Only the newest {len(data['drills'])} of {s['drills']} drills are listed.", small))
        story.append(Paragraph("Assertions", styles["Heading2"]))
        for d in data["drills"]:
            head = Paragraph(
                f"Drill {d['id']} - {escape(d['schedule_name'] or '')} - backup {d['backup_id'] or '-'} "
                f"({escape(d['backup_checksum'] or 'no checksum')}), data from {d['backup_taken_at'] or '-'}",
                styles["Heading4"],
            )
            rows = [["Assertion", "Expected", "Actual", "Result"]]
            for a in d["assertions"]:
                rows.append(
                    [
                        p(_assertion_label(a)),
                        p(_expected(a)),
                        p(a.get("error") or a.get("actual")),
                        "passed" if a.get("passed") else "failed",
                    ]
                )
            block = [head]
            if len(rows) > 1:
                block.append(Table(rows, colWidths=[70 * mm, 40 * mm, 50 * mm, 16 * mm], style=grid, repeatRows=1))
            if d["error"]:
                block.append(p(f"Error: {d['error']}"))
            block.append(p(f"Scratch copy dropped: {'yes' if d['scratch_dropped'] else 'no'}"))
            story.append(KeepTogether(block[:2]))
            story += block[2:]
            story.append(Spacer(1, 2 * mm))
    doc.build(story)
    return out.getvalue()
