"""``manage.py exportkey --tenant SLUG``: write the tenant's key ring file (every data key)."""

from __future__ import annotations

import os

from django.core.management.base import BaseCommand, CommandError

from audit.context import acting
from backups.keys import tenant_key_export
from tenants.models import Tenant


class Command(BaseCommand):
    help = (
        "Write a tenant's backup key ring file (every data key; for restores without the platform "
        "and for `importkey` on a rebuilt platform). Keep it secret."
    )

    def add_arguments(self, parser):
        parser.add_argument("--tenant", required=True)
        parser.add_argument("--output", help="file to write (mode 0600); default: <slug>.keys.json")

    def handle(self, *args, tenant, output, **opts):
        tenant_obj = Tenant.objects.filter(slug=tenant).first()
        if tenant_obj is None:
            raise CommandError(f"No tenant '{tenant}'")
        with acting(source="cli"):
            filename, content = tenant_key_export(tenant=tenant_obj, via="cli")
        path = output or filename
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(content)
        os.chmod(path, 0o600)  # O_CREAT's mode does not apply to a file that existed
        self.stdout.write(self.style.SUCCESS(f"Wrote {path}"))
