"""``manage.py decrypt``: the offline decrypt, usable with no database configured.

It only needs the exported key file (see README "Artifact format and offline restore"); the
same code runs as ``python -m backups.pipeline.decrypt_cli`` without Django at all.
"""

from __future__ import annotations

import sys

from django.core.management.base import BaseCommand, CommandError

from backups.pipeline import decrypt_cli


class Command(BaseCommand):
    help = "Decrypt a backup artifact with an exported key file (no database needed)."
    requires_system_checks: list = []
    requires_migrations_checks = False

    def add_arguments(self, parser):
        parser.add_argument("--key-file", required=True)
        parser.add_argument("--decompress", action="store_true")
        parser.add_argument("--force", action="store_true")
        parser.add_argument("input")
        parser.add_argument("output")

    def handle(self, *args, key_file, decompress, force, input, output, **opts):
        argv = ["--key-file", key_file, input, output]
        if decompress:
            argv.insert(0, "--decompress")
        if force:
            argv.insert(0, "--force")
        code = decrypt_cli.main(argv)
        if code:
            raise CommandError(f"decrypt failed (exit {code})", returncode=code)
        sys.stdout.flush()
