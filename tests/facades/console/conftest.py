"""Real PostgreSQL, moto's S3 server and the backup engine, for the console's routes."""

from __future__ import annotations

from tests.e2e.conftest import (  # noqa: F401
    cleanup_pg,
    local_storage,
    pg_server_row,
    pg_source_db,
)
from tests.fixtures.services import *  # noqa: F403
