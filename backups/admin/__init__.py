"""The backups app's admin: configuration (servers, applications, storages) and history
(backups, operations, restores, verifications); importing registers them."""

from .configuration import ApplicationAdmin, ServerAdmin, StorageAdmin  # noqa: F401
from .history import BackupAdmin, OperationAdmin, RestoreAdmin, VerificationAdmin  # noqa: F401
from .keys import *  # noqa: F403  (key rings and the export action)
