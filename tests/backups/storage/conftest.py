"""Fixtures for the storage and connectivity tests: the shared real services, and the
database fixtures of the end-to-end backup tests (backups through each storage)."""

from tests.e2e.conftest import cleanup_pg, pg_server_row, pg_source_db  # noqa: F401
from tests.fixtures.services import *  # noqa: F403
