"""The workspace facade's plan rule (workspace-backup-api.md: backup services are
"Available for dedicated plan workspaces"; "403 Forbidden - Dedicated Plan Required").

Every backup route of this facade inherits ``DedicatedPlanMixin``: backup-storages,
backup-storage-usage, and the applications routes with their backup-policy, backups and
restores. Our ``/applications`` CRUD (an extension) needs it too: in this facade an
application exists only to be backed up, so a shared-plan workspace has nothing to do with
one. (The console facade's components use the default application through the service
``application_get_default`` and are not behind this rule.)

The plan is checked right after authentication and before the role: a shared-plan
workspace does not have the feature at all, whoever asks.
"""

from __future__ import annotations

from rest_framework.permissions import BasePermission, IsAuthenticated

from backupplatform.errors import FeatureNotAvailable
from backupplatform.facades.base import RolePermission
from tenants.models import Plan


class DedicatedPlanRequired(BasePermission):
    """Refuse with ``FEATURE_NOT_AVAILABLE`` (details ``current_plan``/``required_plan``)."""

    def has_permission(self, request, view) -> bool:
        tenant = getattr(request, "tenant", None)
        if tenant is not None and tenant.plan != Plan.DEDICATED:
            raise FeatureNotAvailable(details={"current_plan": tenant.plan, "required_plan": Plan.DEDICATED.value})
        return True


class DedicatedPlanMixin:
    """Put first in a workspace view's bases: its backup features need the dedicated plan."""

    permission_classes = [IsAuthenticated, DedicatedPlanRequired, RolePermission]
