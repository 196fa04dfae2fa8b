"""Seed data of the fake, with the awkward parts of the real API (§0, §3, §4, §6).

RFC1123 ``registration_date``, 64-bit activity ids with ``idString`` twins, GUIDs in
mixed case between activities and workloads, one agent managing several workloads, a
workload without an agent, child (non-root) activities and non-backup activities; two
customer tenants under one partner tenant (the API client's own).
"""

from __future__ import annotations

import email.utils
import json
import threading
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

BACKUP_COMMAND_TYPE = "8F01AC13-F59E-4851-9204-DE1FD77E36B4"
FIRST_ACTIVITY_ID = 1639510477987147776  # beyond 2**53: loses precision as a JSON double
ACTIVITY_ID_STEP = 4099
_NAMESPACE = uuid.UUID("6f1c1c1e-3f0b-4e7a-9a57-2a8f5c0d8e11")


def guid(name: str) -> str:
    """A stable lower-case GUID for seed object ``name``."""
    return str(uuid.uuid5(_NAMESPACE, name))


def rfc3339(value: datetime) -> str:
    """``2025-10-24T02:14:31.900Z``, the Task Manager style."""
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def _rfc1123(value: datetime) -> str:
    """``Wed, 29 Apr 2020 15:18:40 +0000``, the agent ``registration_date`` style."""
    return email.utils.format_datetime(value.astimezone(UTC))


class SeedData:
    """Builds and holds the fake's objects; ``FakeAcronis`` serves them.

    Attributes: ``tenants`` (customers: legacy ``id`` and ``uuid``), ``root_tenant_uuid``
    (the partner tenant of the API client), ``agents``, ``workloads``, ``resources``,
    ``resource_statuses``, ``policy_statuses``, ``activities`` (raw upstream dicts).
    """

    now: datetime
    _next_id: int
    _lock: threading.RLock

    # -- test controls --------------------------------------------------------------------

    def add_activity(
        self,
        *,
        resource_id: str | None = None,
        state: str = "completed",
        result_code: str | None = "ok",
        started_at: datetime | None = None,
        completed_at: datetime | None = None,
        policy_type: str = "policy.backup.machine",
        bytes_saved: int = 1 << 30,
        parent_id_string: str | None = None,
        **fields: Any,
    ) -> dict:
        """Append an activity (newest) and return a copy of it.

        ``resource_id`` defaults to the first workload; the executor is that workload's
        agent. Extra ``fields`` override top-level keys of the built activity.
        """
        with self._lock:
            workload = self.workloads[0]
            if resource_id is not None:
                workload = next(
                    (w for w in self.workloads if w["id"].lower() == resource_id.lower()),
                    {**workload, "id": resource_id},
                )
            started = started_at or datetime.now(UTC)
            activity = self._build_activity(
                workload,
                started=started,
                duration=timedelta(minutes=5),
                state=state,
                result_code=result_code,
                policy_type=policy_type,
                bytes_saved=bytes_saved,
                resource_id_text=resource_id or workload["id"],
                parent_id_string=parent_id_string,
            )
            if completed_at is not None and state == "completed":
                activity["completedAt"] = activity["updatedAt"] = rfc3339(completed_at)
            activity.update(fields)
            self.activities.append(activity)
            return json.loads(json.dumps(activity))

    def set_activity_state(
        self,
        id_string: str,
        state: str,
        *,
        result_code: str | None = None,
        completed_at: datetime | None = None,
        bytes_saved: int | None = None,
    ) -> dict:
        """Move an activity to ``state``; completing sets ``completedAt`` and ``result``."""
        with self._lock:
            for activity in self.activities:
                if activity["idString"] == str(id_string):
                    break
            else:
                raise KeyError(id_string)
            when = completed_at or datetime.now(UTC)
            activity["state"] = state
            activity["updatedAt"] = rfc3339(when)
            if state == "completed":
                activity["completedAt"] = rfc3339(when)
                activity["progress"] = {"current": 100, "total": 100}
                activity["result"] = self._result(result_code or "ok")
            elif result_code is not None:
                activity["result"] = self._result(result_code)
            if bytes_saved is not None:
                activity["context"]["_runtime"]["bytesSaved"] = bytes_saved
            return json.loads(json.dumps(activity))

    # -- seed data ------------------------------------------------------------------------

    def _seed(self, activity_count: int) -> None:
        self._seed_tenants()
        self._seed_agents()
        self._seed_workloads()
        self._seed_activities(activity_count)

    def _seed_tenants(self) -> None:
        self.tenants = [
            {
                "id": "1496265",
                "uuid": guid("tenant-acme"),
                "name": "Acme Corp",
                "locator": "/1/66/1496265/",
            },
            {
                "id": "1496266",
                "uuid": guid("tenant-globex"),
                "name": "Globex",
                "locator": "/1/66/1496266/",
            },
        ]
        self.root_tenant_uuid = guid("tenant-partner")

    def _seed_agents(self) -> None:
        acme, globex = self.tenants
        agent_specs = [
            ("DESKTOP-JRPTA4A", acme, True, "WINDOWS", "windows"),
            ("HV-HOST-01", acme, True, "WINDOWS", "windows server"),
            ("srv-linux-01", globex, False, "LINUX", "linux"),
            ("MBP-ANNA", globex, True, "MACOS", "macos"),
        ]
        self.agents = []
        for index, (hostname, tenant, online, family, os_name) in enumerate(agent_specs):
            registered = self.now - timedelta(days=400 - 37 * index, hours=index)
            self.agents.append(
                {
                    "id": guid(f"agent-{hostname}"),
                    "host_id": guid(f"host-{hostname}"),
                    "hostname": hostname,
                    "name": "",
                    "online": online,
                    "enabled": True,
                    "auto_update": index % 2 == 0,
                    "core_version": {"current": {"build": "179", "release_id": "1.2.8"}},
                    "installer_version": {"current": {"release_id": "24.3.37932"}},
                    "platform": {
                        "family": family,
                        "arch": "X64",
                        "name": os_name,
                        "caps": 0,
                        "product_type": 0,
                        "service_pack": 0,
                        "sku": 0,
                        "suite_mask": 0,
                        "version_major": 10,
                        "version_minor": 0,
                    },
                    "registration_date": _rfc1123(registered),
                    "tenant": {"id": tenant["id"], "name": tenant["name"]},
                    "units": [
                        {
                            "name": "mms",
                            "version": {"current": {"build": "1", "release_id": "0.0.0"}},
                        }
                    ],
                }
            )

    def _seed_workloads(self) -> None:
        acme, globex = self.tenants
        agent_by_host = {a["hostname"]: a for a in self.agents}
        # (name, agent hostname or None, v4 type, tenant, protection status)
        workload_specs = [
            ("DESKTOP-JRPTA4A", "DESKTOP-JRPTA4A", "resource.machine", acme, "ok"),
            ("HV-HOST-01", "HV-HOST-01", "resource.machine", acme, "ok"),
            ("VM-SQL-01", "HV-HOST-01", "resource.virtual_machine.mshyperv", acme, "warning"),
            ("VM-WEB-01", "HV-HOST-01", "resource.virtual_machine.mshyperv", acme, "error"),
            ("srv-linux-01", "srv-linux-01", "resource.machine", globex, "idle"),
            ("MBP-ANNA", "MBP-ANNA", "resource.machine", globex, "ok"),
            ("anna@globex.example", None, "resource.mailbox", globex, "not_protected"),
        ]
        self.workloads, self.resources = [], []
        self.resource_statuses, self.policy_statuses = [], []
        for index, (name, agent_host, rtype, tenant, status) in enumerate(workload_specs):
            wid = guid(f"workload-{name}")
            created = rfc3339(self.now - timedelta(days=300 - index))
            agent = agent_by_host.get(agent_host) if agent_host else None
            workload = {
                "id": wid,
                "external_id": f"{wid}@{tenant['id']}",
                "type": "cti.a.p.wm.workload.v1.0~a.p.wm.aspect.v1.0~a.p.machine.v1.0",
                "type_alias": rtype,
                "name": name,
                "user_defined_name": name,
                "tenant_id": tenant["id"],
                "attributes": {"host_name": name},
                "enabled": True,
                "is_auto_created": False,
                "aggregation_status": "NOT_AGGREGATED",
                "created_at": created,
                "updated_at": created,
            }
            if agent is not None:
                workload["agent_id"] = agent["id"]
            self.workloads.append(workload)
            self.resources.append(
                {
                    "id": wid,
                    "external_id": f"{wid}@{tenant['id']}",
                    "name": name,
                    "user_defined_name": name,
                    "tenant_id": tenant["id"],
                    "type": rtype,
                    "created_at": created,
                    "updated_at": created,
                }
            )
            context = {
                "id": wid,
                "name": name,
                "type": rtype,
                "tenant_id": tenant["id"],
                "external_id": f"{wid}@{tenant['id']}",
                "user_defined_name": name,
            }
            self._seed_statuses(context, status, index, agent)

    def _seed_statuses(self, context: dict, status: str, index: int, agent: dict | None) -> None:
        """Protection status (§4c) and policy status (§4d) of one workload."""
        if status == "not_protected":
            self.resource_statuses.append({"aggregate": {"status": status}, "context": context})
            return
        last_run = rfc3339(self.now - timedelta(hours=2 + index))
        next_run = rfc3339(self.now + timedelta(hours=22 - index))
        self.resource_statuses.append(
            {
                "aggregate": {"status": status, "names": "Daily backup;Weekly full"},
                "context": context,
                "policies": [
                    {
                        "type": "policy.backup.machine",
                        "last_run": last_run,
                        "last_success_run": last_run,
                        "next_run": next_run,
                    }
                ],
            }
        )
        self.policy_statuses.append(
            {
                "context": {
                    **context,
                    "agent_id": agent["id"] if agent else None,
                    "agent_name": agent["hostname"] if agent else None,
                },
                "policies": [
                    {
                        "type": "policy.backup.machine",
                        "status": status,
                        "names": "Daily backup",
                        "next_run_time": next_run,
                        "running": {"state": "idle"},
                    }
                ],
            }
        )

    def _seed_activities(self, activity_count: int) -> None:
        self.activities = []
        protected = [w for w in self.workloads if "agent_id" in w]
        # Oldest first, so ids grow with time; one run every 3 hours, over ~30 days.
        for n in range(activity_count):
            workload = protected[n % len(protected)]
            started = self.now - timedelta(hours=3 * (activity_count - n), minutes=n % 7)
            running = n >= activity_count - 2  # the two newest are still running
            result_code = "error" if n % 11 == 5 else "warning" if n % 13 == 7 else "ok"
            policy_type = "policy.security.antimalware" if n % 17 == 3 else "policy.backup.machine"
            # §0: the same GUID appears upper-case in some activities.
            upper = (n // len(protected)) % 3 == 0
            resource_text = workload["id"].upper() if upper else workload["id"]
            root = self._build_activity(
                workload,
                started=started,
                duration=timedelta(minutes=10 + n % 40),
                state="started" if running else "completed",
                result_code=None if running else result_code,
                policy_type=policy_type,
                bytes_saved=(n % 50 + 1) * 10_000_000,
                resource_id_text=resource_text,
            )
            self.activities.append(root)
            if n % 10 == 0 and not running:
                self.activities.append(
                    self._build_activity(
                        workload,
                        started=started + timedelta(minutes=1),
                        duration=timedelta(minutes=5),
                        state="completed",
                        result_code=result_code,
                        policy_type=policy_type,
                        bytes_saved=0,
                        resource_id_text=resource_text,
                        parent_id_string=root["idString"],
                    )
                )

    def _result(self, code: str) -> dict:
        result: dict[str, Any] = {"code": code}
        if code in ("error", "abandoned", "timedout"):
            result["error"] = {
                "domain": "Backup",
                "code": "20250646",
                "reason": "You do not have access rights to this file",
                "context": {"cause_str": "Access denied", "effect_str": "Backup failed"},
                "kbLink": {"serCode": "0x01350016+0x000B0005"},
            }
        elif code == "warning":
            result["warnings"] = [{"reason": "Some files were skipped"}]
        return result

    def _build_activity(
        self,
        workload: dict,
        *,
        started: datetime,
        duration: timedelta,
        state: str,
        result_code: str | None,
        policy_type: str,
        bytes_saved: int,
        resource_id_text: str,
        parent_id_string: str | None = None,
    ) -> dict:
        activity_id = self._next_id
        self._next_id += ACTIVITY_ID_STEP
        tenant = next(t for t in self.tenants if t["id"] == workload["tenant_id"])
        agent_id = workload.get("agent_id") or guid("agent-cloud")
        completed = started + duration
        activity: dict[str, Any] = {
            "id": activity_id,
            "idString": str(activity_id),
            "uuid": guid(f"activity-{activity_id}"),
            "taskId": activity_id,
            "taskIdString": str(activity_id),
            "type": BACKUP_COMMAND_TYPE,
            "state": state,
            "createdAt": rfc3339(started),
            "startedAt": rfc3339(started),
            "updatedAt": rfc3339(completed if state == "completed" else started),
            "resource": {"id": resource_id_text, "type": "machine", "name": workload["name"]},
            "policy": {
                "id": guid(f"policy-{tenant['id']}"),
                "type": policy_type,
                "name": "Daily backup",
            },
            "tenant": dict(tenant),
            "executor": {"id": agent_id, "clusterId": ""},
            "progress": {"current": 100 if state == "completed" else 40, "total": 100},
            "startedByUser": "scheduler",
            "context": {
                "IsProcessRoot": parent_id_string is None,
                "title": f"Backing up '{workload['name']}'",
                "runMode": "scheduled",
                "MachineName": workload["name"],
                "BackupPlanID": guid(f"policy-{tenant['id']}"),
                "BackupPlanName": "Daily backup",
                "ArchiveName": f"{workload['name']}-A0210313",
                "ArchiveLocation": "cloud",
                "_runtime": {"bytesProcessed": bytes_saved * 5, "bytesSaved": bytes_saved},
            },
        }
        if state == "completed":
            activity["completedAt"] = rfc3339(completed)
            activity["result"] = self._result(result_code or "ok")
        if parent_id_string is not None:
            activity["parentActivityId"] = int(parent_id_string)
            activity["parentActivityIdString"] = parent_id_string
        return activity
