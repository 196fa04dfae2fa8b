"""The fake Acronis Cyber Protect Cloud server for tests and benchmarks (not product code)."""

from __future__ import annotations

from tests.support.acronis_fake.protocol import Injection, RecordedRequest
from tests.support.acronis_fake.query import parse_time
from tests.support.acronis_fake.server import FakeAcronis

__all__ = ["FakeAcronis", "Injection", "RecordedRequest", "parse_time"]
