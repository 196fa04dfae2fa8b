"""Celery tasks of the backups domain: thin, take ids, call one service."""

from __future__ import annotations

from celery import shared_task

from backups.services.servers import server_check_all_health


@shared_task(name="backups.check_server_health", ignore_result=True, soft_time_limit=240, time_limit=300)
def check_server_health() -> dict[str, int]:
    """Beat (every 5 minutes): probe every server, publish ``server_health`` on a change."""
    return server_check_all_health()
