# Copyright: osops.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The lease policy: when a resource expires, which notice is due, what may go (pure).

Promises kept here, and unit-tested:
- nothing is removable unless its owner was sent the last milestone's notice for
  the current expiry at least ``grace`` ago;
- a resource seen without a lease gets one no earlier than
  ``now + first milestone + grace``: switching the policy on cannot remove
  anything whose owner was not warned;
- a milestone missed by a skipped run is still sent (the most urgent one due), and
  a re-run never sends the same milestone twice for the same expiry;
- an expiry beyond ``now + max_lease`` is never honoured: it is capped and reported;
  an unreadable lease is never a reason to remove anything;
- what an owner is told (``action_dates``) is the same maths: the action never comes
  before the expiry, nor before the last milestone's notice plus ``grace``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone

from .keys import MAX_DAYS, LeaseRecord, Notice, readable_time

# Statuses of a resource, as the modules report them.
ACTIVE = "active"          # leased, nothing due
EXPIRING = "expiring"      # a milestone notice is due
EXPIRED = "expired"        # past expiry (removable only after notice + grace)
EXEMPT = "exempt"          # an exemption matched: never touched
ENROLLED = "enrolled"      # had no lease: one is written now
INVALID = "invalid"        # lease unreadable or beyond policy: repaired, never removed this run
IN_USE = "in_use"          # expired, but servers or attachments still use it

# Actions the act step carries out.
NONE = "none"
WRITE_LEASE = "write_lease"    # enrol, cap or repair: write the expiry (and reset notice state)
NOTIFY = "notify"              # include in the owner's mail; record the notice once sent
REMOVE = "remove"


class PolicyError(ValueError):
    """Policy options that contradict each other."""


@dataclass(frozen=True)
class Policy:
    lifetime_days: float = 30
    # days before expiry at which the owner is told, most distant first
    milestones_days: tuple[int, ...] = (14, 7, 1)
    # minimum time between the last notice and removal
    grace_days: float = 1
    # no expiry is honoured further than this from now
    max_lease_days: float = 90
    max_extensions: int = 3

    def __post_init__(self):
        for name in ("lifetime_days", "grace_days", "max_lease_days"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                    or not 0 <= value <= MAX_DAYS:
                raise PolicyError("%s must be a number of days from 0 to %d, not %r" % (name, MAX_DAYS, value))
        if isinstance(self.max_extensions, bool) or not isinstance(self.max_extensions, int) \
                or not 0 <= self.max_extensions <= 1000:
            raise PolicyError("max_extensions must be a whole number from 0 to 1000, not %r" % (self.max_extensions,))
        try:
            milestones = tuple(sorted({int(m) for m in self.milestones_days}, reverse=True))
        except (TypeError, ValueError, OverflowError):
            raise PolicyError("milestones must be whole days, not %r" % (self.milestones_days,)) from None
        object.__setattr__(self, "milestones_days", milestones)
        if not milestones or milestones[-1] < 0 or milestones[0] > MAX_DAYS:
            raise PolicyError("milestones must be one or more whole days before expiry (0 to %d)" % MAX_DAYS)
        if self.lifetime_days <= 0:
            raise PolicyError("lifetime must be positive")
        if self.max_lease_days < self.lifetime_days:
            raise PolicyError("max_lease_days (%s) is shorter than the lifetime (%s)" % (self.max_lease_days, self.lifetime_days))
        if self.max_lease_days < milestones[0] + self.grace_days:
            raise PolicyError("max_lease_days must leave room for the first milestone plus grace")

    @property
    def first_milestone(self) -> timedelta:
        return timedelta(days=self.milestones_days[0])

    @property
    def last_milestone(self) -> timedelta:
        return timedelta(days=self.milestones_days[-1])

    @property
    def grace(self) -> timedelta:
        return timedelta(days=self.grace_days)

    @property
    def max_lease(self) -> timedelta:
        return timedelta(days=self.max_lease_days)

    def earliest_expiry(self, now: datetime) -> datetime:
        """The earliest expiry a newly leased resource may get: every notice still fits."""
        return now + self.first_milestone + self.grace

    def enrolment_expiry(self, created: datetime | None, now: datetime) -> datetime:
        """Expiry for a resource without lease: its lifetime from creation, never earlier than earliest_expiry."""
        natural = (created + timedelta(days=self.lifetime_days)) if created else now + timedelta(days=self.lifetime_days)
        return min(max(natural, self.earliest_expiry(now)), now + self.max_lease)

    def rebuilt_expiry(self, created: datetime | None, now: datetime) -> datetime:
        """Expiry for a resource whose lease was removed or forged: its lifetime from creation,
        never earlier than the last milestone plus grace (the owner is told once), never later than max_lease."""
        floor = now + self.last_milestone + self.grace
        natural = (created + timedelta(days=self.lifetime_days)) if created else floor
        return min(max(natural, floor), now + self.max_lease)


@dataclass(frozen=True)
class Decision:
    status: str
    action: str
    reason: str
    expires: datetime | None = None          # the expiry in force after this decision
    milestone_days: int | None = None        # the notice due (NOTIFY)
    write_expires: datetime | None = None    # WRITE_LEASE: the expiry to store
    drop_keys: tuple[str, ...] = ()          # WRITE_LEASE: unreadable keys to remove


def due_milestone(policy: Policy, expires: datetime, notice: Notice | None, now: datetime) -> int | None:
    """The most urgent milestone reached and not yet notified for this expiry, or None.

    Reached: ``now >= expires - milestone``. A notice counts only if it was sent
    for this very expiry; one at milestone m covers every milestone >= m.
    """
    # differences, not sums: any stored time from year 1 to 9999 compares without overflow
    reached = [m for m in policy.milestones_days if expires - now <= timedelta(days=m)]
    if not reached:
        return None
    most_urgent = min(reached)
    if notice is not None and notice.for_expiry == expires and notice.milestone_days <= most_urgent:
        return None
    return most_urgent


@dataclass(frozen=True)
class ActionDates:
    """What an owner is told about one resource: when it is acted on at the earliest, and their last notice before."""

    action_on: datetime       # never before the expiry, never before last_notice_on + grace
    last_notice_on: datetime  # the last milestone's notice: already sent, due on its day, or sent now


def action_dates(policy: Policy, expires: datetime, notice: Notice | None, now: datetime) -> ActionDates:
    """The earliest the resource is removed (stopped, shelved, deactivated), assuming the notice due now is sent now.

    The last milestone's notice for this expiry counts where it was sent already; otherwise it goes on
    its day (``expires - last milestone``), or now if that day is past (a resource found expired, or
    missed runs: the notice sent now is the last one). Removal waits for the expiry and for ``grace``
    after that notice (``classify``). Runs are periodic: both dates are the earliest, never promised to the minute.
    """
    last = policy.last_milestone
    if notice is not None and notice.for_expiry == expires and notice.milestone_days <= policy.milestones_days[-1]:
        last_notice = notice.sent
    elif expires - now <= last:   # differences, not sums: no overflow for any stored time
        last_notice = now
    else:
        last_notice = expires - last
    if expires - last_notice >= policy.grace:
        return ActionDates(expires, last_notice)
    try:
        return ActionDates(last_notice + policy.grace, last_notice)
    except OverflowError:
        return ActionDates(datetime.max.replace(tzinfo=timezone.utc), last_notice)


def classify(
    policy: Policy,
    lease: LeaseRecord,
    now: datetime,
    created: datetime | None = None,
    exempt_reason: str | None = None,
    in_use_reason: str | None = None,
    already_done: str | None = None,
    frozen_note: str | None = None,
) -> Decision:
    """Decide what a resource's lease means now. ``now`` may be a future ``as_of``.

    The resource's circumstances are part of the one decision: ``already_done`` says what its removal
    would do is done (a stopped server that would be stopped: "stopped"), so it is left as it is;
    ``frozen_note`` says why its service takes no metadata now (a shelved server), so no lease is
    written and no notice sent (it could not be recorded).
    """
    decision = _classify(policy, lease, now, created, exempt_reason, in_use_reason, already_done)
    if frozen_note and decision.action in (WRITE_LEASE, NOTIFY):
        return replace(decision, action=NONE, reason="%s; lease left as it is: %s" % (decision.reason, frozen_note))
    return decision


def _classify(policy: Policy, lease: LeaseRecord, now: datetime, created: datetime | None, exempt_reason: str | None,
              in_use_reason: str | None, already_done: str | None) -> Decision:
    if exempt_reason:
        return Decision(EXEMPT, NONE, exempt_reason, lease.expires)
    if lease.problems:
        # Only an unreadable expiry is re-enrolled (full notice again); other
        # broken keys are dropped and the expiry kept, so garbling a key by
        # hand never buys time.
        if lease.expires is None:
            repaired = policy.enrolment_expiry(created, now)
        else:
            repaired = min(lease.expires, now + policy.max_lease)
        problems = "; ".join("%s: %s" % item for item in sorted(lease.problems.items()))
        return Decision(INVALID, WRITE_LEASE, "unreadable lease (%s); rewritten to %s" % (problems, readable_time(repaired)),
                        repaired, write_expires=repaired, drop_keys=tuple(sorted(lease.problems)))
    if lease.expires is None:
        expiry = policy.enrolment_expiry(created, now)
        return Decision(ENROLLED, WRITE_LEASE, "no lease; leased until %s" % readable_time(expiry), expiry, write_expires=expiry)
    if lease.expires > now + policy.max_lease:
        capped = now + policy.max_lease
        return Decision(INVALID, WRITE_LEASE, "expiry %s is beyond the policy maximum (%s days); capped to %s"
                        % (readable_time(lease.expires), _num(policy.max_lease_days), readable_time(capped)), capped, write_expires=capped)

    expires = lease.expires
    milestone = due_milestone(policy, expires, lease.notice, now)
    if now < expires:
        if milestone is not None:
            return Decision(EXPIRING, NOTIFY, "expires %s: %d-day notice due" % (readable_time(expires), milestone), expires, milestone)
        return Decision(ACTIVE, NONE, "expires %s" % readable_time(expires), expires)

    # expired: the last milestone's notice for this expiry must have been sent
    notice = lease.notice
    if milestone is not None or notice is None:
        milestone = policy.milestones_days[-1] if milestone is None else milestone
        return Decision(EXPIRED, NOTIFY, "expired %s without the %d-day notice: notice first" % (readable_time(expires), milestone),
                        expires, milestone)
    if now - notice.sent < policy.grace:
        return Decision(EXPIRED, NONE, "expired %s; owner notified %s, removable from %s"
                        % (readable_time(expires), readable_time(notice.sent), readable_time(notice.sent + policy.grace)), expires)
    if in_use_reason:
        return Decision(IN_USE, NONE, "expired %s but %s" % (readable_time(expires), in_use_reason), expires)
    reason = "expired %s; owner notified %s (%d-day notice)" % (readable_time(expires), readable_time(notice.sent), notice.milestone_days)
    if already_done:
        return Decision(EXPIRED, NONE, "%s; already %s" % (reason, already_done), expires)
    return Decision(EXPIRED, REMOVE, reason, expires)


@dataclass(frozen=True)
class Extension:
    granted: bool
    reason: str
    expires: datetime | None = None
    extensions: int | None = None


def extend(policy: Policy, lease: LeaseRecord, days: float, now: datetime, operator: bool = False) -> Extension:
    """Extend a lease by ``days`` from its expiry (or from now, if already past), within the caps.

    Owners get at most ``max_extensions``; operators are not counted against it.
    The result never lies beyond ``now + max_lease`` (longer requests are shortened).
    """
    if not isinstance(days, (int, float)) or not math.isfinite(days) or days <= 0:
        return Extension(False, "extension must be a positive number of days")
    # never computed beyond the cap: a request of 10**8 days is one of max_lease days
    days = min(days, policy.max_lease_days)
    if lease.problems:
        return Extension(False, "the lease is unreadable; an operator must set it")
    if not operator and lease.extensions >= policy.max_extensions:
        return Extension(False, "already extended %d times (policy maximum %d)" % (lease.extensions, policy.max_extensions))
    start = max(lease.expires or now, now)
    limit = now + policy.max_lease
    if start >= limit:
        return Extension(False, "already at the policy maximum (%s)" % readable_time(limit))
    wanted = timedelta(days=days)
    new_expiry = start + min(wanted, limit - start)
    shortened = " (shortened to the policy maximum)" if wanted > limit - start else ""
    count = lease.extensions if operator else lease.extensions + 1
    return Extension(True, "extended to %s%s" % (readable_time(new_expiry), shortened), new_expiry, count)


def _num(value: float) -> str:
    return ("%g" % value)
