"""Backup reports as files: PDF (reportlab), HTML (a Django template, no external assets)
and CSV (system-backup-recovery.rst "Generate Report").

PDF and HTML show the summary, a day-by-day chart of successful and failed backups and of
the size stored, the failures with their errors, and the verification results; the CSV has
one row per backup. A tenant gets at most one report a minute (``REPORT_RATE_SECONDS``).
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta

from django.conf import settings
from django.core.cache import cache
from django.template.loader import render_to_string
from django.utils import timezone

from audit.services import emit
from backupplatform import humanize
from backupplatform.errors import TooManyOperations, ValidationFailed
from backupplatform.isotime import utc_iso
from tenants.models import Tenant

from .backup_selectors import backup_console_type
from .models import BackupStatus
from .reporting import ReportData, report_backups, report_data

FORMATS = {"pdf": "application/pdf", "html": "text/html; charset=utf-8", "csv": "text/csv; charset=utf-8"}
#: The longest range one report covers (a year, leap day included).
MAX_DAYS = 366
CSV_COLUMNS = [
    "id",
    "name",
    "status",
    "type",
    "trigger",
    "created_at",
    "started_at",
    "completed_at",
    "duration_seconds",
    "size_bytes",
    "stored_bytes",
    "compression",
    "encrypted",
    "checksum_sha256",
    "storage",
    "verified",
    "verified_at",
    "components",
    "schedule_id",
    "error",
]


@dataclass
class Report:
    """A generated report: ``chunks`` yields its bytes (the CSV streams, row by row)."""

    filename: str
    content_type: str
    chunks: Iterator[bytes]


def rate_seconds() -> int:
    return int(getattr(settings, "REPORT_RATE_SECONDS", 60))


def _take_slot(tenant: Tenant) -> None:
    """system-backup-recovery.rst "Rate Limiting": 1 report a minute, per tenant, shared by
    every process through the cache (Redis)."""
    window = rate_seconds()
    key = f"reports:slot:{tenant.pk}"
    until = time.time() + window
    if cache.add(key, until, timeout=window):
        return
    held = cache.get(key)
    wait = max(1, round((held if isinstance(held, int | float) else until) - time.time() + 0.5))
    raise TooManyOperations(
        f"One report per {window} seconds; try again in {wait} seconds",
        code="RATE_LIMITED",
        details={"retry_after": wait},
        headers={"Retry-After": str(wait)},
    )


def report_range(start: date | None, end: date | None) -> tuple[date, date]:
    """The report's days: the last 30 by default; at most ``MAX_DAYS``."""
    today = timezone.now().date()
    end = end or today
    start = start or (end - timedelta(days=29))
    if start > end:
        raise ValidationFailed(details={"end_date": ["Must not be before start_date."]})
    if (end - start).days + 1 > MAX_DAYS:
        raise ValidationFailed(details={"start_date": [f"A report covers at most {MAX_DAYS} days."]})
    return start, end


def report_generate(
    *, tenant: Tenant, format: str, start: date | None = None, end: date | None = None, actor=None
) -> Report:
    """Build the tenant's report for ``start``..``end`` (UTC days, inclusive)."""
    if format not in FORMATS:
        raise ValidationFailed(details={"format": [f"Use one of: {', '.join(FORMATS)}."]})
    start, end = report_range(start, end)
    _take_slot(tenant)
    filename = f"backup_report_{start:%Y%m%d}_{end:%Y%m%d}.{format}"
    emit(
        action="report_generate",
        tenant=tenant,
        resource_type="report",
        resource_id=filename,
        actor=actor,
        details={"format": format, "start_date": start, "end_date": end},
    )
    if format == "csv":
        return Report(filename, FORMATS[format], csv_rows(tenant=tenant, start=start, end=end))
    data = report_data(tenant=tenant, start=start, end=end)
    body = render_pdf(data) if format == "pdf" else render_html(data).encode("utf-8")
    return Report(filename, FORMATS[format], iter([body]))


# --- CSV --------------------------------------------------------------------------------------


def csv_rows(*, tenant: Tenant, start: date, end: date) -> Iterator[bytes]:
    """One line per backup, oldest first, read from the database in batches."""

    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def flush() -> bytes:
        value = buffer.getvalue().encode("utf-8")
        buffer.seek(0)
        buffer.truncate()
        return value

    writer.writerow(CSV_COLUMNS)
    yield flush()
    rows = (
        report_backups(tenant=tenant, start=start, end=end)
        .select_related("storage", "job")
        .order_by("created_at", "id")
        .iterator(chunk_size=2000)
    )
    for b in rows:
        writer.writerow(
            [
                b.pk,
                b.name,
                b.status,
                backup_console_type(b),
                b.trigger,
                _iso(b.created_at),
                _iso(b.started_at),
                _iso(b.completed_at),
                b.duration_seconds if b.duration_seconds is not None else "",
                b.size_bytes,
                b.stored_bytes,
                b.compression,
                "yes" if b.encrypted else "no",
                b.checksum,
                b.storage.name if b.storage_id else "",
                "yes" if b.verified else "no",
                _iso(b.verified_at),
                " ".join(b.components or []),
                b.job.public_id if b.job_id else "",
                b.error_message,
            ]
        )
        if buffer.tell() > 64 * 1024:
            yield flush()
    yield flush()


def _iso(value) -> str:
    return utc_iso(value) or ""


# --- HTML -------------------------------------------------------------------------------------


def _chart_bars(data: ReportData, *, width: int = 720, height: int = 160) -> dict:
    """Bar geometry for the HTML chart (an inline SVG: no script, no external asset)."""
    days = data.timeline
    step = width / max(1, len(days))
    top = max([d["successful"] + d["failed"] for d in days] + [1])
    top_size = max([d["size_bytes"] for d in days] + [1])
    bars = []
    for i, d in enumerate(days):
        ok_h = d["successful"] * height / top
        fail_h = d["failed"] * height / top
        size_h = d["size_bytes"] * height / top_size
        bars.append(
            {
                "x": round(i * step + step * 0.1, 2),
                "w": round(max(step * 0.8, 1), 2),
                "ok_y": round(height - ok_h, 2),
                "ok_h": round(ok_h, 2),
                "fail_y": round(height - ok_h - fail_h, 2),
                "fail_h": round(fail_h, 2),
                "size_y": round(height - size_h, 2),
                "size_h": round(size_h, 2),
                "label": d["date"].isoformat(),
                "successful": d["successful"],
                "failed": d["failed"],
                "size": humanize.size(d["size_bytes"]),
            }
        )
    every = max(1, len(days) // 8)
    labels = [{"x": b["x"], "text": b["label"]} for i, b in enumerate(bars) if i % every == 0]
    return {
        "width": width,
        "height": height,
        "bars": bars,
        "labels": labels,
        "max_count": top,
        "max_size": humanize.size(top_size),
    }


def _context(data: ReportData) -> dict:
    s = data.summary
    return {
        "data": data,
        "tenant": data.tenant,
        "summary": s,
        "success_rate": humanize.percent(s["success_rate"]) if s["success_rate"] is not None else "n/a",
        "total_size": humanize.size(s["size"]),
        "average_size": humanize.size(s["average"]),
        "stored": humanize.size(s["stored"]),
        "average_duration": humanize.clock(s["average_duration_seconds"]),
        "by_type": [
            {"type": k, "count": v["count"], "size": humanize.size(v["size_bytes"])} for k, v in data.by_type.items()
        ],
        "storages": [
            {"name": k, "type": v["type"], "count": v["count"], "size": humanize.size(v["size_bytes"])}
            for k, v in data.storage_distribution.items()
        ],
        "chart": _chart_bars(data),
        "failed_status": BackupStatus.FAILED,
    }


def render_html(data: ReportData) -> str:
    return render_to_string("reports/backup_report.html", _context(data))


# --- PDF --------------------------------------------------------------------------------------


def render_pdf(data: ReportData) -> bytes:
    """A4 report: title, summary table, two day-by-day charts, failures, verifications."""
    from reportlab.graphics.charts.barcharts import VerticalBarChart
    from reportlab.graphics.charts.legends import Legend
    from reportlab.graphics.shapes import Drawing, String
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.lib.units import mm
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    ctx = _context(data)
    styles = getSampleStyleSheet()
    small = styles["BodyText"].clone("small", fontSize=8, leading=10)
    out = io.BytesIO()
    doc = SimpleDocTemplate(
        out,
        pagesize=A4,
        leftMargin=15 * mm,
        rightMargin=15 * mm,
        topMargin=15 * mm,
        bottomMargin=15 * mm,
        title=f"Backup report {data.start} - {data.end}",
        author="Backup platform",
    )
    grid = TableStyle(
        [
            ("GRID", (0, 0), (-1, -1), 0.25, colors.grey),
            ("FONTSIZE", (0, 0), (-1, -1), 8),
            ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e8eef6")),
            ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ]
    )
    s = data.summary
    story = [
        Paragraph(f"Backup report: {data.tenant.name}", styles["Title"]),
        Paragraph(
            f"{data.start:%Y-%m-%d} to {data.end:%Y-%m-%d} (UTC), generated {data.generated_at:%Y-%m-%d %H:%M} UTC",
            styles["Normal"],
        ),
        Spacer(1, 6 * mm),
        Paragraph("Summary", styles["Heading2"]),
        Table(
            [
                ["Backups", "Successful", "Failed", "Success rate", "Size stored", "Average size", "Average duration"],
                [
                    s["total"],
                    s["successful"],
                    s["failed"],
                    ctx["success_rate"],
                    ctx["total_size"],
                    ctx["average_size"] or "-",
                    ctx["average_duration"] or "-",
                ],
            ],
            style=grid,
            hAlign="LEFT",
        ),
        Spacer(1, 4 * mm),
    ]
    days = data.timeline
    every = max(1, len(days) // 8)
    names = [d["date"].strftime("%m-%d") if i % every == 0 else "" for i, d in enumerate(days)]

    def bars(title: str, series: list[list[float]], fills: list, legend: list[str], unit: str) -> Drawing:
        drawing = Drawing(175 * mm, 62 * mm)
        chart = VerticalBarChart()
        chart.x, chart.y, chart.width, chart.height = 30, 30, 150 * mm, 45 * mm
        chart.data = series
        chart.categoryAxis.categoryNames = names
        chart.categoryAxis.labels.fontSize = 6
        chart.valueAxis.labels.fontSize = 6
        chart.valueAxis.valueMin = 0
        chart.categoryAxis.style = "stacked"
        chart.barSpacing = 0
        chart.groupSpacing = 1
        for index, fill in enumerate(fills):
            chart.bars[index].fillColor = fill
            chart.bars[index].strokeColor = None
        drawing.add(chart)
        drawing.add(String(30, 57 * mm, f"{title} ({unit})", fontSize=9))
        key = Legend()
        key.x, key.y, key.fontSize, key.columnMaximum = 120 * mm, 60 * mm, 7, 1  # one row, above the bars
        key.colorNamePairs = list(zip(fills, legend, strict=True))
        drawing.add(key)
        return drawing

    story += [
        Paragraph("Backups per day", styles["Heading2"]),
        bars(
            "Successful and failed backups",
            [[d["successful"] for d in days], [d["failed"] for d in days]],
            [colors.HexColor("#2e7d32"), colors.HexColor("#c62828")],
            ["successful", "failed"],
            "count",
        ),
        bars(
            "Size stored per day",
            [[round(d["size_bytes"] / 1e6, 3) for d in days]],
            [colors.HexColor("#1565c0")],
            ["stored"],
            "MB",
        ),
        Paragraph("Failures", styles["Heading2"]),
    ]
    if data.failures:
        story.append(
            Table(
                [["Backup", "When (UTC)", "Storage", "Error"]]
                + [
                    [
                        Paragraph(f["name"] or str(f["id"]), small),
                        f["created_at"].strftime("%Y-%m-%d %H:%M"),
                        f["storage"] or "-",
                        Paragraph((f["error"] or "no reason recorded")[:400], small),
                    ]
                    for f in data.failures
                ],
                colWidths=[45 * mm, 28 * mm, 25 * mm, 82 * mm],
                style=grid,
                repeatRows=1,
            )
        )
        if data.failures_total > len(data.failures):
            story.append(Paragraph(f"... and {data.failures_total - len(data.failures)} more", small))
    else:
        story.append(Paragraph("No backup failed in this period.", styles["Normal"]))
    v = data.verifications_summary
    story += [
        Paragraph("Verifications", styles["Heading2"]),
        Paragraph(
            f"{v['total']} verification(s): {v['passed']} passed, {v['failed']} failed, {v['other']} not completed.",
            styles["Normal"],
        ),
    ]
    if data.verifications:
        story.append(
            Table(
                [["Backup", "Test", "Status", "Result", "Completed (UTC)", "Error"]]
                + [
                    [
                        Paragraph(x["backup"] or str(x["backup_id"]), small),
                        x["test_type"],
                        x["status"],
                        "passed" if x["passed"] else "failed" if x["passed"] is False else "-",
                        x["completed_at"].strftime("%Y-%m-%d %H:%M") if x["completed_at"] else "-",
                        Paragraph((x["error"] or "")[:300], small),
                    ]
                    for x in data.verifications
                ],
                colWidths=[45 * mm, 22 * mm, 20 * mm, 15 * mm, 28 * mm, 50 * mm],
                style=grid,
                repeatRows=1,
            )
        )
    doc.build(story)
    return out.getvalue()
