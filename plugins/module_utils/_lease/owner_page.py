# Copyright: osops.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The lease portal's owner's page and its release rule (pure).

Everything here reads the cycle's own decision (``decide.decide_scan`` in check mode): the
page shows an owner's resources with the stage the cycle gives them, and a release (delete
now) is allowed exactly when the cycle could remove the resource apart from its expiry: the
owner's own, not exempt, not in use. No second copy of the policy.
"""

from __future__ import annotations

from datetime import datetime

from .decide import FROZEN_NOTE, Outcome, created_time, metadata_frozen
from .edit import EXTENDED, EditRequest, lease_view, plan_edit
from .in_use import in_use_reason
from .keys import LeaseKeys
from .policy import ENROLLED, EXEMPT, IN_USE, INVALID, Policy

# What the page calls each stage (the decision's status, with "in use" also before expiry)
STAGE_LABELS = {"active": "active", "expiring": "expiring", "expired": "expired", EXEMPT: "exempt",
                IN_USE: "in use", ENROLLED: "no lease yet", INVALID: "lease being repaired"}

# Why a release is refused: reason -> HTTP status
NOT_YOURS, EXEMPT_REFUSAL, IN_USE_REFUSAL, UNREADABLE = "not_yours", "exempt", "in_use", "unreadable"
RELEASE_STATUS = {NOT_YOURS: 403, EXEMPT_REFUSAL: 409, IN_USE_REFUSAL: 409, UNREADABLE: 409}


def owned_by(outcome: Outcome, owner: str) -> bool:
    """Is ``owner`` (an address, as a signed link names it) who the cycle mails about this resource?"""
    return bool(owner) and (outcome.owner.email or "").strip().lower() == owner.strip().lower()


def in_use(outcome: Outcome) -> str | None:
    """Who uses the resource anywhere in the cloud (at scan time), whatever its expiry; None: nobody."""
    return in_use_reason(outcome.users, set())


def stage(outcome: Outcome) -> str:
    status = outcome.decision.status
    if status != EXEMPT and in_use(outcome):
        status = IN_USE
    return status


def release_refusal(outcome: Outcome, owner: str) -> str | None:
    """Why the owner a link names may not release (delete now) this resource; None: they may."""
    if not owned_by(outcome, owner):
        return NOT_YOURS
    if outcome.record.record_error:
        return UNREADABLE
    if outcome.decision.status == EXEMPT:
        return EXEMPT_REFUSAL
    if in_use(outcome):
        return IN_USE_REFUSAL
    return None


def owner_row(outcome: Outcome, policy: Policy, keys: LeaseKeys, now: datetime, longest_days: int) -> dict:
    """One resource on the owner's page: expiry, stage, extensions left, what the longest extension would do
    (``plan_edit`` on the trusted lease, as the portal's ``LeaseEditor`` would), and whether it may be released."""
    record, trusted = outcome.record, outcome.trusted
    lease = trusted.lease if trusted else outcome.lease
    current = stage(outcome)
    row = {"kind": record.kind, "id": record.id, "name": record.name or record.id,
           "project": record.project_name or record.project_id or "", "stage": current,
           "stage_label": STAGE_LABELS.get(current, current), "reason": outcome.decision.reason,
           "in_use": in_use(outcome), "before": lease_view(lease, now),
           "expires": lease_view(outcome.lease, now)["expires"] if outcome.decision.expires else None,
           "days_left": outcome.days_left(now),
           "extensions_left": max(0, policy.max_extensions - lease.extensions),
           "extendable": False, "after": None, "why_not": None,
           "releasable": release_refusal(outcome, outcome.owner.email or "") is None}
    if current == EXEMPT:
        row["why_not"] = "exempt (%s): the lease never removes it" % outcome.decision.reason
    elif record.record_error:
        row["why_not"] = record.record_error
    elif metadata_frozen(record):
        row["why_not"] = FROZEN_NOTE + "; unshelve it, then extend"
    else:
        change = plan_edit(policy, keys, lease, EditRequest(state="extended", extend_days=float(longest_days)), now,
                           created_time(record))
        if change.outcome == EXTENDED:
            row.update(extendable=True, after=lease_view(change.lease, now), shortened="shortened" in change.reason)
        else:
            row["why_not"] = change.reason
    return row


def owner_rows(outcomes: list[Outcome], owner: str, policy: Policy, keys: LeaseKeys, now: datetime,
               longest_days: int) -> list[dict]:
    """The owner's resources (of every kind and project the scan read), the most urgent first, exempt ones last."""
    rows = [owner_row(o, policy, keys, now, longest_days) for o in outcomes if owned_by(o, owner)]
    far = datetime.max.isoformat()
    return sorted(rows, key=lambda r: (r["stage"] == EXEMPT, r["expires"] or far, r["kind"], r["name"]))
