# Copyright: osops.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Planning a reap (pure): the safety cap, one digest entry per owner (what is in use: ``in_use``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from .kind_table import kind_rank


def check_cap(to_remove: int, scanned: int, max_count: int | None, max_percent: float | None) -> str | None:
    """Why this run must not remove anything (the cap is exceeded), or None.

    The cap is checked before the first removal: a run that would remove more
    than allowed removes nothing, so a wrong policy cannot empty a cloud.
    """
    if max_count is not None and to_remove > max_count:
        return "would remove %d resources, more than max_remove=%d: nothing removed" % (to_remove, max_count)
    if max_percent is not None and scanned and to_remove * 100.0 / scanned > max_percent:
        return "would remove %d of %d scanned resources (%.1f%%), more than max_remove_percent=%g: nothing removed" % (
            to_remove, scanned, to_remove * 100.0 / scanned, max_percent)
    return None


@dataclass(frozen=True)
class DigestItem:
    """One resource in its owner's mail: what expires when, what is then done to it and when, at the earliest."""

    kind: str
    id: str
    name: str
    project: str
    region: str
    expires: str
    days_left: int
    milestone_days: int
    extend_command: str
    action: str          # the verb configured for its kind: delete, stop, shelve or deactivate
    action_on: str       # the earliest that is done (policy.action_dates): never before expires
    last_notice_on: str  # the owner's last notice before it (this one, if it is the last)
    overdue: bool        # expired before this notice: the owner was not told in time


def owner_digest(items: list[tuple[str, DigestItem]]) -> list[dict]:
    """One entry per owner address with everything of theirs to notify, across kinds, projects and regions."""
    return group_by_owner((email, dict(item.__dict__)) for email, item in items)


def group_by_owner(items: Iterable[tuple[str, dict]]) -> list[dict]:
    """Resources (dicts) grouped per owner address, owners sorted, each owner's soonest first.

    ``milestone_days`` of an entry is the nearest milestone among its resources
    (None when the resources carry none, as removal notices do).
    """
    by_owner: dict[str, list[dict]] = {}
    for email, item in items:
        by_owner.setdefault(email.strip().lower(), []).append(item)
    grouped = []
    for email in sorted(by_owner):
        resources = sorted(by_owner[email], key=_owner_order)
        milestones = [r["milestone_days"] for r in resources if r.get("milestone_days") is not None]
        grouped.append({"owner": email, "milestone_days": min(milestones) if milestones else None,
                        "resources": resources})
    return grouped


def _owner_order(resource: dict) -> tuple:
    days_left = resource.get("days_left")
    return (days_left if days_left is not None else 0, kind_rank(resource["kind"]), resource.get("project") or "",
            resource.get("name") or "", resource["id"], resource.get("host") or "")
