# Copyright: osops.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Changing one resource's lease on request (pure): set, extend, clear, record a notice.

Every change is checked against the policy here, whoever asks: an explicit
expiry is capped at ``now + max_lease``, owners' extensions are counted and
capped, and a notice is recorded only for the expiry the mail was about.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from .decide import days_left
from .keys import MAX_DAYS, LeaseKeys, LeaseRecord, LeaseValueError, Notice, format_time, parse_time, valid_email
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
    exempt: str | None = None            # present: sealed exemption with this reason; "" removes it
    milestone_days: int | None = None    # notified
    for_expiry: str | None = None        # notified: the expiry the mail was about

    def __post_init__(self):
        if self.state not in STATES:
            raise EditError("state must be one of %s" % ", ".join(STATES))
        if self.state == "extended" and self.extend_days is None:
            raise EditError("state=extended needs extend_days")
        if self.state == "notified" and self.milestone_days is None:
            raise EditError("state=notified needs milestone_days")
        if self.expires is not None and self.lease_days is not None:
            raise EditError("give expires or lease_days, not both")
        for name in ("lease_days", "extend_days"):
            value = getattr(self, name)
            if value is not None and (not math.isfinite(value) or not 0 < value <= MAX_DAYS):
                raise EditError("%s must be a number of days above 0 and at most %d, not %r" % (name, MAX_DAYS, value))
        if self.milestone_days is not None and not 0 <= self.milestone_days <= MAX_DAYS:
            raise EditError("milestone_days must be whole days from 0 to %d, not %r" % (MAX_DAYS, self.milestone_days))
        if self.expires is not None:
            _time_option("expires", self.expires)
        if self.for_expiry is not None:
            _time_option("for_expiry", self.for_expiry)
        if self.owner and not valid_email(self.owner):
            raise EditError("owner: not one plain e-mail address: %r" % self.owner)
        if self.exempt and (len(self.exempt) > 200 or not self.exempt.isprintable()):
            raise EditError("exempt: a reason of at most 200 printable characters")


@dataclass(frozen=True)
class LeaseChange:
    """What a request makes of a lease: the lease to store (None: no lease at all)."""

    outcome: str
    reason: str
    lease: LeaseRecord | None


def _time_option(name: str, text: str) -> datetime:
    try:
        return parse_time(text)
    except LeaseValueError as error:
        raise EditError("%s: %s" % (name, error)) from None


def plan_edit(policy: Policy, keys: LeaseKeys, lease: LeaseRecord, request: EditRequest, now: datetime,
              created: datetime | None = None) -> LeaseChange:
    """What carrying out ``request`` makes of a resource's trusted ``lease``."""
    if request.state == "absent":
        return LeaseChange(CLEARED, "lease removed; the next scan leases the resource again unless it is exempt "
                           "(from seal_enforced_from on: from its creation time, reported as tampered)", None)
    if request.state == "extended":
        return _extend(policy, lease, request, now)
    if request.state == "notified":
        return _notified(keys, lease, request, now)
    return _present(policy, lease, request, now, created)


def _present(policy, lease, request, now, created) -> LeaseChange:
    change = LeaseChange(UNCHANGED, "lease unchanged", lease)
    limit = now + policy.max_lease
    if request.expires is not None or request.lease_days is not None:
        wanted = (_time_option("expires", request.expires) if request.expires is not None
                  else now + timedelta(days=request.lease_days))
        target = min(wanted, limit)
        note = " (capped at the policy maximum of %g days)" % policy.max_lease_days if wanted > limit else ""
        if lease.expires != target or lease.problems:
            change = LeaseChange(SET, "expiry set to %s%s" % (format_time(target), note),
                                 replace(lease, expires=target, problems={}))
        elif note:
            change = LeaseChange(UNCHANGED, "expiry already at the policy maximum", lease)
    else:
        decision = classify(policy, lease, now, created)
        if decision.action == WRITE_LEASE:
            change = LeaseChange(SET, decision.reason, replace(lease, expires=decision.write_expires, problems={}))
    for field_name, wanted_value, label in (("owner", request.owner, "owner override"),
                                            ("exempt", request.exempt, "exemption")):
        if wanted_value is None or (wanted_value or None) == getattr(change.lease, field_name):
            continue
        reason = change.reason if change.outcome != UNCHANGED else ""
        said = "%s %s" % (label, wanted_value or "removed")
        change = LeaseChange(SET, "; ".join(part for part in (reason, said) if part),
                             replace(change.lease, **{field_name: wanted_value or None}))
    return change


def _extend(policy, lease, request, now) -> LeaseChange:
    extension = extend(policy, lease, request.extend_days, now, operator=request.as_operator)
    if not extension.granted:
        return LeaseChange(REFUSED, extension.reason, lease)
    return LeaseChange(EXTENDED, extension.reason,
                       replace(lease, expires=extension.expires, extensions=extension.extensions))


def _notified(keys, lease, request, now) -> LeaseChange:
    if lease.expires is None or keys.expires in lease.problems:
        return LeaseChange(SKIPPED, "no readable expiry to record a notice for", lease)
    if request.for_expiry is not None and _time_option("for_expiry", request.for_expiry) != lease.expires:
        return LeaseChange(SKIPPED, "lease changed since the notice was prepared (expires %s now)"
                           % format_time(lease.expires), lease)
    current = lease.notice
    if current is not None and current.for_expiry == lease.expires and current.milestone_days <= request.milestone_days:
        return LeaseChange(UNCHANGED, "a %d-day notice is already recorded for this expiry" % current.milestone_days,
                           lease)
    notice = Notice(int(request.milestone_days), now, lease.expires)
    return LeaseChange(RECORDED, "%d-day notice recorded" % notice.milestone_days, replace(lease, notice=notice))


def lease_view(lease: LeaseRecord | None, now: datetime) -> dict:
    """A lease as modules return it."""
    lease = lease or LeaseRecord()
    notice = lease.notice
    return {
        "expires": format_time(lease.expires) if lease.expires else None,
        "days_left": days_left(lease.expires, now),
        "notice": None if notice is None else {
            "milestone_days": notice.milestone_days, "sent": format_time(notice.sent),
            "for_expiry": format_time(notice.for_expiry)},
        "extensions": lease.extensions,
        "owner": lease.owner,
        "exempt": lease.exempt,
        "extend_request_days": lease.extend_request_days,
        "problems": dict(lease.problems),
    }
