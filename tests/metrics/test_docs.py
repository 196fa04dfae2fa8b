"""The sample Grafana dashboard and alert rules in docs/ name metrics that /metrics serves."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from django.test import Client
from django.utils import timezone

from audit.models import Delivery, NotificationChannel
from backups.models import Backup
from backups.services.operations import operation_create
from schedules import services as schedule_services

pytestmark = pytest.mark.django_db
DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_every_metric_in_the_dashboard_and_alerts_is_served(settings, tenant_a):
    settings.METRICS_TOKEN = "t"
    from backups import services

    server = services.server_create(tenant=tenant_a, name="pg", type="postgresql", host="127.0.0.1", port=5432)
    job = schedule_services.job_create(
        tenant=tenant_a, name="j", server=server, database_name="shop", schedule_type="hourly"
    )
    now = timezone.now()
    Backup.objects.create(
        tenant=tenant_a, job=job, status="completed", stored_bytes=10, started_at=now, completed_at=now
    )
    operation_create(tenant=tenant_a, kind="backup")
    Delivery.objects.create(tenant=tenant_a, event_type="backup.failed", public_id="evt_x", status="failed")
    NotificationChannel.objects.create(tenant=tenant_a, name="c", type="slack", failing_since=now)
    served = Client().get("/metrics", HTTP_AUTHORIZATION="Bearer t").content.decode()
    exposed = set(re.findall(r"^(backupplatform_\w+?)(?:\{| )", served, re.M))

    rules = yaml.safe_load((DOCS / "prometheus-alerts.yml").read_text())
    expressions = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    dashboard = json.loads((DOCS / "grafana-dashboard.json").read_text())
    expressions += [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    named = {name for expr in expressions for name in re.findall(r"backupplatform_\w+", str(expr))}
    assert len(named) >= 7
    assert named <= exposed, f"not served: {sorted(named - exposed)}"
