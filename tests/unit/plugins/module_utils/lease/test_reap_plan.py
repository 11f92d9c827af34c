# SPDX-License-Identifier: GPL-3.0-or-later
"""Reap planning: dependencies, the safety cap, one digest entry per owner."""

from __future__ import annotations

import pytest

from ansible_collections.osops.lifecycle.plugins.module_utils._lease.kind_table import KIND_ORDER, kind_rank
from ansible_collections.osops.lifecycle.plugins.module_utils._lease.in_use import in_use_reason
from ansible_collections.osops.lifecycle.plugins.module_utils._lease.reap_plan import DigestItem, check_cap, owner_digest
from ansible_collections.osops.lifecycle.plugins.module_utils._lease.record import Key


def test_dependency_order():
    assert sorted(["image", "volume", "server", "snapshot"], key=kind_rank) == list(KIND_ORDER)
    with pytest.raises(ValueError, match="unknown resource kind 'network'"):
        kind_rank("network")


def test_a_resource_whose_users_all_go_may_go():
    users = {Key("server", "s1"), Key("server", "s2")}
    assert in_use_reason(users, removing={Key("server", "s1"), Key("server", "s2")}) is None
    assert in_use_reason(frozenset(), removing=set()) is None


def test_a_resource_with_a_remaining_user_stays_and_says_why():
    users = {Key("server", "s1"), Key("server", "s2"), Key("snapshot", "n1")}
    reason = in_use_reason(users, removing={Key("server", "s1")})
    assert reason == "still used by 1 server, 1 snapshot (s2, n1)"


@pytest.mark.parametrize(
    "to_remove, scanned, max_count, max_percent, tripped",
    [
        (10, 1000, 10, None, False),
        (11, 1000, 10, None, True),
        (50, 1000, None, 5, False),
        (51, 1000, None, 5, True),
        (0, 0, 0, 0, False),
        (5, 1000, None, None, False),
    ],
)
def test_cap(to_remove, scanned, max_count, max_percent, tripped):
    reason = check_cap(to_remove, scanned, max_count, max_percent)
    assert (reason is not None) is tripped
    if tripped:
        assert "nothing removed" in reason


def item(kind, name, days_left, milestone, project="ci", region="RegionOne"):
    return DigestItem(kind, name + "-id", name, project, region, "2026-12-01T00:00:00Z", days_left, milestone,
                      "openstack %s set --property lease_extend=DAYS %s-id" % (kind, name), "delete",
                      "2026-12-01T00:00:00Z", "2026-11-30T00:00:00Z", False)


def test_one_entry_per_owner_across_kinds_projects_and_regions():
    digest = owner_digest([
        ("Ana@Example.org", item("image", "base-img", 6, 7, project="lab")),
        ("ana@example.org", item("server", "web-1", 1, 1, region="RegionTwo")),
        ("bob@example.org", item("volume", "data", 13, 14)),
        ("ana@example.org", item("snapshot", "snap", 6, 7)),
    ])
    assert [entry["owner"] for entry in digest] == ["ana@example.org", "bob@example.org"]
    ana = digest[0]
    assert ana["milestone_days"] == 1
    assert [r["name"] for r in ana["resources"]] == ["web-1", "snap", "base-img"]  # soonest first
    assert {r["project"] for r in ana["resources"]} == {"ci", "lab"}
