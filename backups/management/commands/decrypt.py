"""``manage.py decrypt``: the offline decryptor, usable with no database configured.

It only needs exported key files (see README "Artifact format and restoring without the
platform"); the same code runs as the standalone ``backups/pipeline/decrypt_cli.py``.
"""

from __future__ import annotations

import sys

from django.core.management.base import BaseCommand, CommandError

from backups.pipeline import decrypt_cli


class Command(BaseCommand):
    help = "Check (--check) or decrypt a backup artifact with exported key files (no database needed)."
    requires_system_checks: list = []
    requires_migrations_checks = False

    def add_arguments(self, parser):
        parser.add_argument(
            "--key-file", action="append", required=True, help="key file or key ring; repeat for several"
        )
        parser.add_argument("--check", action="store_true", help="authenticate the whole artifact and write nothing")
        parser.add_argument("--decompress", action="store_true")
        parser.add_argument("--force", action="store_true")
        parser.add_argument(
            "--unpack", metavar="FOLDER", help="application bundles: each member, whole and checked, into a new FOLDER"
        )
        parser.add_argument("input")
        parser.add_argument("output", nargs="?")

    def handle(self, *args, key_file, check, decompress, force, unpack, input, output, **opts):
        argv = [arg for path in key_file for arg in ("--key-file", path)]
        argv += ["--unpack", unpack] if unpack else []
        argv += [flag for flag, on in (("--check", check), ("--decompress", decompress), ("--force", force)) if on]
        argv += [input] + ([output] if output is not None else [])
        code = decrypt_cli.main(argv)
        if code:
            raise CommandError(f"decrypt failed (exit {code})", returncode=code)
        sys.stdout.flush()
