# SPDX-License-Identifier: GPL-3.0-or-later
"""Deciding a whole scan: requests, dependencies, soft actions, owners; and editing one lease."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from ansible_collections.osops.lifecycle.plugins.module_utils._lease import decide as d
from ansible_collections.osops.lifecycle.plugins.module_utils._lease import edit as e
from ansible_collections.osops.lifecycle.plugins.module_utils._lease import trust as t
from ansible_collections.osops.lifecycle.plugins.module_utils._lease.exempt import CompiledExemptions, Exemptions
from ansible_collections.osops.lifecycle.plugins.module_utils._lease.keys import (
    LeaseKeys, LeaseRecord, Notice, format_time, lease_metadata, read_lease,
)
from ansible_collections.osops.lifecycle.plugins.module_utils._lease.owners import Owner
from ansible_collections.osops.lifecycle.plugins.module_utils._lease.policy import Policy
from ansible_collections.osops.lifecycle.plugins.module_utils._lease.seal import parse_keyring
from ansible_collections.osops.lifecycle.plugins.module_utils._lease.trust import SealContext

UTC = timezone.utc
NOW = datetime(2026, 11, 21, 6, 0, tzinfo=UTC)
POLICY = Policy(lifetime_days=30, milestones_days=(14, 7, 1), grace_days=1, max_lease_days=90, max_extensions=2)
KEYS = LeaseKeys()
KEYRING = parse_keyring("t1 " + "k" * 40)
SEALS = SealContext(KEYRING, KEYS, POLICY, NOW)
EXEMPT = CompiledExemptions(Exemptions()).reason


def owner_of(record, lease):
    return Owner(lease.owner or record.get("email"), "user" if record.get("email") else None)


def expired_and_told(**extra):
    """Metadata of a lease that expired two days ago, its owner told three days ago."""
    expires = NOW - timedelta(days=2)
    return lease_metadata(KEYS, expires=expires, notice=Notice(1, NOW - timedelta(days=3), expires), **extra)


def rec(kind, rid, metadata=None, **extra):
    record = {"kind": kind, "id": rid, "name": rid, "status": extra.pop("status", "ACTIVE"), "project_id": "p1",
              "user_id": "u1", "email": "alice@example.org", "created_at": "2026-01-01T00:00:00Z",
              "metadata": metadata if metadata is not None else expired_and_told()}
    record.update(extra)
    return record


def readable(values):
    """The written values but the seal (which tests check on its own)."""
    return {key: value for key, value in values.items() if key != KEYS.seal}


def decide(records, **options):
    outcomes = d.decide_scan(records, SEALS, EXEMPT, owner_of, d.ReapOptions(**options))
    return {o.record["id"]: o for o in outcomes}


def test_everything_of_a_removed_server_goes_in_dependency_order():
    records = [
        rec("image", "img", visibility="private"),
        rec("volume", "vol", attached_to=["srv"]),
        rec("snapshot", "snap", volume_id="vol"),
        rec("server", "srv", image_id="img", volume_ids=["vol"]),
    ]
    outcomes = decide(records, image_action="delete")
    assert [o.record["kind"] for o in outcomes.values()] == ["server", "snapshot", "volume", "image"]
    verbs = {rid: o.verb for rid, o in outcomes.items()}
    assert verbs == {"srv": "delete", "snap": "delete", "vol": "delete", "img": "delete"}
    assert outcomes["vol"].users == frozenset({d.Key("server", "srv"), d.Key("snapshot", "snap")})


def test_a_volume_stays_while_a_user_stays():
    fresh = lease_metadata(KEYS, expires=NOW + timedelta(days=40))
    records = [
        rec("server", "srv", fresh, volume_ids=["vol"]),
        rec("volume", "vol", attached_to=["srv"]),
        rec("volume", "parent"),
        rec("snapshot", "snap", fresh, volume_id="parent"),
        rec("volume", "foreign", attached_to=["not-scanned"]),
    ]
    outcomes = decide(records)
    for rid in ("vol", "parent", "foreign"):
        assert outcomes[rid].decision.status == "in_use", rid
        assert outcomes[rid].verb is None
    assert "1 server (srv)" in outcomes["vol"].decision.reason
    assert "snapshot" in outcomes["parent"].decision.reason


def test_a_shelved_server_keeps_its_volume_and_is_not_shelved_twice():
    records = [rec("server", "srv", volume_ids=["vol"]), rec("volume", "vol", attached_to=["srv"]),
               rec("server", "done", status="SHELVED_OFFLOADED")]
    outcomes = decide(records, server_action="shelve")
    assert outcomes["srv"].verb == "shelve"
    assert outcomes["vol"].decision.status == "in_use"
    assert outcomes["done"].verb is None and outcomes["done"].decision.action == "none"
    assert outcomes["done"].decision.reason.endswith("already shelved")


def test_an_already_deactivated_image_waits_for_image_action_delete():
    records = [rec("image", "old", status="deactivated", visibility="private")]
    assert decide(records)["old"].verb is None
    assert decide(records, image_action="delete")["old"].verb == "delete"


def test_exempt_resources_keep_their_requests_untouched():
    records = [rec("image", "pub", dict(expired_and_told(), lease_extend="30"), visibility="public")]
    outcome = decide(records)["pub"]
    assert outcome.decision.status == "exempt"
    assert outcome.request is None and not outcome.writes


@pytest.mark.parametrize("raw, granted, reason", [
    ("30", True, "extended to 2026-12-24"),
    ("30d", True, "extended to 2026-12-24"),
    ("soon", False, "not a number of days"),
    ("-5", False, "not a number of days"),
])
def test_an_owner_request_is_handled_once_and_removed(raw, granted, reason):
    expires = NOW + timedelta(days=3)
    metadata = dict(lease_metadata(KEYS, expires=expires), lease_extend=raw)
    outcome = decide([rec("server", "srv", metadata)])["srv"]
    assert outcome.request.granted is granted
    assert reason in outcome.request.reason
    assert outcome.remove_keys == (KEYS.extend_request,)
    # the lease is sealed either way (an unsealed lease is taken over), the request counted in the seal
    assert KEYS.seal in outcome.set_values
    if granted:
        assert readable(outcome.set_values) == {KEYS.expires: "2026-12-24T06:00:00Z", KEYS.extensions: "1"}
        assert ".1." in outcome.set_values[KEYS.seal]
        assert outcome.decision.status == "active"
    else:
        assert readable(outcome.set_values) == {}
        assert outcome.decision.status == "expiring"


def test_a_request_beyond_the_extension_cap_is_refused_and_the_resource_still_expires():
    metadata = dict(expired_and_told(extensions=2), lease_extend="10")
    outcome = decide([rec("server", "srv", metadata)])["srv"]
    assert not outcome.request.granted and "already extended 2 times" in outcome.request.reason
    assert outcome.verb == "delete"


def test_a_request_rescues_an_expired_resource_before_removal():
    metadata = dict(expired_and_told(), lease_extend="7")
    outcome = decide([rec("server", "srv", metadata)])["srv"]
    assert outcome.request.granted
    # the new expiry is a week away: the owner gets that milestone's notice again, nothing goes
    assert outcome.verb is None and outcome.decision.status == "expiring" and outcome.decision.milestone_days == 7
    assert outcome.set_values[KEYS.expires] == format_time(NOW + timedelta(days=7))


def test_nobody_to_notify_is_said_and_never_digested():
    expires = NOW + timedelta(days=5)
    outcome = decide([rec("volume", "vol", lease_metadata(KEYS, expires=expires), email=None)])["vol"]
    assert outcome.decision.action == "notify"
    assert "nobody to notify" in outcome.decision.reason
    assert d.to_notify([outcome]) == []


def test_the_digest_says_what_is_done_to_each_resource_and_when():
    in_two_weeks = NOW + timedelta(days=14)
    yesterday = NOW - timedelta(days=1)
    outcomes = decide([rec("server", "srv", lease_metadata(KEYS, expires=yesterday)),
                       rec("image", "img", lease_metadata(KEYS, expires=in_two_weeks), visibility="private"),
                       rec("volume", "vol", lease_metadata(KEYS, expires=in_two_weeks))], server_action="stop")
    items = {rid: o.digest_item("RegionOne", NOW, KEYS, 30) for rid, o in outcomes.items()}
    # expired yesterday, never told: stopped a grace after today's notice, which is the last one
    assert (items["srv"].action, items["srv"].overdue) == ("stop", True)
    assert (items["srv"].action_on, items["srv"].last_notice_on) == (format_time(NOW + timedelta(days=1)), format_time(NOW))
    assert (items["img"].action, items["img"].overdue) == ("deactivate", False)
    assert (items["img"].action_on, items["img"].last_notice_on) == (format_time(in_two_weeks),
                                                                     format_time(in_two_weeks - timedelta(days=1)))
    assert items["vol"].action == "delete"
    # nothing to mail, nothing to say: no digest entry without a notice due
    quiet = decide([rec("volume", "later", lease_metadata(KEYS, expires=NOW + timedelta(days=40)))])["later"]
    with pytest.raises(ValueError):
        quiet.digest_item("RegionOne", NOW, KEYS, 30)


def test_enrolment_and_repair_write_only_what_is_needed():
    outcomes = decide([rec("server", "new", {}), rec("server", "bad", {KEYS.expires: "next tuesday"}),
                       rec("server", "badnotice", {KEYS.expires: "2026-12-30T00:00:00Z", KEYS.notice: "x"})])
    assert set(outcomes["new"].set_values) == {KEYS.expires, KEYS.seal} and outcomes["new"].remove_keys == ()
    assert outcomes["bad"].decision.status == "invalid"
    assert set(outcomes["bad"].set_values) == {KEYS.expires, KEYS.seal}
    # the readable expiry is already right: only the seal is added and the bad notice dropped
    assert set(outcomes["badnotice"].set_values) == {KEYS.seal}
    assert outcomes["badnotice"].remove_keys == (KEYS.notice,)


@pytest.mark.parametrize("delta, shown", [(0.3, 1), (1.0, 1), (1.2, 2), (-0.3, -1), (-2.0, -2)])
def test_days_left_as_an_owner_reads_them(delta, shown):
    assert d.days_left(NOW + timedelta(days=delta), NOW) == shown


# --- editing one lease ------------------------------------------------------------


def edit(metadata, **request):
    return e.plan_edit(POLICY, KEYS, read_lease(metadata, KEYS), e.EditRequest(**request), NOW)


def stored(change):
    """The readable keys the change stores (the seal is tested in test_seal.py)."""
    return readable(t.readable_values(KEYS, change.lease)) if change.lease else {}


def test_an_explicit_expiry_is_capped_at_the_policy_maximum():
    change = edit({}, expires="2030-01-01T00:00:00Z")
    assert change.outcome == e.SET and "capped" in change.reason
    assert stored(change) == {KEYS.expires: format_time(NOW + timedelta(days=90))}


def test_setting_the_same_expiry_again_changes_nothing():
    metadata = lease_metadata(KEYS, expires=NOW + timedelta(days=10))
    assert edit(metadata, lease_days=10).outcome == e.UNCHANGED


def test_present_enrols_only_what_has_no_lease():
    assert edit({}).outcome == e.SET
    assert edit(lease_metadata(KEYS, expires=NOW + timedelta(days=10))).outcome == e.UNCHANGED


def test_owner_override_set_cleared_and_checked():
    change = edit({}, owner="ops@example.org", lease_days=20)
    assert stored(change)[KEYS.owner] == "ops@example.org"
    sealed = LeaseRecord(expires=NOW + timedelta(days=9), owner="ops@example.org")
    cleared = e.plan_edit(POLICY, KEYS, sealed, e.EditRequest(owner=""), NOW)
    assert cleared.outcome == e.SET and KEYS.owner not in stored(cleared)
    for bad in ("ops", "root,attacker@evil.example", "Ops <ops@example.org>", "a@b@example.org", "ops@localhost"):
        with pytest.raises(e.EditError, match="not one plain e-mail"):
            e.EditRequest(owner=bad)


def test_owner_extensions_are_counted_and_capped_operators_are_not():
    metadata = lease_metadata(KEYS, expires=NOW + timedelta(days=5), extensions=2)
    refused = edit(metadata, state="extended", extend_days=10)
    assert refused.outcome == e.REFUSED and stored(refused) == readable(metadata)
    granted = edit(metadata, state="extended", extend_days=10, as_operator=True)
    assert granted.outcome == e.EXTENDED
    assert stored(granted) == {KEYS.expires: format_time(NOW + timedelta(days=15)), KEYS.extensions: "2"}


def test_a_notice_is_recorded_for_the_expiry_the_mail_was_about_only():
    expires = NOW + timedelta(days=7)
    metadata = lease_metadata(KEYS, expires=expires)
    recorded = edit(metadata, state="notified", milestone_days=7, for_expiry=format_time(expires))
    assert stored(recorded)[KEYS.notice] == Notice(7, NOW, expires).format()
    moved = edit(metadata, state="notified", milestone_days=7, for_expiry=format_time(expires - timedelta(days=1)))
    assert moved.outcome == e.SKIPPED and stored(moved) == readable(metadata)


def test_a_notice_never_goes_back_to_a_less_urgent_milestone():
    expires = NOW + timedelta(days=1)
    metadata = lease_metadata(KEYS, expires=expires, notice=Notice(1, NOW, expires))
    assert edit(metadata, state="notified", milestone_days=7).outcome == e.UNCHANGED


def test_absent_removes_every_lease_key():
    change = edit(lease_metadata(KEYS, expires=NOW, extensions=1), state="absent")
    assert change.outcome == e.CLEARED and change.lease is None


@pytest.mark.parametrize("request_args, message", [
    (dict(state="extended"), "needs extend_days"),
    (dict(state="notified"), "needs milestone_days"),
    (dict(expires="2026-12-01", lease_days=3), "not both"),
])
def test_bad_requests_are_clear_errors(request_args, message):
    with pytest.raises(e.EditError, match=message):
        e.EditRequest(**request_args)


def test_a_malformed_expiry_option_names_the_option():
    with pytest.raises(e.EditError, match="expires: not an ISO 8601 time"):
        edit({}, expires="friday")
