# Copyright: osops.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Deciding a whole scan (pure): requests, exemptions, owners, statuses, dependencies.

Input: the records the adapters listed (plain dicts), the policy and ``now``.
Output: one ``Outcome`` per resource, with the metadata to write and, for an
expired resource whose owner was told, the removal to carry out. Kinds are
decided in dependency order, so a volume knows whether the servers using it go
in this run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Callable

from .keys import LeaseKeys, LeaseRecord, LeaseValueError, format_time, lease_metadata, parse_time, read_lease
from .owners import Owner
from .policy import NONE, NOTIFY, REMOVE, WRITE_LEASE, Decision, Policy, classify, extend
from .reap import DigestItem, Key, in_use_reason, kind_rank

# Removal verbs per kind; the first is the default.
VERBS = {"server": ("delete", "shelve", "stop"), "snapshot": ("delete",), "volume": ("delete",),
         "image": ("deactivate", "delete")}
# Resource statuses in which a softer step has already been taken.
DONE_STATUSES = {"shelve": ("SHELVED", "SHELVED_OFFLOADED"), "stop": ("SHUTOFF",), "deactivate": ("deactivated",)}
PAST = {"delete": "deleted", "shelve": "shelved", "stop": "stopped", "deactivate": "deactivated"}


@dataclass(frozen=True)
class ReapOptions:
    server_action: str = "delete"
    image_action: str = "deactivate"
    handle_requests: bool = True

    def verb(self, kind: str) -> str:
        return {"server": self.server_action, "image": self.image_action}.get(kind, "delete")


@dataclass(frozen=True)
class RequestOutcome:
    """An owner's self-service extension request (``<prefix>extend``) and what became of it."""

    requested: str
    granted: bool
    reason: str
    expires: datetime | None = None

    def as_dict(self) -> dict:
        return {"requested": self.requested, "granted": self.granted, "reason": self.reason,
                "expires": format_time(self.expires) if self.expires else None}


@dataclass
class Outcome:
    """What this run decided for one resource."""

    record: dict
    lease: LeaseRecord
    decision: Decision
    owner: Owner
    request: RequestOutcome | None = None
    set_values: dict[str, str] = field(default_factory=dict)
    remove_keys: tuple[str, ...] = ()
    verb: str | None = None        # REMOVE: delete, shelve, stop or deactivate
    users: frozenset[Key] = frozenset()

    @property
    def key(self) -> Key:
        return Key(self.record["kind"], self.record["id"])

    @property
    def writes(self) -> bool:
        return bool(self.set_values or self.remove_keys)

    def days_left(self, now: datetime) -> int | None:
        return days_left(self.decision.expires, now)

    def as_dict(self, now: datetime) -> dict:
        record, decision, owner = self.record, self.decision, self.owner
        return {
            **identity(record),
            "user_id": record.get("user_id"), "user_name": record.get("user_name"),
            "owner": owner.email, "owner_source": owner.source, "owner_note": owner.note,
            "status": decision.status, "action": decision.action, "removal": self.verb, "reason": decision.reason,
            "expires": format_time(decision.expires) if decision.expires else None,
            "days_left": self.days_left(now), "milestone_days": decision.milestone_days,
            "lease_problems": dict(self.lease.problems),
            "request": self.request.as_dict() if self.request else None,
            "writes": {"set": dict(self.set_values), "remove": list(self.remove_keys)} if self.writes else None,
        }

    def digest_item(self, region: str, now: datetime, keys: LeaseKeys) -> DigestItem:
        record = self.record
        return DigestItem(record["kind"], record["id"], record.get("name") or "", record.get("project_name")
                          or record.get("project_id") or "", region, format_time(self.decision.expires),
                          self.days_left(now), self.decision.milestone_days,
                          keys.extend_command(record["kind"], record["id"]))


def identity(record: dict) -> dict:
    """The fields that name a resource in results and audit records."""
    return {"kind": record["kind"], "id": record["id"], "name": record.get("name"),
            "project_id": record.get("project_id"), "project_name": record.get("project_name")}


def days_left(expires: datetime | None, now: datetime) -> int | None:
    """Whole days until expiry as an owner reads them: 0.3 days left is "1 day", 0.3 days ago is "-1"."""
    if expires is None:
        return None
    days = (expires - now).total_seconds() / 86400
    return math.ceil(days) if days > 0 else math.floor(days)


def users_of(records: list[dict]) -> dict[Key, set[Key]]:
    """Who uses what: servers use their image and volumes; snapshots keep their volume."""
    users: dict[Key, set[Key]] = {}
    for record in records:
        me = Key(record["kind"], record["id"])
        if record["kind"] == "server":
            if record.get("image_id"):
                users.setdefault(Key("image", record["image_id"]), set()).add(me)
            for volume_id in record.get("volume_ids") or ():
                users.setdefault(Key("volume", volume_id), set()).add(me)
        elif record["kind"] == "volume":
            for server_id in record.get("attached_to") or ():
                users.setdefault(me, set()).add(Key("server", server_id))
        elif record["kind"] == "snapshot" and record.get("volume_id"):
            users.setdefault(Key("volume", record["volume_id"]), set()).add(me)
    return users


def handle_request(policy: Policy, keys: LeaseKeys, lease: LeaseRecord, now: datetime,
                   raw: str) -> tuple[RequestOutcome, LeaseRecord, dict[str, str]]:
    """Grant or refuse an owner's extension request; the request key is removed either way.

    Returns the outcome, the lease as it is after the request, and the values to write.
    """
    if lease.extend_request_days is None:
        return RequestOutcome(raw, False, "not a number of days: %r (use e.g. %s=30)" % (raw, keys.extend_request)), \
            lease, {}
    extension = extend(policy, lease, lease.extend_request_days, now)
    if not extension.granted:
        return RequestOutcome(raw, False, extension.reason), lease, {}
    granted = replace(lease, expires=extension.expires, extensions=extension.extensions,
                      extend_request_days=None, has_extend_request=False)
    values = lease_metadata(keys, expires=extension.expires, extensions=extension.extensions)
    return RequestOutcome(raw, True, extension.reason, extension.expires), granted, values


def created_time(record: dict) -> datetime | None:
    try:
        return parse_time(record["created_at"]) if record.get("created_at") else None
    except LeaseValueError:
        return None


def decide_scan(
    records: list[dict],
    policy: Policy,
    keys: LeaseKeys,
    now: datetime,
    exemption: Callable[[dict], str | None],
    owner_of: Callable[[dict, LeaseRecord], Owner],
    options: ReapOptions = ReapOptions(),
) -> list[Outcome]:
    """Decide every resource of a scan, in dependency order (servers first, images last)."""
    users = users_of(records)
    removing: set[Key] = set()
    outcomes = []
    for record in sorted(records, key=lambda r: (kind_rank(r["kind"]), r.get("project_id") or "", r["id"])):
        key = Key(record["kind"], record["id"])
        lease = read_lease(record.get("metadata"), keys)
        exempt = exemption(record)
        request = None
        set_values: dict[str, str] = {}
        remove_keys: tuple[str, ...] = ()
        if exempt is None and options.handle_requests and lease.has_extend_request:
            raw = str((record.get("metadata") or {}).get(keys.extend_request))
            request, lease, set_values = handle_request(policy, keys, lease, now, raw)
            remove_keys = (keys.extend_request,)
        my_users = frozenset(users.get(key, ()))
        decision = classify(policy, lease, now, created_time(record), exempt, in_use_reason(my_users, removing))
        owner = owner_of(record, lease)
        if decision.action == WRITE_LEASE:
            set_values.update(lease_metadata(keys, expires=decision.write_expires))
            remove_keys += decision.drop_keys
        verb = None
        if decision.action == REMOVE:
            verb = options.verb(record["kind"])
            if record.get("status") in DONE_STATUSES.get(verb, ()):
                decision = replace(decision, action=NONE, reason="%s; already %s" % (decision.reason, PAST[verb]))
                verb = None
            elif verb == "delete":
                removing.add(key)
        if decision.action == NOTIFY and not owner.known:
            decision = replace(decision, reason="%s; nobody to notify (%s), so never removed"
                               % (decision.reason, owner.note or "no owner"))
        outcomes.append(Outcome(record, lease, decision, owner, request, set_values, remove_keys, verb, my_users))
    return outcomes


def to_notify(outcomes: list[Outcome]) -> list[Outcome]:
    """Resources whose owner gets a notice now (known owners only)."""
    return [o for o in outcomes if o.decision.action == NOTIFY and o.owner.known]


def counts(outcomes: list[Outcome]) -> dict:
    """Counts by status and by kind, for the report."""
    by_status: dict[str, int] = {}
    by_kind: dict[str, dict[str, int]] = {}
    for outcome in outcomes:
        status, kind = outcome.decision.status, outcome.record["kind"]
        by_status[status] = by_status.get(status, 0) + 1
        of_kind = by_kind.setdefault(kind, {})
        of_kind[status] = of_kind.get(status, 0) + 1
    return {"scanned": len(outcomes), "by_status": by_status, "by_kind": by_kind}
