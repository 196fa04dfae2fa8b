"""Test and benchmark support code that is not product code (fakes of external services)."""
