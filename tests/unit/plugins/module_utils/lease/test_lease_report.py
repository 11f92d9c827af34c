# Copyright: osops.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Merging lease_reap results of many clouds: owners' mails, notices to record, the operators' report."""

from __future__ import annotations

from ansible_collections.osops.lifecycle.plugins.module_utils._lease.report import (
    build_report, mail_delivery, notices_for_host, owner_digest, removal_digest)

NOW = "2026-11-21T12:00:00Z"


def resource(kind, name, days_left, milestone, project="alpha", region="RegionOne"):
    return {"kind": kind, "id": name + "-id", "name": name, "project": project, "region": region,
            "expires": "2026-12-01T00:00:00Z", "days_left": days_left, "milestone_days": milestone,
            "extend_command": "openstack %s set --property lease_extend=30 %s-id" % (kind, name)}


def decision(kind, name, status, expires=None, project="alpha", owner="ann@example.org"):
    return {"kind": kind, "id": name + "-id", "name": name, "project_name": project, "status": status,
            "expires": expires, "owner": owner, "reason": status}


def scan(digest=(), decisions=(), removed=(), unowned=(), region="RegionOne"):
    by_status: dict = {}
    for entry in decisions:  # as lease_reap counts its decisions
        by_status[entry["status"]] = by_status.get(entry["status"], 0) + 1
    return {"region": region, "now": NOW, "digest": list(digest), "decisions": list(decisions),
            "removed": list(removed), "unowned": list(unowned), "requests": [], "lease_writes": [],
            "counts": {"by_status": by_status}, "stats": {"scanned": len(decisions)}}


def test_one_mail_per_owner_across_clouds_soonest_first():
    results = {
        "cloud-b": scan(digest=[{"owner": "Ann@Example.org", "milestone_days": 1,
                                 "resources": [resource("volume", "v1", 1, 1, region="RegionTwo")]}]),
        "cloud-a": scan(digest=[{"owner": "ann@example.org", "milestone_days": 7,
                                 "resources": [resource("server", "s1", 7, 7)]},
                                {"owner": "bob@example.org", "milestone_days": 14,
                                 "resources": [resource("image", "i1", 14, 14)]}]),
    }
    digest = owner_digest(results)
    assert [entry["owner"] for entry in digest["owners"]] == ["ann@example.org", "bob@example.org"]
    ann = digest["owners"][0]
    assert [(r["name"], r["host"]) for r in ann["resources"]] == [("v1", "cloud-b"), ("s1", "cloud-a")]
    assert ann["milestone_days"] == 1
    assert digest["hosts_without_result"] == []


def test_a_host_without_a_scan_is_reported_not_dropped_silently():
    results = {"cloud-a": scan(), "cloud-b": {"failed": True, "msg": "auth failed"}, "cloud-c": None}
    digest = owner_digest(results)
    assert digest["hosts_without_result"] == [{"host": "cloud-b", "reason": "auth failed"},
                                              {"host": "cloud-c", "reason": "no lease_reap result from this host"}]


def test_notices_only_for_delivered_owners_and_only_on_that_host():
    results = {
        "cloud-a": scan(digest=[{"owner": "ann@example.org", "milestone_days": 7,
                                 "resources": [resource("server", "s1", 7, 7)]},
                                {"owner": "bob@example.org", "milestone_days": 7,
                                 "resources": [resource("server", "s2", 7, 7)]}]),
        "cloud-b": scan(digest=[{"owner": "ann@example.org", "milestone_days": 1,
                                 "resources": [resource("volume", "v1", 1, 1)]}]),
    }
    digest = owner_digest(results)
    on_a = notices_for_host(digest, "cloud-a", ["ANN@example.org"])
    assert on_a == [{"kind": "server", "id": "s1-id", "name": "s1", "milestone_days": 7,
                     "expires": "2026-12-01T00:00:00Z"}]
    assert [n["id"] for n in notices_for_host(digest, "cloud-b", ["ann@example.org"])] == ["v1-id"]
    assert notices_for_host(digest, "cloud-a", []) == []


def mail_result(owner, **fields):
    return dict({"item": {"owner": owner}, "changed": False, "failed": False}, **fields)


def test_mail_delivery_refused_owner_is_not_told_even_if_the_operators_copy_went_out():
    outcome = mail_delivery([
        mail_result("ann@example.org", result={}),
        mail_result("bob@example.org", result={"Bob@example.org": [550, b"mailbox unavailable"]}),
        mail_result("carol@example.org", failed=True, msg="Unable to Connect localhost:25: refused"),
        mail_result("dave@example.org", result={"ops@example.org": [550, "no such user"]}),
        mail_result("erin@example.org", skipped=True),
    ])
    assert outcome["delivered"] == ["ann@example.org", "dave@example.org"]
    assert outcome["failed"] == [
        {"owner": "bob@example.org", "reason": "recipient refused: 550 mailbox unavailable"},
        {"owner": "carol@example.org", "reason": "Unable to Connect localhost:25: refused"}]
    assert outcome["not_sent"] == ["erin@example.org"]
    assert outcome["copies_refused"] == [{"owner": "dave@example.org", "address": "ops@example.org",
                                          "reason": "550 no such user"}]


def test_removal_digest_lists_only_what_went_per_owner():
    removed = [
        {"kind": "server", "id": "s1-id", "name": "s1", "owner": "ann@example.org", "action": "delete",
         "outcome": "removed"},
        {"kind": "volume", "id": "v1-id", "name": "v1", "owner": "ann@example.org", "action": "delete",
         "outcome": "failed", "error": "in use"},
        {"kind": "image", "id": "i1-id", "name": "i1", "owner": None, "action": "deactivate", "outcome": "removed"},
    ]
    digest = removal_digest({"cloud-a": scan(removed=removed)})
    assert [(e["owner"], [r["id"] for r in e["resources"]]) for e in digest["owners"]] == [
        ("ann@example.org", ["s1-id"])]
    assert [r["id"] for r in digest["unowned"]] == ["i1-id"]
    assert digest["owners"][0]["resources"][0]["host"] == "cloud-a"


def test_report_counts_expiries_ahead_removals_and_failures():
    decisions = [
        decision("server", "s1", "active", "2026-11-25T00:00:00Z"),       # week 1
        decision("server", "s2", "expiring", "2026-12-01T00:00:00Z"),     # week 2
        decision("volume", "v1", "enrolled", "2027-06-01T00:00:00Z", project="beta"),  # beyond 8 weeks
        decision("image", "i1", "exempt"),
        decision("server", "s3", "expired", "2026-11-01T00:00:00Z"),
        decision("volume", "v2", "invalid", None),
    ]
    removed = [{"kind": "server", "id": "s3-id", "name": "s3", "owner": "ann@example.org", "outcome": "removed"},
               {"kind": "volume", "id": "v9-id", "name": "v9", "owner": "ann@example.org", "outcome": "failed",
                "error": "409 in use"}]
    report = build_report({"cloud-a": scan(decisions=decisions, removed=removed), "cloud-b": None}, NOW,
                          mail={"delivered": ["ann@example.org"], "failed": []})
    assert report["totals"]["resources"] == 6
    assert report["totals"]["by_status"] == {"expired": 1, "expiring": 1, "enrolled": 1, "active": 1,
                                             "exempt": 1, "invalid": 1}
    assert report["totals"]["removed"] == 1 and report["totals"]["removal_failures"] == 1
    assert [w["count"] for w in report["expiries"]["weeks"][:3]] == [1, 1, 0]
    assert report["expiries"]["later"] == 1
    assert report["by_kind"]["server"] == {"expired": 1, "expiring": 1, "active": 1}
    assert {(p["project"], p["total"]) for p in report["by_project"]} == {("alpha", 5), ("beta", 1)}
    assert [f["id"] for f in report["failures"]] == ["v9-id"]
    assert [i["id"] for i in report["invalid"]] == ["v2-id"]
    assert report["hosts_without_result"] == [{"host": "cloud-b", "reason": "no lease_reap result from this host"}]
    assert report["mail"]["delivered"] == ["ann@example.org"]


def test_report_says_what_the_scan_found_before_acting():
    scanned = scan(decisions=[decision("server", "s1", "expiring", "2026-11-25T00:00:00Z"),
                              decision("volume", "v1", "invalid")],
                   digest=[{"owner": "ann@example.org", "milestone_days": 7,
                            "resources": [resource("server", "s1", 4, 7)]}])
    after = scan(decisions=[decision("server", "s1", "active", "2026-11-25T00:00:00Z"),
                            decision("volume", "v1", "active", "2026-12-20T00:00:00Z")])
    report = build_report({"lab": after}, NOW, scans={"lab": scanned})
    assert report["scan"] == {"by_status": {"expiring": 1, "invalid": 1}, "by_seal": {}, "notices_due": 1}
    assert report["totals"]["by_status"] == {"active": 2}
    assert build_report({"lab": after}, NOW)["scan"] is None
    assert build_report({"lab": after}, NOW, scans={"lab": None})["scan"] is None


def test_a_sliced_scans_summary_is_enough_for_mail_and_report():
    """What lease_scan hands over through set_stats (no decisions) merges like full results."""
    summary = {"region": "RegionOne", "now": NOW, "counts": {"by_status": {"expiring": 2, "active": 3}},
               "digest": [{"owner": "ann@example.org", "milestone_days": 7,
                           "resources": [resource("server", "s1", 7, 7)]}], "unowned": []}
    digest = owner_digest({"slice-1": summary, "slice-2": dict(summary, digest=[
        {"owner": "ann@example.org", "milestone_days": 1, "resources": [resource("volume", "v1", 1, 1)]}])})
    assert [(e["owner"], len(e["resources"])) for e in digest["owners"]] == [("ann@example.org", 2)]
    report = build_report({"slice-1": scan()}, NOW, scans={"slice-1": summary})
    assert report["scan"]["by_status"] == {"expiring": 2, "active": 3}


def test_a_failed_unlock_is_a_failure_the_operators_see():
    result = dict(scan(), unlocked=[{"kind": "server", "id": "s1", "name": "web", "outcome": "failed", "error": "403"},
                                    {"kind": "server", "id": "s2", "name": "db", "outcome": "unlocked"}])
    failures = build_report({"lab": result}, NOW)["failures"]
    assert [(f["what"], f["id"], f["reason"]) for f in failures] == [("unlock", "s1", "403")]


def test_the_summary_a_scan_hands_on_is_read_like_the_full_result():
    """One shape: the report reads from a sliced scan's summary exactly what it reads from the full result."""
    from ansible_collections.osops.lifecycle.plugins.module_utils._lease.run_result import scan_summary

    full = dict(scan(decisions=[decision("server", "s1", "expiring", "2026-11-25T00:00:00Z"),
                                decision("volume", "v1", "invalid")],
                     digest=[{"owner": "ann@example.org", "milestone_days": 7,
                              "resources": [resource("server", "s1", 4, 7)]}]), tampered=[], run_id="r1")
    summary = scan_summary(full)
    assert "decisions" not in summary and summary["run_id"] == "r1"
    after = {"lab": scan()}
    assert build_report(after, NOW, scans={"lab": summary}) == build_report(after, NOW, scans={"lab": full})
    assert owner_digest({"lab": summary}) == owner_digest({"lab": full})
