"""Real services for these tests (S3, SFTP, throwaway databases)."""

from tests.fixtures.services import *  # noqa: F403
