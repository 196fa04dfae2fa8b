"""Fixtures for the storage and connectivity tests: the shared real services."""

from tests.fixtures.services import *  # noqa: F403
