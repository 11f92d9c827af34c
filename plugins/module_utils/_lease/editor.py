# Copyright: osops.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Editing named resources' leases (``resource_lease``, the portal): read, plan, write, one resource at a time."""

from __future__ import annotations

from .._errors import describe_sdk_error
from .audit import AuditLog
from .decide import FROZEN_NOTE, created_time, lease_writes, metadata_frozen
from .edit import EditRequest, lease_view, plan_edit
from .keys import effective_change, read_lease
from .kinds import adapter_for
from .record import ResourceRecord
from .keystone import KeystoneDirectory
from .trust import SealContext, trust_lease
from .writes import release_lock, unlock_extended, write_lease_keys


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

    def _refusal(self, record: ResourceRecord, lease) -> str | None:
        """Why the caller may not change this resource (None: they may). Never names the real owner."""
        if self.owner_of is None:
            return None
        owner = (self.owner_of(record, lease).email or "").strip().lower()
        if self.only_owner is not None and owner != self.only_owner:
            return "not a resource of %s" % self.only_owner
        if self.only_owner_user is not None:
            caller = self.caller
            mine = caller is not None and (record.user_id == caller.id
                                           or (caller.email and owner == caller.email.strip().lower()))
            if not mine:
                return "not a resource of user %s" % self.only_owner_user
        return None

    def frozen(self, adapter, record: ResourceRecord, result: dict) -> dict:
        """A shelved server takes no metadata: nothing is written; a lock of the reaper's is lifted so that
        its owner can unshelve it and then have the lease extended (the reaper leaves shelved servers alone)."""
        reason = "lease not written: %s (status %s)" % (FROZEN_NOTE, record.status)
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
        result.update(id=record.id, name=record.name)
        seals = self.seals
        stored = read_lease(record.metadata, seals.keys)
        created = created_time(record)
        trusted = trust_lease(seals, record.kind, record.id, record.metadata, stored, created)
        refusal = self._refusal(record, trusted.lease)
        if refusal:
            return dict(result, outcome="refused", reason=refusal)
        if self.owner_of is not None:
            result["owner"] = self.owner_of(record, trusted.lease).email
        change = plan_edit(seals.policy, seals.keys, trusted.lease, request, seals.now, created)
        if change.lease is None:
            changes, removes = effective_change(record.metadata, {}, list(seals.keys.all()))
        else:
            changes, removes = lease_writes(seals, record, change.lease, drop_request=False)
        reason = change.reason
        if trusted.tampered:
            reason += "; lease tampered (%s), sealed values restored" % (
                trusted.note or "; ".join(str(c) for c in trusted.changes[:3]))
        result.update(project_id=record.project_id, outcome=change.outcome, reason=reason, seal=trusted.seal,
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
