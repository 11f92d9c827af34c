# Copyright: osops.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Changing one resource's lease on request (pure): set, extend, clear, record a notice.

Every change is checked against the policy here, whoever asks: an explicit
expiry is capped at ``now + max_lease``, owners' extensions are counted and
capped, and a notice is recorded only for the expiry the mail was about.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from .decide import days_left
from .keys import LeaseKeys, LeaseRecord, LeaseValueError, Notice, format_time, lease_metadata, parse_time, valid_email
from .policy import WRITE_LEASE, Policy, classify, extend

SET = "set"
EXTENDED = "extended"
REFUSED = "refused"
CLEARED = "cleared"
RECORDED = "recorded"
UNCHANGED = "unchanged"
SKIPPED = "skipped"

STATES = ("present", "extended", "absent", "notified")


class EditError(ValueError):
    """A request that cannot be carried out as given (the message says which option)."""


@dataclass(frozen=True)
class EditRequest:
    state: str = "present"
    expires: str | None = None           # present: an explicit expiry (ISO 8601)
    lease_days: float | None = None      # present: expiry this many days from now
    extend_days: float | None = None     # extended
    as_operator: bool = False            # extended: not counted against max_extensions
    owner: str | None = None             # present: owner override; "" removes it
    milestone_days: int | None = None    # notified
    for_expiry: str | None = None        # notified: the expiry the mail was about

    def __post_init__(self):
        if self.state not in STATES:
            raise EditError("state must be one of %s" % ", ".join(STATES))
        if self.state == "extended" and not self.extend_days:
            raise EditError("state=extended needs extend_days")
        if self.state == "notified" and self.milestone_days is None:
            raise EditError("state=notified needs milestone_days")
        if self.expires is not None and self.lease_days is not None:
            raise EditError("give expires or lease_days, not both")
        if self.owner and not valid_email(self.owner):
            raise EditError("owner: not an e-mail address: %r" % self.owner)


@dataclass
class LeaseChange:
    outcome: str
    reason: str
    set_values: dict[str, str] = field(default_factory=dict)
    remove_keys: tuple[str, ...] = ()

    @property
    def changes(self) -> bool:
        return bool(self.set_values or self.remove_keys)


def _time_option(name: str, text: str) -> datetime:
    try:
        return parse_time(text)
    except LeaseValueError as error:
        raise EditError("%s: %s" % (name, error)) from None


def plan_edit(policy: Policy, keys: LeaseKeys, lease: LeaseRecord, request: EditRequest, now: datetime,
              created: datetime | None = None) -> LeaseChange:
    """The metadata change that carries out ``request`` on a resource whose lease is ``lease``."""
    if request.state == "absent":
        return LeaseChange(CLEARED, "lease removed; the next scan leases the resource again unless it is exempt",
                           remove_keys=keys.all())
    if request.state == "extended":
        return _extend(policy, keys, lease, request, now)
    if request.state == "notified":
        return _notified(keys, lease, request, now)
    return _present(policy, keys, lease, request, now, created)


def _present(policy, keys, lease, request, now, created) -> LeaseChange:
    change = LeaseChange(UNCHANGED, "lease unchanged")
    limit = now + policy.max_lease
    if request.expires is not None or request.lease_days is not None:
        wanted = (_time_option("expires", request.expires) if request.expires is not None
                  else now + timedelta(days=request.lease_days))
        target = min(wanted, limit)
        note = " (capped at the policy maximum of %g days)" % policy.max_lease_days if wanted > limit else ""
        if lease.expires != target or lease.problems:
            change = LeaseChange(SET, "expiry set to %s%s" % (format_time(target), note),
                                 lease_metadata(keys, expires=target), tuple(sorted(lease.problems)))
        elif note:
            change = LeaseChange(UNCHANGED, "expiry already at the policy maximum")
    else:
        decision = classify(policy, lease, now, created)
        if decision.action == WRITE_LEASE:
            change = LeaseChange(SET, decision.reason, lease_metadata(keys, expires=decision.write_expires),
                                 decision.drop_keys)
    if request.owner is not None:
        if (request.owner == "" and lease.owner is not None) or keys.owner in lease.problems:
            change.remove_keys = tuple(sorted(set(change.remove_keys) | {keys.owner}))
        if request.owner and request.owner != lease.owner:
            change.set_values[keys.owner] = request.owner
        if change.changes and change.outcome == UNCHANGED:
            change = replace(change, outcome=SET, reason="owner override %s" % (request.owner or "removed"))
    return change


def _extend(policy, keys, lease, request, now) -> LeaseChange:
    extension = extend(policy, lease, request.extend_days, now, operator=request.as_operator)
    if not extension.granted:
        return LeaseChange(REFUSED, extension.reason)
    return LeaseChange(EXTENDED, extension.reason,
                       lease_metadata(keys, expires=extension.expires, extensions=extension.extensions))


def _notified(keys, lease, request, now) -> LeaseChange:
    if lease.expires is None or keys.expires in lease.problems:
        return LeaseChange(SKIPPED, "no readable expiry to record a notice for")
    if request.for_expiry is not None and _time_option("for_expiry", request.for_expiry) != lease.expires:
        return LeaseChange(SKIPPED, "lease changed since the notice was prepared (expires %s now)"
                           % format_time(lease.expires))
    current = lease.notice
    if current is not None and current.for_expiry == lease.expires and current.milestone_days <= request.milestone_days:
        return LeaseChange(UNCHANGED, "a %d-day notice is already recorded for this expiry" % current.milestone_days)
    notice = Notice(int(request.milestone_days), now, lease.expires)
    return LeaseChange(RECORDED, "%d-day notice recorded" % notice.milestone_days, lease_metadata(keys, notice=notice))


def lease_view(lease: LeaseRecord, now: datetime) -> dict:
    """A lease as modules return it."""
    notice = lease.notice
    return {
        "expires": format_time(lease.expires) if lease.expires else None,
        "days_left": days_left(lease.expires, now),
        "notice": None if notice is None else {
            "milestone_days": notice.milestone_days, "sent": format_time(notice.sent),
            "for_expiry": format_time(notice.for_expiry)},
        "extensions": lease.extensions,
        "owner": lease.owner,
        "extend_request_days": lease.extend_request_days,
        "problems": dict(lease.problems),
    }
