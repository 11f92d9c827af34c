# SPDX-License-Identifier: GPL-3.0-or-later
"""The portal's owner's page and release rule read the cycle's own decision (owner_page.py)."""

from __future__ import annotations

from datetime import timedelta

from ansible_collections.osops.lifecycle.plugins.module_utils._lease import decide as d
from ansible_collections.osops.lifecycle.plugins.module_utils._lease import owner_page as p
from ansible_collections.osops.lifecycle.plugins.module_utils._lease.exempt import CompiledExemptions, Exemptions
from ansible_collections.osops.lifecycle.plugins.module_utils._lease.keys import lease_metadata
from ansible_collections.osops.lifecycle.tests.unit.plugins.module_utils.lease.test_decide import (
    KEYS, NOW, POLICY, SEALS, owner_of, rec)

ALICE = "Alice@Example.org"
EXEMPT_KEEP = CompiledExemptions(Exemptions(metadata=(("keep", "yes"),))).reason


def outcomes(*records):
    return {o.record.id: o for o in d.decide_scan(list(records), SEALS, EXEMPT_KEEP, owner_of)}


def fresh(days, **extra):
    return lease_metadata(KEYS, expires=NOW + timedelta(days=days), **extra)


def test_release_is_refused_for_someone_elses_exempt_and_in_use_resources():
    decided = outcomes(
        rec("volume", "mine", fresh(20)),
        rec("volume", "theirs", fresh(20), email="bob@example.org"),
        rec("server", "kept", dict(fresh(20), keep="yes")),
        rec("volume", "busy", fresh(40)),
        rec("snapshot", "snap", fresh(40), volume_id="busy"),
    )
    assert p.release_refusal(decided["mine"], ALICE) is None
    assert p.release_refusal(decided["theirs"], ALICE) == p.NOT_YOURS
    assert p.release_refusal(decided["kept"], ALICE) == p.EXEMPT_REFUSAL
    # in use before it expires too: the page's "in use" is any user, not only the cycle's expired-and-used status
    assert p.release_refusal(decided["busy"], ALICE) == p.IN_USE_REFUSAL
    assert p.stage(decided["busy"]) == "in_use" and p.stage(decided["kept"]) == "exempt"


def test_rows_are_the_owners_most_urgent_first_with_what_an_extension_would_do():
    decided = outcomes(
        rec("volume", "later", fresh(40)),
        rec("server", "soon", fresh(5)),
        rec("server", "kept", dict(fresh(1), keep="yes")),
        rec("volume", "theirs", fresh(1), email="bob@example.org"),
        rec("volume", "maxed", fresh(20, extensions=2)),
    )
    rows = p.owner_rows(list(decided.values()), ALICE, POLICY, KEYS, NOW, 30)
    assert [r["id"] for r in rows] == ["soon", "maxed", "later", "kept"]
    by_id = {r["id"]: r for r in rows}
    assert by_id["soon"]["extendable"] and by_id["soon"]["after"]["expires"] == "2026-12-26T06:00:00Z"
    assert by_id["soon"]["extensions_left"] == 2 and by_id["soon"]["releasable"]
    assert not by_id["maxed"]["extendable"] and "already extended 2 times" in by_id["maxed"]["why_not"]
    assert by_id["maxed"]["extensions_left"] == 0
    assert not by_id["kept"]["extendable"] and not by_id["kept"]["releasable"] and by_id["kept"]["stage"] == "exempt"
