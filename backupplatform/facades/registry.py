"""Every facade by name (the first column of ``endpoints.tsv``)."""

from __future__ import annotations

from backupplatform.facades.acronis.conventions import ACRONIS
from backupplatform.facades.console.conventions import CONSOLE
from backupplatform.facades.jobs.conventions import JOBS
from backupplatform.facades.platform.conventions import PLATFORM
from backupplatform.facades.workspace.conventions import WORKSPACE

FACADES = {f.name: f for f in (ACRONIS, CONSOLE, JOBS, PLATFORM, WORKSPACE)}
