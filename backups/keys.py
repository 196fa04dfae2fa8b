"""Tenant key rings and the platform master key (DESIGN.md "Encryption keys").

Each tenant has a key ring of data keys (``TenantKey``): the current key encrypts new
backups, the older ones stay for the artifacts they encrypted. Every data key is stored only
wrapped by the platform master key. ``BACKUP_MASTER_KEY`` may list several master keys,
newest first (like ``MultiFernet``): the first wraps, any of them unwraps, so a master key is
rotated by listing the new one first and re-wrapping (``master_key_rotate``).

A master key that cannot open the wrapped keys is never silent: ``key_problems`` names the
fingerprint of the master key the rows need and where it is expected; the system check, the
ASGI server and the worker refuse to start on it, and no master key is generated while any
wrapped key exists. A platform rebuilt without its master key gets its keys back from the
tenants' exported key files (``tenant_key_import``).
"""

from __future__ import annotations

import base64
import binascii
import logging
import secrets
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import IntegrityError, transaction
from django.utils import timezone

from audit.services import emit
from backupplatform.errors import Forbidden, NotFound, ValidationFailed
from backupplatform.settings import keys as key_files
from backups.pipeline import (
    KeyFileError,
    KeyUnwrapError,
    RingKey,
    export_key_ring,
    generate_data_key,
    key_fingerprint,
    master_key_fingerprint,
    parse_key_document,
    unwrap_key,
    wrap_key,
)
from tenants.models import Membership, Role, Tenant

from .models import TenantKey

logger = logging.getLogger(__name__)


class MasterKeyError(ImproperlyConfigured):
    """The configured master key cannot open the wrapped tenant keys, or there is none."""


class KeyNotInRing(NotFound):
    code = "KEY_NOT_IN_RING"
    default_message = "The key that encrypted this backup is not in the tenant's key ring"


# --- master keys ------------------------------------------------------------------------


def _decode_master(raw: str, where: str) -> bytes:
    try:
        key = base64.urlsafe_b64decode(raw.encode() + b"=" * (-len(raw) % 4))
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != 32:
        raise MasterKeyError(f"{where} must hold urlsafe base64 of 32 bytes (one key per entry)")
    return key


def master_key_file() -> Path | None:
    """The local mode's key file, used when ``BACKUP_MASTER_KEY`` is empty."""
    path = getattr(settings, "BACKUP_MASTER_KEY_FILE", "") or ""
    return Path(path).resolve() if path else None


def _setting_entries() -> list[str]:
    raw = getattr(settings, "BACKUP_MASTER_KEY", "") or ""
    if isinstance(raw, list | tuple):
        return [str(item).strip() for item in raw if str(item).strip()]
    return [item for item in raw.replace(",", " ").split() if item]


def master_key_location() -> str:
    """Where the master key is expected, for messages."""
    path = master_key_file()
    if _setting_entries() or path is None:
        return "the BACKUP_MASTER_KEY setting (environment variable)"
    return f"the file {path} (BACKUP_MASTER_KEY is not set)"


def configured_master_keys() -> list[bytes]:
    """Every configured master key, newest (the one that wraps) first; [] when none.

    The file is read on every call, so a rotation that rewrites it reaches running processes.
    """
    entries = _setting_entries()
    if entries:
        return [_decode_master(item, "BACKUP_MASTER_KEY") for item in entries]
    path = master_key_file()
    if path is None:
        return []
    return [_decode_master(item, str(path)) for item in key_files.read_key_lines(path)]


def _keys_exist() -> bool:
    return TenantKey.objects.exists()


def current_master_key() -> bytes:
    """The master key that wraps new data keys.

    In local mode the key file is created on first use, but only while no wrapped tenant key
    exists: with wrapped keys and no file, this raises instead of generating a key that
    could never open them.
    """
    keys = configured_master_keys()
    if keys:
        return keys[0]
    path = master_key_file()
    if path is None or _keys_exist():
        raise MasterKeyError(_problem_text(key_problems()) or f"No backup master key in {master_key_location()}")
    key_files.create_key_file(path, key_files.new_key())  # loses a race harmlessly: read below
    logger.warning("generated a new backup master key in %s (no wrapped tenant key existed)", path)
    return configured_master_keys()[0]


def master_key_file_create() -> str:
    """Local mode, asked for explicitly (``importkey --generate-master-key``): create the key
    file when no master key is configured at all, even though wrapped keys exist (they stay
    unreadable until their key files are imported). Returns the new key's fingerprint."""
    path = master_key_file()
    if path is None or _setting_entries():
        raise MasterKeyError(
            "--generate-master-key is for the local mode's key file; with BACKUP_MASTER_KEY set, put the new key there"
        )
    if configured_master_keys():
        raise MasterKeyError(f"A master key is already configured in {path}")
    key_files.create_key_file(path, key_files.new_key())
    logger.warning("generated a new backup master key in %s on request", path)
    return master_key_fingerprint(configured_master_keys()[0])


# --- wrapping ---------------------------------------------------------------------------


def _context(tenant_id: int) -> bytes:
    # Bound into the wrapping, so a wrapped key copied onto another tenant's row won't unwrap.
    return f"tenant:{tenant_id}".encode()


def _wrap(tenant_id: int, data_key: bytes, master: bytes | None = None) -> tuple[bytes, str]:
    master = master or current_master_key()
    return wrap_key(master, data_key, context=_context(tenant_id)), master_key_fingerprint(master)


def _try_unwrap(row: TenantKey, masters: list[bytes]) -> tuple[bytes, bytes] | None:
    """``(data_key, master)`` of ``row`` with the first master key that opens it, else None."""
    wrapped, context = bytes(row.wrapped_key), _context(row.tenant_id)
    # The recorded master fingerprint picks the right key first; the others are a fallback
    # for rows written before fingerprints were recorded.
    ordered = sorted(masters, key=lambda m: master_key_fingerprint(m) != row.master_fingerprint)
    for master in ordered:
        try:
            data_key = unwrap_key(master, wrapped, context=context)
        except KeyUnwrapError:
            continue
        if row.fingerprint and key_fingerprint(data_key) != row.fingerprint:
            continue
        return data_key, master
    return None


def unwrap_row(row: TenantKey) -> bytes:
    """The data key of ``row``; raises MasterKeyError naming the master key it needs."""
    opened = _try_unwrap(row, configured_master_keys())
    if opened is None:
        raise MasterKeyError(_problem_text(_describe_unreadable([row])))
    return opened[0]


# --- problems (system check, start-up checks) --------------------------------------------


def _describe_unreadable(rows: list[TenantKey]) -> list[str]:
    if not rows:
        return []
    configured = configured_master_keys()
    where = master_key_location()
    if not configured:
        head = f"No backup master key is configured (expected in {where})"
    else:
        shown = ", ".join(master_key_fingerprint(m) for m in configured)
        head = f"The configured backup master key (fingerprint {shown}, from {where}) cannot open them"
    groups: dict[str, list[TenantKey]] = defaultdict(list)
    for row in rows:
        groups[row.master_fingerprint].append(row)
    lines = []
    for fingerprint, group in sorted(groups.items()):
        tenants = sorted({row.tenant.slug for row in group})
        needed = (
            f"the master key with fingerprint {fingerprint}"
            if fingerprint
            else "a master key whose fingerprint was not recorded"
        )
        lines.append(
            f"{len(group)} wrapped data key(s) of tenant(s) {', '.join(tenants[:10])}"
            f"{' ...' if len(tenants) > 10 else ''} need {needed}"
        )
    return [f"{head}: " + "; ".join(lines) + "."]


def key_problems() -> list[str]:
    """Why the platform cannot use its tenants' keys ([] when every wrapped key opens)."""
    try:
        configured = configured_master_keys()
    except MasterKeyError as exc:
        return [str(exc)]
    unreadable = [
        row
        for row in TenantKey.objects.filter(abandoned_at__isnull=True)
        .select_related("tenant")
        .order_by("tenant__slug", "id")
        if _try_unwrap(row, configured) is None
    ]
    return _describe_unreadable(unreadable)


KEY_HINT = (
    "Put that master key back (BACKUP_MASTER_KEY, several keys newest first, or the local "
    "mode's key file), or import each tenant's exported key file with `manage.py importkey "
    "FILE [--tenant SLUG]` (it re-wraps the keys under the configured master key; in local mode "
    "without a key file add --generate-master-key). No new "
    "master key is generated while wrapped tenant keys exist; `manage.py rotatemasterkey "
    "--abandon-unreadable` gives up on keys nobody can open."
)


def _problem_text(problems: list[str]) -> str:
    return " ".join(problems) + (f" {KEY_HINT}" if problems else "")


def check_keys_at_start() -> None:
    """Raise MasterKeyError unless every wrapped tenant key opens (ASGI and worker start-up).

    A database that is unreachable or not migrated yet is left to the process's own errors.
    """
    from django.db import DatabaseError

    try:
        problems = key_problems()
    except DatabaseError as exc:
        logger.info("could not check the backup keys at start-up: %s", exc)
        return
    if problems:
        raise MasterKeyError(_problem_text(problems))


# --- the tenant's key ring --------------------------------------------------------------


def _new_key_id(tenant: Tenant) -> str:
    return f"{tenant.slug}-{secrets.token_hex(4)}"


def _create_current(tenant: Tenant) -> tuple[TenantKey, bytes]:
    data_key = generate_data_key()
    wrapped, master_fp = _wrap(tenant.pk, data_key)
    row = TenantKey.objects.create(
        tenant=tenant,
        key_id=_new_key_id(tenant),
        wrapped_key=wrapped,
        fingerprint=key_fingerprint(data_key),
        master_fingerprint=master_fp,
        is_current=True,
    )
    return row, data_key


def tenant_current_key(tenant: Tenant) -> tuple[str, bytes]:
    """``(key_id, data_key)`` that encrypts the tenant's new backups, created on first use."""
    row = TenantKey.objects.filter(tenant=tenant, is_current=True).first()
    if row is None:
        try:
            with transaction.atomic():
                row, data_key = _create_current(tenant)
                return row.key_id, data_key
        except IntegrityError:  # created meanwhile by another process
            row = TenantKey.objects.get(tenant=tenant, is_current=True)
    return row.key_id, unwrap_row(row)


# Earlier name, kept for callers outside this module.
tenant_data_key = tenant_current_key


def key_for_id(tenant: Tenant, key_id: str) -> bytes:
    """The data key that encrypted an artifact of ``tenant`` (its ``Backup.key_id``)."""
    if not key_id:
        return tenant_current_key(tenant)[1]
    row = TenantKey.objects.filter(tenant=tenant, key_id=key_id).first()
    if row is None:
        raise KeyNotInRing(
            f"The artifact was encrypted with key {key_id!r}, which is not in the tenant's key ring: "
            "import the tenant's exported key file with `manage.py importkey FILE`"
        )
    return unwrap_row(row)


@transaction.atomic
def tenant_key_rotate(*, tenant: Tenant, actor: Any = None) -> TenantKey:
    """Make a new current data key for the tenant's new backups; older keys stay in the ring."""

    Tenant.objects.select_for_update().filter(pk=tenant.pk).first()
    now = timezone.now()
    previous = TenantKey.objects.filter(tenant=tenant, is_current=True).first()
    if previous is not None:
        TenantKey.objects.filter(pk=previous.pk).update(is_current=False, retired_at=now)
    row, _ = _create_current(tenant)
    emit(
        action="key_rotate",
        tenant=tenant,
        actor=actor,
        resource_type="tenant_key",
        resource_id=row.key_id,
        details={
            "key_id": row.key_id,
            "fingerprint": row.fingerprint,
            "previous_key_id": previous.key_id if previous else None,
        },
    )
    return row


# --- master key rotation ----------------------------------------------------------------


@dataclass
class MasterRotation:
    """What ``master_key_rotate`` did."""

    master_fingerprint: str
    rewrapped: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    abandoned: list[str] = field(default_factory=list)


def master_key_rotate(*, abandon_unreadable: bool = False) -> MasterRotation:
    """Re-wrap every tenant key under the current (first) master key.

    Any configured master key may open a row (old and new are both accepted during the
    change). Keys that no configured master key opens make it refuse before anything
    changes, unless ``abandon_unreadable``: then they are marked abandoned (kept, so the
    lost master key can still open them if it turns up, but no longer blocking start-up).
    """

    masters = configured_master_keys()
    if not masters:
        raise MasterKeyError(
            f"No backup master key is configured (expected in {master_key_location()})"
            + ("; --generate makes one" if master_key_file() and not _setting_entries() else "")
        )
    current = masters[0]
    result = MasterRotation(master_fingerprint=master_key_fingerprint(current))
    with transaction.atomic():
        rows = list(TenantKey.objects.select_for_update().select_related("tenant").order_by("id"))
        opened = {row.pk: _try_unwrap(row, masters) for row in rows}
        lost = [row for row in rows if opened[row.pk] is None and row.abandoned_at is None]
        if lost and not abandon_unreadable:
            raise MasterKeyError(_problem_text(_describe_unreadable(lost)))
        now = timezone.now()
        for row in rows:
            found = opened[row.pk]
            if found is None:
                if row.abandoned_at is None:
                    TenantKey.objects.filter(pk=row.pk).update(
                        abandoned_at=now, is_current=False, retired_at=row.retired_at or now
                    )
                    result.abandoned.append(row.key_id)
                continue
            data_key, master = found
            updates: dict[str, Any] = {}
            if master != current or row.master_fingerprint != result.master_fingerprint:
                updates.update(
                    wrapped_key=wrap_key(current, data_key, context=_context(row.tenant_id)),
                    master_fingerprint=result.master_fingerprint,
                )
            if not row.fingerprint:
                updates["fingerprint"] = key_fingerprint(data_key)
            if row.abandoned_at is not None:  # its master key turned up again
                updates["abandoned_at"] = None
            if updates:
                TenantKey.objects.filter(pk=row.pk).update(**updates)
                result.rewrapped.append(row.key_id)
            else:
                result.unchanged.append(row.key_id)
        emit(
            action="master_key_rotate",
            resource_type="master_key",
            resource_id=result.master_fingerprint,
            details={
                "master_fingerprint": result.master_fingerprint,
                "rewrapped": len(result.rewrapped),
                "unchanged": len(result.unchanged),
                "abandoned": result.abandoned,
            },
        )
    return result


def master_key_file_rotate(*, abandon_unreadable: bool = False) -> tuple[MasterRotation, Path | None]:
    """Local mode: generate a new master key in the key file, re-wrap everything, retire the old.

    The file first lists the new key and the old ones (every process reads it on each use,
    so both are accepted while rows are re-wrapped), then only the new key; the old keys are
    kept in ``<file>.retired-<time>`` for database backups made before the rotation.
    """
    path = master_key_file()
    if path is None or _setting_entries():
        raise MasterKeyError(
            "--generate rotates the local mode's key file; with BACKUP_MASTER_KEY set, "
            "put the new key first in BACKUP_MASTER_KEY and run rotatemasterkey"
        )
    if not abandon_unreadable and (problems := key_problems()):
        raise MasterKeyError(_problem_text(problems))  # refused before the file changes
    old_lines = key_files.read_key_lines(path)
    new = key_files.new_key()
    key_files.replace_key_file(path, [new, *old_lines])
    # On a failure from here on the file keeps listing both keys: whatever was wrapped with
    # either (by this rotation or by another process meanwhile) still opens; run it again.
    result = master_key_rotate(abandon_unreadable=abandon_unreadable)
    # A key another process wrapped with the old key meanwhile is re-wrapped by a second pass.
    second = master_key_rotate(abandon_unreadable=False)
    result.rewrapped += [k for k in second.rewrapped if k not in result.rewrapped]
    retired = None
    if old_lines:
        retired = path.with_name(f"{path.name}.retired-{timezone.now():%Y%m%dT%H%M%S}")
        key_files.replace_key_file(retired, old_lines)
    key_files.replace_key_file(path, [new])
    return result, retired


# --- import and export ------------------------------------------------------------------


def _check_tenant_admin(tenant: Tenant, user: Any) -> None:

    if getattr(user, "is_superuser", False):
        return
    if not Membership.objects.filter(tenant=tenant, user=user, role=Role.ADMIN, is_active=True).exists():
        raise Forbidden("Only the workspace's admins may export its backup keys")


@transaction.atomic
def tenant_key_import(*, tenant: Tenant, content: bytes | str, actor: Any = None) -> list[dict]:
    """Put the keys of an exported key file (one key or a key ring) into the tenant's ring,
    wrapped under the current master key.

    For a platform rebuilt from its database backup without the master key (the rows are
    there but unreadable: they are re-wrapped once the key matches the row's recorded
    fingerprint), or from nothing (the rows are created). A key id held by another tenant, or
    a different key under the same id, is refused. Returns ``[{key_id, fingerprint, action}]``.
    """

    try:
        document = parse_key_document(content)
    except KeyFileError as exc:
        raise ValidationFailed(str(exc), details={"file": [str(exc)]}) from None
    master = current_master_key()
    master_fp = master_key_fingerprint(master)
    masters = configured_master_keys()
    Tenant.objects.select_for_update().filter(pk=tenant.pk).first()
    now = timezone.now()
    done: list[dict] = []
    for ring_key in document.keys:
        fingerprint = key_fingerprint(ring_key.key)
        row = TenantKey.objects.filter(key_id=ring_key.key_id).first()
        if row is not None and row.tenant_id != tenant.pk:
            raise ValidationFailed(f"Key {ring_key.key_id!r} belongs to another tenant on this platform")
        if row is None:
            wrapped = wrap_key(master, ring_key.key, context=_context(tenant.pk))
            TenantKey.objects.create(
                tenant=tenant,
                key_id=ring_key.key_id,
                wrapped_key=wrapped,
                fingerprint=fingerprint,
                master_fingerprint=master_fp,
                is_current=False,
                imported_at=now,
                retired_at=now,
            )
            done.append({"key_id": ring_key.key_id, "fingerprint": fingerprint, "action": "added"})
            continue
        opened = _try_unwrap(row, masters)
        if opened is not None:
            if opened[0] != ring_key.key:
                raise ValidationFailed(f"The platform holds a different key under the id {ring_key.key_id!r}")
            if row.abandoned_at is not None:
                TenantKey.objects.filter(pk=row.pk).update(abandoned_at=None)
            done.append({"key_id": ring_key.key_id, "fingerprint": fingerprint, "action": "unchanged"})
            continue
        if row.fingerprint and row.fingerprint != fingerprint:
            raise ValidationFailed(
                f"The key file's key {ring_key.key_id!r} (fingerprint {fingerprint}) is not "
                f"the key the platform recorded under that id ({row.fingerprint})"
            )
        TenantKey.objects.filter(pk=row.pk).update(
            wrapped_key=wrap_key(master, ring_key.key, context=_context(tenant.pk)),
            fingerprint=fingerprint,
            master_fingerprint=master_fp,
            imported_at=now,
            abandoned_at=None,
        )
        done.append({"key_id": ring_key.key_id, "fingerprint": fingerprint, "action": "rewrapped"})
    if not TenantKey.objects.filter(tenant=tenant, is_current=True).exists():
        newest = document.current or document.keys[0]
        TenantKey.objects.filter(tenant=tenant, key_id=newest.key_id).update(is_current=True, retired_at=None)
    emit(
        action="key_import",
        tenant=tenant,
        actor=actor,
        resource_type="tenant_key",
        resource_id=(document.current or document.keys[0]).key_id,
        details={"keys": done, "master_fingerprint": master_fp},
    )
    return done


def tenant_key_export(*, tenant: Tenant, actor: Any = None, via: str = "cli") -> tuple[str, bytes]:
    """The tenant's key ring file (JSON, every key it can still open) and its file name.

    The audit event names the keys by id and fingerprint only, never their material.
    """

    tenant_current_key(tenant)  # a tenant that never backed up gets its first key now
    rows = list(TenantKey.objects.filter(tenant=tenant, abandoned_at__isnull=True).order_by("-created_at", "-id"))
    now = timezone.now()
    ring = [
        RingKey(
            key_id=row.key_id,
            key=unwrap_row(row),
            current=row.is_current,
            created_at=row.created_at.isoformat() if row.created_at else None,
        )
        for row in rows
    ]
    content = export_key_ring(ring, tenant=tenant.slug, exported_at=now.isoformat())
    TenantKey.objects.filter(pk__in=[row.pk for row in rows]).update(last_exported_at=now)
    emit(
        action="key_export",
        tenant=tenant,
        actor=actor,
        resource_type="tenant_key",
        resource_id=next((k.key_id for k in ring if k.current), ""),
        details={"via": via, "keys": [{"key_id": k.key_id, "fingerprint": key_fingerprint(k.key)} for k in ring]},
    )
    return f"{tenant.slug}.keys.json", content


def tenant_key_export_reauthenticated(*, tenant: Tenant, user: Any, password: str, via: str) -> tuple[str, bytes]:
    """Export for a signed-in tenant admin who typed their password again (API and admin).

    A stolen session or token alone does not get the key: the password is checked here, and
    a wrong one is recorded (``key_export_denied``) and refused.
    """

    _check_tenant_admin(tenant, user)
    if not password or not user.check_password(password):
        emit(
            action="key_export_denied",
            tenant=tenant,
            actor=user,
            resource_type="tenant_key",
            details={"via": via, "reason": "wrong password"},
        )
        raise Forbidden("The password is not correct; the key was not exported", code="REAUTHENTICATION_FAILED")
    return tenant_key_export(tenant=tenant, actor=user, via=via)
