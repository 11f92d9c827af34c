# Copyright: osops.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""One lease run against a cloud: scan -> decide -> write leases -> check the cap -> reap -> report.

``LeaseRun`` is what the ``lease_reap`` module carries out; the module only
turns options into settings and the result into its return value.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime

from .._errors import describe_sdk_error
from .audit import AuditLog
from .decide import (FROZEN_NOTE, Outcome, ReapOptions, counts, created_time, decide_scan, identity, lease_writes,
                     metadata_frozen, to_notify)
from .edit import EditRequest, lease_view, plan_edit
from .exempt import CompiledExemptions
from .keys import LeaseKeys, effective_change, format_time, read_lease
from .kinds import adapter_for
from .owners import KeystoneDirectory
from .policy import REMOVE, Policy
from .kind_table import KIND_ORDER, USES
from .reap import check_cap, owner_digest
from .reaper import Reaper
from .seal import Keyring
from .trust import SealContext, trust_lease, wrong_key


class SealKeyMismatch(Exception):
    """No seal in the scan verifies with the key file: the wrong key, not a cloud of tampered leases."""


class CapExceeded(Exception):
    """The run would remove more than allowed: it removes nothing."""

    def __init__(self, message: str, result: dict):
        super().__init__(message)
        self.result = result


class ApiCallCounter:
    """Counts the HTTP requests a connection makes (for the report and the benchmark)."""

    def __init__(self, conn):
        self.calls = 0
        self._lock = threading.Lock()
        session = getattr(getattr(conn, "session", None), "session", None)
        if session is not None:
            session.hooks.setdefault("response", []).append(self._count)

    def _count(self, response, *args, **kwargs):
        with self._lock:
            self.calls += 1
        return response


@dataclass
class RunSettings:
    policy: Policy
    keys: LeaseKeys
    exemptions: CompiledExemptions
    now: datetime
    look_ahead: bool                      # as_of in the future: nothing is changed
    kinds: tuple[str, ...] = KIND_ORDER
    projects: list[str] = field(default_factory=list)
    all_projects: bool = True
    reap: bool = False
    options: ReapOptions = ReapOptions()
    write_leases: bool = True
    max_remove: int = 50
    max_remove_percent: float = 10.0
    workers: int = 8
    timeout: float = 600
    owner_fallback: str | None = None
    contact_attribute: str = "contact_email"
    audit_path: str | None = None
    check_mode: bool = True
    keyring: Keyring | None = None
    enforced_from: datetime | None = None

    @property
    def seals(self) -> SealContext:
        return SealContext(self.keyring, self.keys, self.policy, self.now, self.enforced_from)


class LeaseRun:
    def __init__(self, conn, settings: RunSettings):
        self.conn = conn
        self.settings = settings
        self.counter = ApiCallCounter(conn)
        self.directory = KeystoneDirectory(conn, settings.contact_attribute)
        self.adapters = {kind: adapter_for(kind, conn) for kind in settings.kinds}
        self.region = getattr(getattr(conn, "config", None), "region_name", None) or ""

    @property
    def changes_allowed(self) -> bool:
        return not (self.settings.check_mode or self.settings.look_ahead)

    def scan(self) -> list[dict]:
        """Every resource of the chosen kinds and projects, with project and user names."""
        project_ids = self.directory.project_ids(self.settings.projects) if self.settings.projects else [None]
        records = []
        for kind in KIND_ORDER:
            if kind not in self.adapters:
                continue
            for project_id in project_ids:
                records.extend(self.adapters[kind].records(self.settings.all_projects, project_id))
        for record in records:
            project = self.directory.project(record["project_id"]) if record.get("project_id") else None
            user = self.directory.user(record["user_id"]) if record.get("user_id") else None
            record["project_name"] = project.name if project else None
            record["user_name"] = user.name if user else None
        return records

    def users_elsewhere(self) -> list[dict]:
        """Resources outside this scan that may use what it scanned: every user kind of the whole cloud that the
        scan did not list in full (another kind, another project). In use means in use anywhere."""
        scanned_all = not self.settings.projects and self.settings.all_projects
        needed = {user for kind in self.settings.kinds for user in USES.get(kind, ())}
        records = []
        for kind in KIND_ORDER:
            if kind in needed and not (scanned_all and kind in self.settings.kinds):
                records.extend((self.adapters.get(kind) or adapter_for(kind, self.conn)).records(True, None))
        return records

    def write(self, outcomes: list[Outcome], audit: AuditLog) -> list[dict]:
        """Write enrolments, repairs, restored seals and handled requests; one failure never stops the others."""
        pending = [o for o in outcomes if o.writes]

        def write_one(outcome: Outcome) -> dict:
            record = outcome.record
            written = write_lease_keys(self.adapters[record["kind"]], record, outcome.set_values, outcome.remove_keys,
                                       audit, self.changes_allowed, status=outcome.decision.status,
                                       seal=outcome.trusted.seal if outcome.trusted else None,
                                       tampered=outcome.tampered)
            if written["outcome"] == "written":
                # the reaper must expect the seal this run wrote
                outcome.seal_after = outcome.set_values.get(self.settings.keys.seal, outcome.seal_after)
            return written

        if not pending:
            return []
        with ThreadPoolExecutor(max_workers=min(self.settings.workers, len(pending))) as pool:
            return list(pool.map(write_one, pending))

    def unlock(self, outcomes: list[Outcome], writes: list[dict], audit: AuditLog) -> list[dict]:
        """Unlock the servers the reaper locked whose lease runs again (not where this run's write failed)."""
        failed = {(w["kind"], w["id"]) for w in writes if w["outcome"] == "failed"}
        unlocked = []
        for outcome in outcomes:
            record = outcome.record
            if (record["kind"], record["id"]) not in failed:
                done = unlock_extended(self.adapters[record["kind"]], record, outcome.lease, self.settings.now, audit,
                                       self.changes_allowed)
                if done:
                    unlocked.append(done)
        return unlocked

    def check_key(self, outcomes: list[Outcome]) -> None:
        """Refuse to go on when seals exist and none verifies: a wrong key file would rebuild every lease."""
        problem = wrong_key([o.trusted for o in outcomes if o.trusted], self.settings.keyring)
        if problem:
            raise SealKeyMismatch(problem)

    def run(self) -> dict:
        started = time.monotonic()
        records = self.scan()
        elsewhere = self.users_elsewhere() if self.settings.reap or self.settings.write_leases else []
        owner_of = self.directory.owner_lookup(self.settings.owner_fallback)
        outcomes = decide_scan(records, self.settings.seals, self.settings.exemptions.reason, owner_of, self.settings.options, elsewhere)
        self.check_key(outcomes)
        removals = [o for o in outcomes if o.decision.action == REMOVE and o.verb]
        cap = check_cap(len(removals), len(outcomes), self.settings.max_remove, self.settings.max_remove_percent)
        # the cap is checked before anything is written, so a refused run changes nothing at all
        if cap and self.settings.reap:
            raise CapExceeded(cap, self.result(outcomes, [], [], None, cap, started))
        audit = AuditLog(self.settings.audit_path, check_mode=not self.changes_allowed)
        try:
            writes = self.write(outcomes, audit) if self.settings.write_leases else []
            unlocked = self.unlock(outcomes, writes, audit) if self.settings.write_leases else []
            removed = []
            if self.settings.reap:
                reaper = Reaper(self.adapters, self.settings.keys, audit, self.settings.workers, self.settings.timeout,
                                self.settings.options.lock_servers)
                removed = reaper.run(removals) if self.changes_allowed else reaper.preview(removals)
        finally:
            audit.close()
        return self.result(outcomes, writes, removed, audit, cap, started, unlocked)

    def result(self, outcomes, writes, removed, audit, cap, started, unlocked=()) -> dict:
        now = self.settings.now
        decisions = [o.as_dict(now) for o in outcomes]
        for decision in decisions:
            decision["region"] = self.region
        notify = to_notify(outcomes)
        digest = owner_digest([(o.owner.email, o.digest_item(self.region, now, self.settings.keys)) for o in notify])
        requests = [dict(kind=o.record["kind"], id=o.record["id"], name=o.record.get("name"), owner=o.owner.email,
                         **o.request.as_dict()) for o in outcomes if o.request]
        unowned = [d for d in decisions if not d["owner"] and d["action"] == "notify"]
        tampered = [dict(identity(o.record), owner=o.owner.email, changes=o.tampered,
                         note=o.trusted.note if o.trusted else None, reason=o.decision.reason)
                    for o in outcomes if o.trusted and o.trusted.tampered]
        wrote = any(w["outcome"] == "written" for w in writes)
        changed_by_removal = any(r["outcome"] == "removed" for r in removed)
        if self.settings.look_ahead:
            changed = False  # a look-ahead predicts; it never changes anything
        elif self.settings.check_mode:
            changed = bool(writes or removed or unlocked)  # what the real run would change
        else:
            changed = wrote or changed_by_removal or any(u["outcome"] == "unlocked" for u in unlocked)
        return {
            "changed": changed,
            "now": format_time(now),
            "look_ahead": self.settings.look_ahead,
            "region": self.region,
            "decisions": decisions,
            "digest": digest,
            "counts": counts(outcomes),
            "requests": requests,
            "unowned": unowned,
            "tampered": tampered,
            "lease_writes": writes,
            "removed": removed,
            "unlocked": list(unlocked),
            "cap": cap,
            "audit": list(audit.records) if audit else [],
            "run_id": audit.run_id if audit else None,
            "stats": {"scanned": len(outcomes), "api_calls": self.counter.calls,
                      "seconds": round(time.monotonic() - started, 2),
                      "user_lookups": self.directory.user.calls},
        }


def write_lease_keys(adapter, record: dict, values: dict, remove: tuple, audit: AuditLog, allowed: bool,
                     **fields) -> dict:
    """Write an effective lease change (see ``effective_change``), or say it would be written; audit either way."""
    fields = dict(identity(record), set=dict(values), remove=list(remove), **fields)
    if not allowed:
        return audit.write("lease", outcome="would_write", **fields)
    try:
        adapter.apply(record["id"], values, remove)
    except Exception as error:  # pylint: disable=broad-except
        return audit.write("lease", outcome="failed", error=describe_sdk_error(error), **fields)
    return audit.write("lease", outcome="written", **fields)


def unlock_extended(adapter, record: dict, lease, now: datetime, audit: AuditLog, allowed: bool) -> dict | None:
    """Unlock a server the reaper locked once its lease runs again (extended by the portal, an operator or a
    request), so that its owner can start or unshelve it; None when there is nothing to unlock."""
    if lease is None or lease.expires is None or lease.expires <= now or not adapter.locked_by_reaper(record):
        return None
    return release_lock(adapter, record, audit, allowed)


def release_lock(adapter, record: dict, audit: AuditLog, allowed: bool) -> dict:
    """Lift the reaper's lock on a server (or say it would be lifted); audited."""
    if not allowed:
        return audit.write("unlock", outcome="would_unlock", **identity(record))
    try:
        adapter.unlock(record)
    except Exception as error:  # pylint: disable=broad-except
        return audit.write("unlock", outcome="failed", error=describe_sdk_error(error), **identity(record))
    return audit.write("unlock", outcome="unlocked", **identity(record))


def diff_lines(result: dict) -> str:
    """A readable diff for ``--diff``: leases written and resources removed."""
    lines = []
    for write in result["lease_writes"]:
        changes = ", ".join(["%s=%s" % item for item in sorted(write["set"].items())] +
                            ["-%s" % key for key in write["remove"]])
        lines.append("~ %s %s (%s) [%s]: %s" % (write["kind"], write["name"] or "", write["id"], write["status"], changes))
    for removal in result["removed"]:
        lines.append("- %s %s (%s) in %s: %s (%s)" % (
            removal["kind"], removal["name"] or "", removal["id"], removal.get("project_name") or removal["project_id"],
            removal["action"], removal["outcome"]))
    return "\n".join(lines) + ("\n" if lines else "")


class LeaseEditor:
    """Carries out ``plan_edit`` on resources named by kind and id or name (``resource_lease``, the portal).

    Self-service front ends name who asks: ``only_owner`` (an address the caller cannot choose, such as the
    one a signed portal link names) or ``only_owner_user`` (a Keystone user name or id, such as the AWX user
    name); any resource not theirs is refused without naming its owner.
    """

    def __init__(self, conn, seals: SealContext, look_ahead: bool, check_mode: bool, all_projects: bool = True,
                 audit_path: str | None = None, only_owner: str | None = None, only_owner_user: str | None = None,
                 contact_attribute: str = "contact_email"):
        self.conn = conn
        self.seals = seals
        self.only_owner = only_owner.strip().lower() if only_owner else None
        self.only_owner_user = only_owner_user
        self.directory = KeystoneDirectory(conn, contact_attribute)
        self.owner_of = self.directory.owner_lookup() if (only_owner or only_owner_user) else None
        self.caller = self.directory.find_user(only_owner_user) if only_owner_user else None
        self.changes_allowed = not (check_mode or look_ahead)
        self.all_projects = all_projects
        self.audit = AuditLog(audit_path, check_mode=not self.changes_allowed)

    def _refusal(self, record: dict, lease) -> str | None:
        """Why the caller may not change this resource (None: they may). Never names the real owner."""
        if self.owner_of is None:
            return None
        owner = (self.owner_of(record, lease).email or "").strip().lower()
        if self.only_owner is not None and owner != self.only_owner:
            return "not a resource of %s" % self.only_owner
        if self.only_owner_user is not None:
            caller = self.caller
            mine = caller is not None and (record.get("user_id") == caller.id
                                           or (caller.email and owner == caller.email.strip().lower()))
            if not mine:
                return "not a resource of user %s" % self.only_owner_user
        return None

    def frozen(self, adapter, record: dict, result: dict) -> dict:
        """A shelved server takes no metadata: nothing is written; a lock of the reaper's is lifted so that
        its owner can unshelve it and then have the lease extended (the reaper leaves shelved servers alone)."""
        reason = "lease not written: %s (status %s)" % (FROZEN_NOTE, record.get("status"))
        if not adapter.locked_by_reaper(record):
            return dict(result, outcome="frozen", reason=reason + "; unshelve it, then extend")
        unlocked = release_lock(adapter, record, self.audit, self.changes_allowed)
        if unlocked["outcome"] == "failed":
            return dict(result, outcome="failed", reason="%s; unlocking failed: %s" % (reason, unlocked["error"]))
        return dict(result, outcome="frozen", unlock=unlocked["outcome"], changed=True,
                    reason=reason + "; unlocked so that its owner can unshelve it, then extend")

    def edit(self, target: dict, request: EditRequest) -> dict:
        """One resource: read, plan, write; the result says what happened (never raises for the cloud's errors)."""
        name_or_id = target.get("id") or target.get("name")
        result = {"kind": target["kind"], "id": target.get("id"), "name": target.get("name"), "changed": False}
        adapter = adapter_for(target["kind"], self.conn)
        try:
            record = adapter.find(name_or_id, self.all_projects)
        except Exception as error:  # pylint: disable=broad-except
            return dict(result, outcome="failed", reason=describe_sdk_error(error))
        if record is None:
            return dict(result, outcome="missing", reason="no %s %s" % (target["kind"], name_or_id))
        result.update(id=record["id"], name=record["name"])
        seals = self.seals
        stored = read_lease(record["metadata"], seals.keys)
        created = created_time(record)
        trusted = trust_lease(seals, record["kind"], record["id"], record["metadata"], stored, created)
        refusal = self._refusal(record, trusted.lease)
        if refusal:
            return dict(result, outcome="refused", reason=refusal)
        if self.owner_of is not None:
            result["owner"] = self.owner_of(record, trusted.lease).email
        change = plan_edit(seals.policy, seals.keys, trusted.lease, request, seals.now, created)
        if change.lease is None:
            changes, removes = effective_change(record["metadata"], {}, list(seals.keys.all()))
        else:
            changes, removes = lease_writes(seals, record, change.lease, drop_request=False)
        reason = change.reason
        if trusted.tampered:
            reason += "; lease tampered (%s), sealed values restored" % (
                trusted.note or "; ".join(str(c) for c in trusted.changes[:3]))
        result.update(project_id=record["project_id"], outcome=change.outcome, reason=reason, seal=trusted.seal,
                      tampered=[str(c) for c in trusted.changes], before=lease_view(trusted.lease, seals.now),
                      after=lease_view(change.lease, seals.now))
        if not (changes or removes):
            return result
        if metadata_frozen(record):
            return self.frozen(adapter, record, result)
        written = write_lease_keys(adapter, record, changes, removes, self.audit, self.changes_allowed,
                                   state=request.state, reason=reason, seal=trusted.seal, tampered=result["tampered"])
        if written["outcome"] == "failed":
            return dict(result, outcome="failed", reason=written["error"])
        result["changed"] = True
        unlocked = unlock_extended(adapter, record, change.lease, seals.now, self.audit, self.changes_allowed)
        if unlocked:
            result["unlock"] = unlocked["outcome"]
            if unlocked["outcome"] == "failed":
                result.update(outcome="failed", reason="lease written, but unlocking failed: %s" % unlocked["error"])
        return result
