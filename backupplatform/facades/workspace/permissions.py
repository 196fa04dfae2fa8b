"""The workspace facade's plan rule (workspace-backup-api.md: backup services are
"Available for dedicated plan workspaces"; "403 Forbidden - Dedicated Plan Required").

Every backup route of this facade inherits ``DedicatedPlanMixin``: backup-storages,
backup-storage-usage, and the applications routes with their backup-policy, backups and
restores. Our ``/applications`` CRUD (an extension) needs it too: in this facade an
application exists only to be backed up, so a shared-plan workspace has nothing to do with
one.

The plan is checked right after authentication and before the role: a shared-plan
workspace does not have the feature at all, whoever asks. The rule itself is
``tenants/capabilities.py``, which the services and the other facades apply too.
"""

from __future__ import annotations

from tenants import capabilities


class DedicatedPlanMixin:
    """Put first in a workspace view's bases: its backup features need the dedicated plan
    (the facade base checks it, as every facade does: ``FacadeMixin.feature``)."""

    feature = capabilities.BACKUPS
