"""``manage.py importkey FILE [--tenant SLUG]``: put exported keys back into a tenant's key ring.

For the worst day: a platform rebuilt from its database backup without the master key, or
from an empty database, gets its tenants' keys back from their exported key files; the keys
are wrapped under the platform's current master key and every old backup restores again.
Runs without the system checks, which refuse to start while the keys cannot be opened.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from audit.context import acting
from backupplatform.errors import DomainError
from backups.keys import MasterKeyError, key_problems, master_key_file_create, tenant_key_import
from backups.pipeline import KeyFileError, load_key_document
from backups.pipeline.keys import read_key_file
from tenants.models import Tenant


class Command(BaseCommand):
    help = "Import an exported key file (one key or a key ring) into a tenant's key ring."
    requires_system_checks: list = []

    def add_arguments(self, parser):
        parser.add_argument("file", help="key file written by exportkey, the API or the admin")
        parser.add_argument("--tenant", help="tenant slug (default: the one named in a key ring file)")
        parser.add_argument(
            "--generate-master-key",
            action="store_true",
            help="local mode, master key file lost: create a new one to wrap the imported keys",
        )

    def handle(self, *args, file, tenant, generate_master_key, **opts):
        try:
            document = load_key_document(file)
            content = read_key_file(file)
        except KeyFileError as exc:
            raise CommandError(str(exc))
        slug = tenant or document.tenant
        if not slug:
            raise CommandError("This key file names no tenant: pass --tenant SLUG")
        if tenant and document.tenant and tenant != document.tenant:
            raise CommandError(f"This key ring belongs to tenant '{document.tenant}', not '{tenant}'")
        tenant_obj = Tenant.objects.filter(slug=slug).first()
        if tenant_obj is None:
            raise CommandError(f"No tenant '{slug}' (create it first: manage.py createtenant {slug})")
        with acting(source="cli"):
            try:
                if generate_master_key:
                    self.stdout.write(f"New master key {master_key_file_create()}")
                done = tenant_key_import(tenant=tenant_obj, content=content)
            except (DomainError, MasterKeyError) as exc:
                raise CommandError(getattr(exc, "message", None) or str(exc))
        for item in done:
            self.stdout.write(f"{item['key_id']} ({item['fingerprint']}): {item['action']}")
        problems = key_problems()
        if problems:
            self.stdout.write(self.style.WARNING("Other keys still cannot be opened: " + " ".join(problems)))
        else:
            self.stdout.write(self.style.SUCCESS("Every tenant key opens with the configured master key."))
