"""Real services for the contract tests (PostgreSQL, moto's S3, the SFTP server)."""

from __future__ import annotations

from tests.fixtures.services import *  # noqa: F403
