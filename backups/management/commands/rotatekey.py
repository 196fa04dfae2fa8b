"""``manage.py rotatekey --tenant SLUG``: a new data key for the tenant's new backups."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from audit.context import acting
from backups.keys import tenant_key_rotate
from tenants.models import Tenant


class Command(BaseCommand):
    help = (
        "Give a tenant a new data key for its new backups; the older keys stay in its key ring for "
        "the backups they encrypted. Export the key ring again afterwards."
    )

    def add_arguments(self, parser):
        parser.add_argument("--tenant", required=True)

    def handle(self, *args, tenant, **opts):
        tenant_obj = Tenant.objects.filter(slug=tenant).first()
        if tenant_obj is None:
            raise CommandError(f"No tenant '{tenant}'")
        with acting(source="cli"):
            row = tenant_key_rotate(tenant=tenant_obj)
        ring = tenant_obj.data_keys.count()
        self.stdout.write(
            self.style.SUCCESS(
                f"New current key {row.key_id} (fingerprint {row.fingerprint}); {ring} key(s) in the ring. "
                f"Export it again: manage.py exportkey --tenant {tenant}"
            )
        )
