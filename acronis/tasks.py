"""Beat-driven Acronis poller (thin: the work is in ``acronis.services.poll_tenant``)."""

from __future__ import annotations

import logging

from celery import shared_task

from acronis import services
from acronis.errors import AcronisError
from acronis.models import AcronisConfig
from tenants.models import Tenant

logger = logging.getLogger(__name__)


@shared_task(name="acronis.poll_all")
def poll_all() -> int:
    """Queue one poll per configured tenant (so one slow data center delays no other)."""
    tenant_ids = list(AcronisConfig.objects.filter(tenant__is_active=True).values_list("tenant_id", flat=True))
    for tenant_id in tenant_ids:
        poll_tenant.delay(tenant_id)
    return len(tenant_ids)


@shared_task(name="acronis.poll_tenant", acks_late=True, ignore_result=True)
def poll_tenant(tenant_id: int) -> dict | None:

    tenant = Tenant.objects.filter(pk=tenant_id, is_active=True).first()
    if tenant is None or not AcronisConfig.objects.filter(tenant=tenant).exists():
        return None
    try:
        result = services.poll_tenant(tenant=tenant)
    except AcronisError as exc:
        # Next beat retries; the error carries no secret (acronis/errors.py).
        logger.warning("Acronis poll of tenant %s failed: %s", tenant_id, exc)
        services.poll_outcome_record(tenant=tenant, error=exc)
        return None
    services.poll_outcome_record(tenant=tenant, error=None)
    return result
