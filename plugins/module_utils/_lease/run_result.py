# Copyright: osops.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Stage 4 of a lease run, report: what ``lease_reap`` returns, its diff, and the scan summary a sliced job hands on.

Entry: ``build_result()``. Reads the outcomes and ``Acts``; returns the result dict (documented
by the module's RETURN). The per-owner digest is built here once, with real values (the
extension command names the days it asks for). Merging many hosts' results is ``report``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Mapping

from .act import Acts
from .audit import AuditLog
from .decide import Outcome, counts, to_notify
from .keys import LeaseKeys, format_time
from .reap_plan import owner_digest

# What a scan hands on to the next job (lease_scan playbook, AWX workflow): what the mails and the report need;
# the decisions stay in the job's output. report.py reads a full result and this summary alike.
SCAN_SUMMARY_KEYS = ("digest", "unowned", "tampered", "counts", "region", "now", "stats", "failed", "msg", "run_id")


@dataclass(frozen=True)
class RunFacts:
    """What the result says about the run itself."""

    now: datetime
    keys: LeaseKeys
    region: str
    look_ahead: bool
    check_mode: bool
    extend_days: int          # the days the extension command in the digest asks for
    stats: dict
    not_found: tuple[str, ...] = ()  # ids of a run scoped by resource_ids that no kind has


def build_result(outcomes: list[Outcome], acts: Acts, audit: AuditLog | None, cap: str | None,
                 facts: RunFacts) -> dict:
    now = facts.now
    decisions = [dict(o.as_dict(now), region=facts.region) for o in outcomes]
    digest = owner_digest([(o.owner.email, o.digest_item(facts.region, now, facts.keys, facts.extend_days))
                           for o in to_notify(outcomes)])
    return {
        "changed": _changed(acts, facts),
        "now": format_time(now),
        "look_ahead": facts.look_ahead,
        "region": facts.region,
        "decisions": decisions,
        "digest": digest,
        "counts": counts(outcomes),
        "requests": [dict(kind=o.record.kind, id=o.record.id, name=o.record.name, owner=o.owner.email,
                          **o.request.as_dict()) for o in outcomes if o.request],
        "unowned": [d for d in decisions if not d["owner"] and d["action"] == "notify"],
        "tampered": [dict(o.record.identity(), owner=o.owner.email, changes=o.tampered, note=o.trusted.note,
                          reason=o.decision.reason) for o in outcomes if o.trusted and o.trusted.tampered],
        "lease_writes": acts.writes,
        "removed": acts.removed,
        "unlocked": acts.unlocked,
        "cap": cap,
        "audit": list(audit.records) if audit else [],
        "run_id": audit.run_id if audit else None,
        "stats": dict(facts.stats, scanned=len(outcomes)),
        "not_found": list(facts.not_found),
    }


def _changed(acts: Acts, facts: RunFacts) -> bool:
    if facts.look_ahead:
        return False  # a look-ahead predicts; it never changes anything
    if facts.check_mode:
        return bool(acts.writes or acts.removed or acts.unlocked)  # what the real run would change
    return (any(w["outcome"] == "written" for w in acts.writes) or any(r["outcome"] == "removed" for r in acts.removed)
            or any(u["outcome"] == "unlocked" for u in acts.unlocked))


def scan_summary(result: Mapping) -> dict:
    """The part of a result that a sliced scan hands on."""
    return {key: result[key] for key in SCAN_SUMMARY_KEYS if key in result}


def diff_lines(result: Mapping) -> str:
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
