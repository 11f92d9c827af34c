# Copyright: osops.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Deciding a whole scan (pure): requests, exemptions, owners, statuses, dependencies.

Input: the records the scan read (``ResourceRecord``; plain data is read as one), the policy and ``now``.
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

from .keys import LeaseKeys, LeaseRecord, LeaseValueError, effective_change, format_time, parse_time, read_lease, shorten
from .owners import Owner
from .policy import INVALID, NONE, NOTIFY, REMOVE, WRITE_LEASE, ActionDates, Decision, Policy, action_dates, classify, extend
from .kind_table import KIND, PAST, kind_rank
from .in_use import in_use_reason, users_of
from .reap_plan import DigestItem
from .record import Key, ResourceRecord
from .trust import SealContext, TrustedLease, sealed_values, trust_lease

FROZEN_NOTE = "Nova accepts no metadata while a server is shelved"


def metadata_frozen(record: ResourceRecord) -> bool:
    """Can the lease of this resource not be written now (whoever writes)? See KindSpec.metadata_frozen."""
    spec = KIND.get(record.kind)
    return spec is not None and record.status in spec.metadata_frozen


@dataclass(frozen=True)
class ReapOptions:
    server_action: str = "delete"
    image_action: str = "deactivate"
    handle_requests: bool = True
    lock_servers: bool = False

    def verb(self, kind: str) -> str:
        return {"server": self.server_action, "image": self.image_action}.get(kind, KIND[kind].verbs[0])


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

    record: ResourceRecord
    lease: LeaseRecord
    decision: Decision
    owner: Owner
    request: RequestOutcome | None = None
    set_values: dict[str, str] = field(default_factory=dict)
    remove_keys: tuple[str, ...] = ()
    verb: str | None = None        # REMOVE: delete, shelve, stop or deactivate
    users: frozenset[Key] = frozenset()
    trusted: TrustedLease | None = None
    seal_after: str | None = None  # the seal the resource holds: as scanned, or as this run wrote it
    planned: str | None = None     # NOTIFY: what its removal will do (the verb configured for its kind)
    dates: ActionDates | None = None  # NOTIFY: when that is done at the earliest, and the last notice before

    @property
    def tampered(self) -> list[dict]:
        return [change.as_dict() for change in self.trusted.changes] if self.trusted else []

    @property
    def key(self) -> Key:
        return self.record.key

    @property
    def writes(self) -> bool:
        return bool(self.set_values or self.remove_keys)

    def days_left(self, now: datetime) -> int | None:
        return days_left(self.decision.expires, now)

    def as_dict(self, now: datetime) -> dict:
        record, decision, owner = self.record, self.decision, self.owner
        return {
            **record.identity(),
            "user_id": record.user_id, "user_name": record.user_name,
            "owner": owner.email, "owner_source": owner.source, "owner_note": owner.note,
            "status": decision.status, "action": decision.action, "removal": self.verb, "reason": decision.reason,
            "expires": format_time(decision.expires) if decision.expires else None,
            "days_left": self.days_left(now), "milestone_days": decision.milestone_days,
            "lease_problems": dict(self.lease.problems),
            "seal": self.trusted.seal if self.trusted else None,
            "tampered": [str(change) for change in self.trusted.changes] if self.trusted else [],
            "request": self.request.as_dict() if self.request else None,
            "writes": {"set": dict(self.set_values), "remove": list(self.remove_keys)} if self.writes else None,
        }

    def digest_item(self, region: str, now: datetime, keys: LeaseKeys, extend_days: int) -> DigestItem:
        """The owner's mail entry of a resource to notify (``decide_one`` set ``planned`` and ``dates``)."""
        record, expires, dates = self.record, self.decision.expires, self.dates
        if expires is None or dates is None or self.planned is None:
            raise ValueError("%s %s has no notice due: nothing to mail" % (record.kind, record.id))
        return DigestItem(record.kind, record.id, record.name or "", record.project_name or record.project_id or "",
                          region, format_time(expires), self.days_left(now), self.decision.milestone_days,
                          keys.extend_command(record.kind, record.id, extend_days), self.planned,
                          format_time(dates.action_on), format_time(dates.last_notice_on), expires <= now)


def days_left(expires: datetime | None, now: datetime) -> int | None:
    """Whole days until expiry as an owner reads them: 0.3 days left is "1 day", 0.3 days ago is "-1"."""
    if expires is None:
        return None
    days = (expires - now).total_seconds() / 86400
    return math.ceil(days) if days > 0 else math.floor(days)


def handle_request(policy: Policy, keys: LeaseKeys, lease: LeaseRecord, now: datetime,
                   raw: str) -> tuple[RequestOutcome, LeaseRecord]:
    """Grant or refuse an owner's extension request (counted in the sealed state); returns the lease after it."""
    handled = replace(lease, extend_request_days=None, has_extend_request=False)
    if lease.extend_request_days is None:
        return RequestOutcome(shorten(raw), False, "not a number of days: %s (use e.g. %s=30)"
                              % (shorten(raw), keys.extend_request)), handled
    extension = extend(policy, lease, lease.extend_request_days, now)
    if not extension.granted:
        return RequestOutcome(shorten(raw), False, extension.reason), handled
    granted = replace(handled, expires=extension.expires, extensions=extension.extensions)
    return RequestOutcome(shorten(raw), True, extension.reason, extension.expires), granted


def created_time(record: ResourceRecord) -> datetime | None:
    try:
        return parse_time(record.created_at) if record.created_at else None
    except LeaseValueError:
        return None


def lease_writes(seals: SealContext, record: ResourceRecord, lease: LeaseRecord,
                 drop_request: bool) -> tuple[dict[str, str], tuple[str, ...]]:
    """The keys to set and remove so the resource stores exactly ``lease``, sealed (an ``effective_change``)."""
    wanted = sealed_values(seals, record.kind, record.id, lease)
    unwanted = [key for key in seals.keys.written() if key not in wanted]
    if drop_request:
        unwanted.append(seals.keys.extend_request)
    return effective_change(record.metadata, wanted, unwanted)


def decide_one(record: ResourceRecord, seals: SealContext, exemption: Callable[[ResourceRecord], str | None],
               owner_of: Callable[[ResourceRecord, LeaseRecord], Owner], options: ReapOptions,
               users: frozenset[Key], removing: set[Key]) -> Outcome:
    """One resource's decision; may raise (``decide_scan`` turns that into an ``invalid`` outcome)."""
    policy, keys, now = seals.policy, seals.keys, seals.now
    if record.record_error:
        raise ValueError(record.record_error)
    metadata = record.metadata
    created = created_time(record)
    trusted = trust_lease(seals, record.kind, record.id, metadata, read_lease(metadata, keys), created)
    lease = trusted.lease
    exempt = ("sealed exemption: %s" % shorten(lease.exempt)) if lease.exempt else exemption(record)
    request = None
    if exempt is None and options.handle_requests and lease.has_extend_request:
        request, lease = handle_request(policy, keys, lease, now, str(metadata.get(keys.extend_request)))
    verb = options.verb(record.kind)
    done = PAST[verb] if record.status in KIND[record.kind].done_in(verb) else None
    frozen = metadata_frozen(record)
    decision = classify(policy, lease, now, created, exempt, in_use_reason(users, removing), done,
                        FROZEN_NOTE if frozen else None)
    if trusted.tampered:
        decision = replace(decision, reason="lease tampered (%s; sealed values restored); %s" % (
            trusted.note or "; ".join(str(change) for change in trusted.changes[:3]), decision.reason))
    set_values: dict[str, str] = {}
    remove_keys: tuple[str, ...] = ()
    if frozen:
        lease = trusted.lease  # nothing can be written: the lease stays as it is
    elif exempt is None:
        if decision.action == WRITE_LEASE:
            lease = replace(lease, expires=decision.write_expires, problems={},
                            notice=None if keys.notice in lease.problems else lease.notice)
        set_values, remove_keys = lease_writes(seals, record, lease, request is not None)
    if decision.action != REMOVE:
        verb = None
    elif verb == "delete":
        removing.add(record.key)
    owner = owner_of(record, lease)
    planned, dates = None, None
    if decision.action == NOTIFY:
        planned, dates = options.verb(record.kind), action_dates(policy, decision.expires, lease.notice, now)
        if not owner.known:
            decision = replace(decision, reason="%s; nobody to notify (%s), so never removed"
                               % (decision.reason, owner.note or "no owner"))
    return Outcome(record, lease, decision, owner, request, set_values, remove_keys, verb, users, trusted,
                   metadata.get(keys.seal), planned, dates)


def decide_scan(
    records: list[ResourceRecord],
    seals: SealContext,
    exemption: Callable[[ResourceRecord], str | None],
    owner_of: Callable[[ResourceRecord, LeaseRecord], Owner],
    options: ReapOptions = ReapOptions(),
    elsewhere: list[ResourceRecord] = (),
) -> list[Outcome]:
    """Decide every resource of a scan, in dependency order (servers first, images last).

    ``elsewhere``: resources outside this scan (other kinds or projects) that may use
    the scanned ones; they are never decided, only counted as users. One resource
    that cannot be decided (whatever it holds) is ``invalid`` and the others go on.
    """
    records = [ResourceRecord.of(record) for record in records]
    users = users_of(records + [ResourceRecord.of(record) for record in elsewhere])
    removing: set[Key] = set()
    outcomes = []
    for record in sorted(records, key=lambda r: (kind_rank(r.kind), str(r.project_id or ""), str(r.id))):
        my_users = frozenset(users.get(record.key, ()))
        try:
            outcome = decide_one(record, seals, exemption, owner_of, options, my_users, removing)
        except Exception as error:  # pylint: disable=broad-except
            # never stop the scan for the others; never remove what could not be decided
            outcome = Outcome(record, LeaseRecord(), Decision(INVALID, NONE, "could not be decided: %s: %s" % (
                type(error).__name__, shorten(str(error), 200))), Owner(None, None, note="not decided"),
                users=my_users, seal_after=record.metadata.get(seals.keys.seal))
        outcomes.append(outcome)
    return outcomes


def to_notify(outcomes: list[Outcome]) -> list[Outcome]:
    """Resources whose owner gets a notice now (known owners only)."""
    return [o for o in outcomes if o.decision.action == NOTIFY and o.owner.known]


def counts(outcomes: list[Outcome]) -> dict:
    """Counts by status and by kind, for the report."""
    by_status: dict[str, int] = {}
    by_kind: dict[str, dict[str, int]] = {}
    by_seal: dict[str, int] = {}
    for outcome in outcomes:
        seal = outcome.trusted.seal if outcome.trusted else "undecided"
        by_seal[seal] = by_seal.get(seal, 0) + 1
        status, kind = outcome.decision.status, outcome.record.kind
        by_status[status] = by_status.get(status, 0) + 1
        of_kind = by_kind.setdefault(kind, {})
        of_kind[status] = of_kind.get(status, 0) + 1
    return {"scanned": len(outcomes), "by_status": by_status, "by_kind": by_kind, "by_seal": by_seal,
            "tampered": sum(1 for o in outcomes if o.trusted and o.trusted.tampered)}
