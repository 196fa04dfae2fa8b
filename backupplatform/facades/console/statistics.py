"""system-backup-recovery.rst "Get Backup Statistics": ``GET /statistics?period=``.

The figures are aggregate queries (``backups.reporting.backup_statistics``): the same few
queries whatever the number of backups.
"""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers

from backupplatform import humanize
from backupplatform.errors import ValidationFailed
from backupplatform.facades.base import respond
from backupplatform.isotime import utc_iso as iso
from backups.reporting import PERIODS, Statistics, backup_statistics, distribution_by_kind
from tenants.models import Role

from .conventions import ConsoleView


def sized(count: int, size_bytes: int, **extra) -> dict:
    return {"count": count, "size": humanize.size(size_bytes), "size_bytes": size_bytes, **extra}


def statistics_body(stats: Statistics) -> dict:
    s = stats.summary
    growth = stats.growth_bytes_per_week
    return {
        "period": stats.period,
        "since": iso(stats.since),
        "until": iso(stats.until),
        "summary": {
            "total_backups": s["total"],
            "successful": s["successful"],
            "failed": s["failed"],
            "cancelled": s["cancelled"],
            "running": s["running"],
            "success_rate": humanize.percent(s["success_rate"]),
            "success_rate_percent": s["success_rate"],
            "total_size": humanize.size(s["size"]),
            "total_size_bytes": s["size"],
            "original_size_bytes": s["raw"],
            "average_size": humanize.size(s["average"]),
            "average_size_bytes": s["average"],
            "average_duration": humanize.clock(s["average_duration_seconds"]),
            "average_duration_seconds": s["average_duration_seconds"],
            "storage_used": humanize.size(s["stored"]),
            "storage_used_bytes": s["stored"],
            "storage_growth": f"{humanize.size(growth)}/week",
            "storage_growth_bytes_per_week": growth,
        },
        "by_type": {kind: sized(v["count"], v["size_bytes"]) for kind, v in stats.by_type.items()},
        "timeline": [
            {
                "date": d["date"].isoformat(),
                "total": d["total"],
                "successful": d["successful"],
                "failed": d["failed"],
                "size": humanize.size(d["size_bytes"]),
                "size_bytes": d["size_bytes"],
            }
            for d in stats.timeline
        ],
        "storage_distribution": {
            kind: sized(
                v["count"],
                v["size_bytes"],
                locations={
                    name: sized(s["count"], s["size_bytes"], type=s["type"]) for name, s in v["locations"].items()
                },
            )
            for kind, v in distribution_by_kind(stats.storage_distribution).items()
        },
    }


_n = {"allow_null": True}
_sized = inline_serializer(
    "ConsoleSizedCount",
    {"count": serializers.IntegerField(), "size": serializers.CharField(), "size_bytes": serializers.IntegerField()},
)
StatisticsShape = inline_serializer(
    "ConsoleStatistics",
    {
        "period": serializers.CharField(help_text="one of: " + ", ".join(list(PERIODS))),
        "since": serializers.CharField(),
        "until": serializers.CharField(),
        "summary": inline_serializer(
            "ConsoleStatisticsSummary",
            {
                "total_backups": serializers.IntegerField(),
                "successful": serializers.IntegerField(),
                "failed": serializers.IntegerField(),
                "cancelled": serializers.IntegerField(),
                "running": serializers.IntegerField(),
                "success_rate": serializers.CharField(**_n, help_text='e.g. "96.7%"; null when nothing finished'),
                "success_rate_percent": serializers.FloatField(**_n),
                "total_size": serializers.CharField(),
                "total_size_bytes": serializers.IntegerField(),
                "original_size_bytes": serializers.IntegerField(),
                "average_size": serializers.CharField(**_n),
                "average_size_bytes": serializers.IntegerField(**_n),
                "average_duration": serializers.CharField(**_n),
                "average_duration_seconds": serializers.IntegerField(**_n),
                "storage_used": serializers.CharField(),
                "storage_used_bytes": serializers.IntegerField(),
                "storage_growth": serializers.CharField(help_text='e.g. "120 MB/week"'),
                "storage_growth_bytes_per_week": serializers.IntegerField(),
            },
        ),
        "by_type": serializers.DictField(child=_sized),
        "timeline": serializers.ListField(
            child=inline_serializer(
                "ConsoleStatisticsDay",
                {
                    "date": serializers.DateField(),
                    "total": serializers.IntegerField(),
                    "successful": serializers.IntegerField(),
                    "failed": serializers.IntegerField(),
                    "size": serializers.CharField(),
                    "size_bytes": serializers.IntegerField(),
                },
            )
        ),
        "storage_distribution": serializers.DictField(
            help_text="per kind of location (local, cloud, remote), each with its locations by name",
            child=inline_serializer(
                "ConsoleStorageKindShare",
                {
                    "count": serializers.IntegerField(),
                    "size": serializers.CharField(),
                    "size_bytes": serializers.IntegerField(),
                    "locations": serializers.DictField(
                        child=inline_serializer(
                            "ConsoleStorageShare",
                            {
                                "count": serializers.IntegerField(),
                                "size": serializers.CharField(),
                                "size_bytes": serializers.IntegerField(),
                                "type": serializers.CharField(),
                            },
                        )
                    ),
                },
            ),
        ),
    },
)


class StatisticsView(ConsoleView):
    """Counts, sizes, a day-by-day timeline and distributions for a period (viewers)."""

    roles = {"GET": Role.VIEWER}

    @extend_schema(
        operation_id="console_statistics",
        responses={200: StatisticsShape},
        parameters=[OpenApiParameter("period", OpenApiTypes.STR, enum=list(PERIODS), description="default 30d")],
    )
    def get(self, request):
        period = request.query_params.get("period") or "30d"
        if period not in PERIODS:
            raise ValidationFailed(details={"period": [f"Use one of: {', '.join(PERIODS)}."]})
        return respond(statistics_body(backup_statistics(tenant=self.require_tenant(), period=period)))
