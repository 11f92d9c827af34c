# Copyright: osops.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""One lease run against a cloud: scan -> decide -> write leases -> check the cap -> reap -> report.

(Editing named resources is ``editor.LeaseEditor``; writing keys and locks is ``writes``.)

``LeaseRun`` is what the ``lease_reap`` module carries out; the module only
turns options into settings and the result into its return value.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime

from .audit import AuditLog
from .decide import Outcome, ReapOptions, counts, decide_scan, identity, to_notify
from .exempt import CompiledExemptions
from .keys import LeaseKeys, format_time
from .kind_table import KIND_ORDER, USES
from .kinds import adapter_for
from .keystone import KeystoneDirectory
from .policy import REMOVE, Policy
from .reap_plan import check_cap, owner_digest
from .reaper import Reaper
from .seal import Keyring
from .trust import SealContext, wrong_key
from .writes import unlock_extended, write_lease_keys


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
