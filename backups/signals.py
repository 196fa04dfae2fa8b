"""What the backups domain announces; higher apps (schedules) listen.

Sent by the services after the fact, outside any view: the listeners are connected in their
own ``AppConfig.ready`` so that ``backups`` never imports them (no import cycle).
"""

from __future__ import annotations

from django.dispatch import Signal

# A backup completed (its artifact stored and checksum recorded); ``backup`` is the row.
backup_completed = Signal()
# The reaper failed a backup whose worker died; ``backup`` is the row (status failed).
backup_reaped = Signal()
