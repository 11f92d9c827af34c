# Copyright: osops.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What the lifecycle roles make of ``lease_reap`` results from many clouds (pure).

The cycle runs ``lease_reap`` once per inventory host (a cloud or a region) and
then works on all of them at once: one mail per owner across every host, the
notices to record on each host for the mails that went out, the removal
notices, and the operators' report.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from typing import Iterable, Mapping

from .keys import LeaseValueError, format_time, parse_time
from .kind_table import KIND_ORDER
from .reap_plan import group_by_owner

# Decision statuses in the order the report shows them.
STATUSES = ("expired", "expiring", "enrolled", "active", "in_use", "exempt", "invalid")
# Fields of a digest resource that resource_lease state=notified reads.
NOTICE_FIELDS = ("kind", "id", "name", "milestone_days", "expires")


def usable(results: Mapping[str, Mapping | None]) -> tuple[list[tuple[str, Mapping]], list[dict]]:
    """Split host -> lease_reap result into hosts with a scan and hosts without one (failed, unreachable)."""
    good, bad = [], []
    for host in sorted(results):
        result = results[host]
        # a full lease_reap result, or the scan summary a sliced AWX scan job passes on (run_result.scan_summary):
        # what is read from either is in both
        if isinstance(result, Mapping) and ("decisions" in result or "digest" in result):
            good.append((host, result))
        else:
            reason = (result or {}).get("msg") if isinstance(result, Mapping) else None
            bad.append({"host": host, "reason": reason or "no lease_reap result from this host"})
    return good, bad


def owner_digest(results: Mapping[str, Mapping | None]) -> dict:
    """One entry per owner across every host, each resource tagged with its host; plus what cannot be mailed."""
    good, bad = usable(results)
    items: list[tuple[str, dict]] = []
    unowned: list[dict] = []
    for host, result in good:
        for entry in result.get("digest") or []:
            items.extend((entry["owner"], dict(resource, host=host)) for resource in entry["resources"])
        unowned.extend(dict(decision, host=host) for decision in result.get("unowned") or [])
    return {"owners": group_by_owner(items), "unowned": unowned, "hosts_without_result": bad}


def removal_digest(results: Mapping[str, Mapping | None]) -> dict:
    """Per owner, what this run removed (or softened) on every host; removals without an owner listed apart."""
    good, bad = usable(results)
    items: list[tuple[str, dict]] = []
    unowned: list[dict] = []
    for host, result in good:
        for removal in result.get("removed") or []:
            if removal.get("outcome") != "removed":
                continue
            resource = dict(removal, host=host, region=result.get("region"))
            if removal.get("owner"):
                items.append((removal["owner"], resource))
            else:
                unowned.append(resource)
    return {"owners": group_by_owner(items), "unowned": unowned, "hosts_without_result": bad}


def notices_for_host(digest: Mapping, host: str, delivered: Iterable[str]) -> list[dict]:
    """The resources on ``host`` whose owner's mail was accepted: what resource_lease state=notified records."""
    accepted = {owner.strip().lower() for owner in delivered}
    return [{field: resource.get(field) for field in NOTICE_FIELDS}
            for entry in digest.get("owners") or [] if entry["owner"] in accepted
            for resource in entry["resources"] if resource.get("host") == host]


def mail_delivery(mail_results: Iterable[Mapping]) -> dict:
    """Which owners' mails were accepted, from a registered community.general.mail loop over digest entries.

    community.general.mail fails when the server is down or refuses every
    recipient, and succeeds with ``result`` listing the refused ones when only
    some are refused (for example the owner refused, the operators' copy
    accepted): that owner was not told.
    """
    delivered: list[str] = []
    failed: list[dict] = []
    not_sent: list[str] = []
    copies_refused: list[dict] = []
    for result in mail_results:
        owner = str((result.get("item") or {}).get("owner", "")).strip().lower()
        refused = {str(address).strip().lower(): answer for address, answer in (result.get("result") or {}).items()} \
            if isinstance(result.get("result"), Mapping) else {}
        if result.get("skipped"):
            not_sent.append(owner)
        elif result.get("failed"):
            failed.append({"owner": owner, "reason": str(result.get("msg") or "mail failed")})
        elif owner in refused:
            failed.append({"owner": owner, "reason": "recipient refused: %s" % _smtp_answer(refused[owner])})
        else:
            delivered.append(owner)
            copies_refused.extend({"owner": owner, "address": address, "reason": _smtp_answer(answer)}
                                  for address, answer in refused.items())
    return {"delivered": sorted(set(delivered)), "failed": failed, "not_sent": sorted(set(not_sent)),
            "copies_refused": copies_refused}


def _smtp_answer(answer) -> str:
    if isinstance(answer, (list, tuple)) and len(answer) == 2:
        code, text = answer
        text = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
        return "%s %s" % (code, text)
    return str(answer)


class _Tally:
    """Counts of one cycle's decisions: by status, kind and project, and expiries per week ahead."""

    def __init__(self, moment: datetime, weeks: int):
        self.moment = moment
        self.by_status: Counter = Counter()
        self.by_kind: dict[str, Counter] = {kind: Counter() for kind in KIND_ORDER}
        self.by_project: dict[tuple[str, str], Counter] = {}
        self.ahead = [0] * weeks
        self.later = 0

    def add(self, host: str, decision: Mapping) -> None:
        status = decision.get("status") or "unknown"
        self.by_status[status] += 1
        self.by_kind.setdefault(decision.get("kind") or "unknown", Counter())[status] += 1
        project = decision.get("project_name") or decision.get("project_id") or "-"
        self.by_project.setdefault((host, project), Counter())[status] += 1
        if status in ("exempt", "expired", "invalid") or not decision.get("expires"):
            return
        try:
            left = parse_time(decision["expires"]) - self.moment
        except LeaseValueError:
            return
        week = int(left // timedelta(days=7))
        if 0 <= week < len(self.ahead):
            self.ahead[week] += 1
        elif week >= len(self.ahead):
            self.later += 1

    def expiries(self) -> dict:
        peak = max(self.ahead + [self.later, 1])
        return {"weeks": [{"week": index + 1, "from": format_time(self.moment + timedelta(days=7 * index)),
                           "count": count, "percent": round(100.0 * count / peak, 1)}
                          for index, count in enumerate(self.ahead)],
                "later": self.later, "peak": peak}


# result list -> what its failed entries are called in the report
_FAILED_STEPS = (("removed", "removal"), ("lease_writes", "lease write"), ("unlocked", "unlock"))


def _failures(host: str, result: Mapping) -> list[dict]:
    """One host's failed steps: the run itself, removals, lease writes, unlocks."""
    failures = []
    if result.get("failed"):
        failures.append({"host": host, "what": "lease_reap", "reason": result.get("msg") or "failed"})
    for key, what in _FAILED_STEPS:
        for entry in result.get(key) or []:
            if entry.get("outcome") == "failed":
                failures.append(dict(_named(entry), host=host, what=what, reason=entry.get("error")))
    return failures


def build_report(results: Mapping[str, Mapping | None], now: str | datetime, mail: Mapping | None = None,
                 weeks: int = 8, scans: Mapping[str, Mapping | None] | None = None) -> dict:
    """The operators' summary of one cycle: counts, expiries ahead, removals, mail, problems.

    ``results`` are the reap step's results (the state after notices were recorded);
    ``scans``, if given, the scan step's, whose counts say what the run found
    (notices due, leases enrolled or repaired) before acting.
    """
    moment = now if isinstance(now, datetime) else parse_time(now)
    good, bad = usable(results)
    tally = _Tally(moment, weeks)
    removals, requests, invalid, unowned, failures = [], [], [], [], []
    hosts = {}
    for host, result in good:
        hosts[host] = {"region": result.get("region"), "stats": result.get("stats") or {},
                       "counts": result.get("counts") or {}, "run_id": result.get("run_id"),
                       "failed": result.get("msg") if result.get("failed") else None}
        failures.extend(_failures(host, result))
        for decision in result.get("decisions") or []:
            tally.add(host, decision)
            if (decision.get("status") or "unknown") == "invalid":
                invalid.append(dict(_named(decision), host=host, reason=decision.get("reason")))
        removals.extend(dict(removal, host=host) for removal in result.get("removed") or [])
        requests.extend(dict(request, host=host) for request in result.get("requests") or [])
        unowned.extend(dict(_named(decision), host=host, owner_note=decision.get("owner_note"))
                       for decision in result.get("unowned") or [])
    return {
        "tampered": _tampered(good, usable(scans)[0] if scans else []),
        "generated": format_time(moment),
        "hosts": hosts,
        "hosts_without_result": bad,
        "totals": {"resources": sum(tally.by_status.values()),
                   "by_status": _ordered(tally.by_status),
                   "removed": sum(1 for r in removals if r.get("outcome") == "removed"),
                   "removal_failures": sum(1 for r in removals if r.get("outcome") == "failed")},
        "by_kind": {kind: _ordered(counter) for kind, counter in tally.by_kind.items() if counter},
        "by_project": [{"host": host, "project": project, "total": sum(counter.values()), "by_status": _ordered(counter)}
                       for (host, project), counter in sorted(tally.by_project.items())],
        "expiries": tally.expiries(),
        "removals": removals,
        "requests": requests,
        "invalid": invalid,
        "unowned": unowned,
        "failures": failures,
        "mail": dict(mail) if mail else None,
        "scan": _scan_counts(scans) if scans else None,
    }


def _tampered(*runs) -> list[dict]:
    """Resources whose lease someone else changed, from the scan and the reap run (the scan restores them first)."""
    seen: dict[tuple, dict] = {}
    for run in runs:
        for host, result in run:
            for entry in result.get("tampered") or []:
                seen.setdefault((host, entry.get("kind"), entry.get("id")), dict(entry, host=host))
    return [seen[key] for key in sorted(seen, key=lambda key: tuple(str(part) for part in key))]


def _scan_counts(scans: Mapping[str, Mapping | None]) -> dict | None:
    good, _bad = usable(scans)
    if not good:
        return None  # no scan in this run (the ad hoc reap)
    by_status: Counter = Counter()
    by_seal: Counter = Counter()
    for _host, result in good:
        by_status.update((result.get("counts") or {}).get("by_status") or {})
        by_seal.update((result.get("counts") or {}).get("by_seal") or {})
    return {"by_status": _ordered(by_status), "by_seal": dict(sorted(by_seal.items())),
            "notices_due": sum(len(e.get("resources") or []) for _h, r in good for e in r.get("digest") or [])}


def _named(item: Mapping) -> dict:
    return {key: item.get(key) for key in ("kind", "id", "name", "project_name", "owner")}


def _ordered(counter: Counter) -> dict:
    known = {status: counter[status] for status in STATUSES if counter.get(status)}
    known.update({status: count for status, count in sorted(counter.items()) if status not in STATUSES})
    return known
