"""The backups domain: what to protect (servers, applications, sources), where to keep it
(storages), and what happened (backups, operations, restores, verifications, snapshots)."""

from .applications import Application, Source, SourceType
from .backups import Backup, BackupStatus, BackupTrigger, TenantKey
from .commands import CommandExecution, CommandTemplate, ExecutionStatus
from .copies import BackupCopy, CopyStatus, StoragePolicy
from .operations import (
    Operation,
    OperationKind,
    OperationStatus,
    Restore,
    RestoreStrategy,
    Snapshot,
    Verification,
)
from .servers import HealthStatus, Server, ServerType
from .storage import Storage, StorageStatus, StorageType

__all__ = [
    "Application",
    "Backup",
    "BackupCopy",
    "BackupStatus",
    "BackupTrigger",
    "CommandExecution",
    "CommandTemplate",
    "CopyStatus",
    "ExecutionStatus",
    "HealthStatus",
    "Operation",
    "OperationKind",
    "OperationStatus",
    "Restore",
    "RestoreStrategy",
    "Server",
    "ServerType",
    "Snapshot",
    "Source",
    "SourceType",
    "Storage",
    "StoragePolicy",
    "StorageStatus",
    "StorageType",
    "TenantKey",
    "Verification",
]
