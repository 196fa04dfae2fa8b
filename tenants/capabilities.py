"""What a tenant's plan allows: one rule, checked by the services (so the admin, the CLI,
Celery and every API agree) and by each facade's views (so reads answer the same).

workspace-backup-api.md: backup services are "Available for dedicated plan workspaces", and a
workspace on another plan gets "403 Forbidden - Dedicated Plan Required" (``FEATURE_NOT_AVAILABLE``
with ``current_plan``/``required_plan``). So on the **shared** plan a workspace has its account
side (login, members, API keys, audit log, notifications, the Acronis monitoring of its own
Acronis tenant) and no backup feature: no servers, storages, applications, backups, restores,
verifications, schedules, jobs, policies or retention, in any API. The **dedicated** plan has all.
"""

from __future__ import annotations

from backupplatform.errors import FeatureNotAvailable

from .models import Plan, Tenant

BACKUPS = "backups"

PLAN_FEATURES: dict[str, frozenset[str]] = {
    Plan.SHARED: frozenset(),
    Plan.DEDICATED: frozenset({BACKUPS}),
}


def has_feature(tenant: Tenant, feature: str = BACKUPS) -> bool:
    return feature in PLAN_FEATURES.get(tenant.plan, frozenset())


def require_feature(tenant: Tenant | None, feature: str = BACKUPS) -> None:
    """Raise ``FeatureNotAvailable`` (403) unless ``tenant``'s plan has ``feature``."""
    if tenant is None or has_feature(tenant, feature):
        return
    required = next(plan for plan, features in PLAN_FEATURES.items() if feature in features)
    raise FeatureNotAvailable(details={"current_plan": tenant.plan, "required_plan": str(required)})
