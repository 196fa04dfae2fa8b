"""Access changes reach open WebSockets whatever wrote them (API, admin, command, shell)."""

from __future__ import annotations

from django.conf import settings
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from .models import ApiKey, Membership, Tenant
from .realtime import announce_access_change, api_key_group, tenant_access_group, user_group


@receiver([post_save, post_delete], sender=Membership, dispatch_uid="ws-membership")
def membership_changed(sender, instance: Membership, **kwargs) -> None:
    announce_access_change(user_group(instance.user_id))


@receiver([post_save, post_delete], sender=settings.AUTH_USER_MODEL, dispatch_uid="ws-user")
def user_changed(sender, instance, created: bool = False, **kwargs) -> None:
    if not created:
        announce_access_change(user_group(instance.pk))


@receiver([post_save, post_delete], sender=ApiKey, dispatch_uid="ws-api-key")
def api_key_changed(sender, instance: ApiKey, created: bool = False, **kwargs) -> None:
    if not created:
        announce_access_change(api_key_group(instance.pk))


@receiver([post_save, post_delete], sender=Tenant, dispatch_uid="ws-tenant")
def tenant_changed(sender, instance: Tenant, created: bool = False, **kwargs) -> None:
    if not created:
        announce_access_change(tenant_access_group(instance.pk))
