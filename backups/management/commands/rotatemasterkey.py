"""``manage.py rotatemasterkey``: re-wrap every tenant key under the current master key.

With ``BACKUP_MASTER_KEY`` set: list the new key first and the old one after it
(``BACKUP_MASTER_KEY=new,old``; both open keys meanwhile), run this, then remove the old
key. In local mode (the key file), ``--generate`` makes the new key and does all of it.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from audit.context import acting
from backups.keys import MasterKeyError, master_key_file_rotate, master_key_rotate


class Command(BaseCommand):
    help = "Re-wrap every tenant data key under the current (first) backup master key."
    requires_system_checks: list = []  # it is how a failing key check gets fixed

    def add_arguments(self, parser):
        parser.add_argument(
            "--generate",
            action="store_true",
            help="local mode: generate a new master key in the key file and retire the old one",
        )
        parser.add_argument(
            "--abandon-unreadable",
            action="store_true",
            help="mark keys that no configured master key opens as abandoned instead of "
            "refusing (their backups then need the tenant's exported key file)",
        )

    def handle(self, *args, generate, abandon_unreadable, **opts):
        with acting(source="cli"):
            try:
                if generate:
                    result, retired = master_key_file_rotate(abandon_unreadable=abandon_unreadable)
                else:
                    result, retired = master_key_rotate(abandon_unreadable=abandon_unreadable), None
            except MasterKeyError as exc:
                raise CommandError(str(exc))
        self.stdout.write(
            f"Master key {result.master_fingerprint}: {len(result.rewrapped)} key(s) re-wrapped, "
            f"{len(result.unchanged)} already wrapped by it."
        )
        if result.abandoned:
            self.stdout.write(
                self.style.WARNING(f"Abandoned (no master key opens them): {', '.join(result.abandoned)}")
            )
        if retired is not None:
            self.stdout.write(f"The old master key(s) are kept in {retired}, for database backups made before now.")
        elif generate:
            self.stdout.write("New master key file written (there was no old key to keep).")
        else:
            self.stdout.write(
                "Every key is wrapped by the first master key: older keys may now be removed "
                "from BACKUP_MASTER_KEY (keep them with the database backups made before now)."
            )
