# SPDX-License-Identifier: GPL-3.0-or-later
"""Sealed leases against a hostile owner: the seal, what is trusted, and a scan no value can stop."""

from __future__ import annotations

import os
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ansible_collections.osops.lifecycle.plugins.module_utils._lease import decide as d
from ansible_collections.osops.lifecycle.plugins.module_utils._lease import edit as e
from ansible_collections.osops.lifecycle.plugins.module_utils._lease import seal as s
from ansible_collections.osops.lifecycle.plugins.module_utils._lease import trust as t
from ansible_collections.osops.lifecycle.plugins.module_utils._lease.exempt import CompiledExemptions, Exemptions
from ansible_collections.osops.lifecycle.plugins.module_utils._lease.keys import (
    LeaseKeys, LeaseRecord, Notice, format_time, lease_metadata, read_lease, valid_email,
)
from ansible_collections.osops.lifecycle.plugins.module_utils._lease.kinds import Images
from ansible_collections.osops.lifecycle.plugins.module_utils._lease.owners import Owner, Person, resolve_owner
from ansible_collections.osops.lifecycle.plugins.module_utils._lease.policy import Policy, PolicyError, classify

UTC = timezone.utc
NOW = datetime(2026, 11, 21, 6, 0, tzinfo=UTC)
POLICY = Policy(lifetime_days=30, milestones_days=(14, 7, 1), grace_days=1, max_lease_days=90, max_extensions=2)
KEYS = LeaseKeys()
RING = s.parse_keyring("k2 " + "n" * 40 + "\nk1 " + "o" * 40)
OLD_RING = s.parse_keyring("k1 " + "o" * 40)
ENFORCED = t.SealContext(RING, KEYS, POLICY, NOW, NOW - timedelta(days=60))
MIGRATING = t.SealContext(RING, KEYS, POLICY, NOW)
CREATED = NOW - timedelta(days=200)


def sealed(expires, notice=None, extensions=0, owner=None, exempt=None, rid="r1", kind="server", context=ENFORCED):
    return t.sealed_values(context, kind, rid, LeaseRecord(expires, notice, extensions, owner, exempt=exempt))


def trusted(metadata, rid="r1", kind="server", context=ENFORCED, created=CREATED):
    return t.trust_lease(context, kind, rid, metadata, read_lease(metadata, KEYS), created)


def owner_of(record, lease):
    return Owner(lease.owner or "alice@example.org", "user")


def decide(records, context=ENFORCED, exemption=CompiledExemptions(Exemptions()).reason, **options):
    return {o.record["id"]: o for o in d.decide_scan(records, context, exemption, owner_of, d.ReapOptions(**options))}


def rec(rid, metadata, kind="server", created=CREATED, **extra):
    return dict({"kind": kind, "id": rid, "name": rid, "status": "ACTIVE", "project_id": "p1", "user_id": "u1",
                 "created_at": format_time(created), "metadata": metadata}, **extra)


# --- the key file -------------------------------------------------------------------------


def test_the_key_file_must_be_private_regular_and_long_enough(tmp_path):
    path = tmp_path / "seal.key"
    path.write_text("# keys\nk1 " + "x" * 40 + "\n")
    path.chmod(0o600)
    assert s.load_keyring(str(path)).ids == ("k1",)
    path.chmod(0o644)
    with pytest.raises(s.SealKeyError, match="accessible to others"):
        s.load_keyring(str(path))
    path.chmod(0o600)
    link = tmp_path / "link.key"
    link.symlink_to(path)
    with pytest.raises(s.SealKeyError):
        s.load_keyring(str(link))
    with pytest.raises(s.SealKeyError, match="no seal key file"):
        s.load_keyring(None)
    with pytest.raises(s.SealKeyError, match="No such file"):
        s.load_keyring(str(tmp_path / "missing"))


@pytest.mark.parametrize("text, message", [
    ("k1 short", "shorter than 32"),
    ("bad/id " + "x" * 40, "expected '<key id> <secret>'"),
    ("k1 " + "x" * 40 + "\nk1 " + "y" * 40, "given twice"),
    ("# nothing", "holds no key"),
])
def test_bad_key_files_are_clear_errors_that_never_echo_the_secret(text, message):
    with pytest.raises(s.SealKeyError, match=message) as error:
        s.parse_keyring(text)
    assert "x" * 32 not in str(error.value) and "y" * 32 not in str(error.value)


def test_a_keyring_never_prints_its_secrets():
    assert "n" * 10 not in repr(RING) and "o" * 10 not in repr(RING)


# --- the seal ------------------------------------------------------------------------------


def test_a_seal_vouches_for_exactly_its_resource_and_values():
    notice = Notice(7, NOW - timedelta(days=1), NOW + timedelta(days=6))
    text = s.seal_lease(RING, "lease_", "server", "r1", s.SealedState(NOW + timedelta(days=6), notice, 2))
    check = s.open_seal(RING, "lease_", "server", "r1", text)
    assert check.valid and check.state == s.SealedState(NOW + timedelta(days=6), notice, 2)
    # copied to another resource, kind or prefix: worthless
    assert not s.open_seal(RING, "lease_", "server", "r2", text).valid
    assert not s.open_seal(RING, "lease_", "volume", "r1", text).valid
    assert not s.open_seal(RING, "other_", "server", "r1", text).valid
    # any one character changed: worthless
    for index in range(len(text)):
        for replacement in ("0", "A", "."):
            if text[index] != replacement:
                assert not s.open_seal(RING, "lease_", "server", "r1", text[:index] + replacement + text[index + 1:]).valid


def test_rotation_old_keys_verify_unknown_keys_do_not():
    old = s.seal_lease(OLD_RING, "lease_", "server", "r1", s.SealedState(NOW, None, 0))
    assert s.open_seal(RING, "lease_", "server", "r1", old).valid
    new = s.seal_lease(RING, "lease_", "server", "r1", s.SealedState(NOW, None, 0))
    assert new.split(".")[1] == "k2"
    check = s.open_seal(OLD_RING, "lease_", "server", "r1", new)
    assert not check.valid and "not in the key file" in check.problem


# --- what is trusted -------------------------------------------------------------------------


def test_an_owner_edit_of_a_sealed_lease_is_found_and_undone():
    expires = NOW + timedelta(days=3)
    notice = Notice(7, NOW - timedelta(days=4), expires)
    metadata = sealed(expires, notice, extensions=2)
    forged = dict(metadata, lease_expires="2099-01-01T00:00:00Z", lease_extensions="0",
                  lease_notice="1d sent 2099-01-01T00:00:00Z for 2099-01-02T00:00:00Z")
    result = trusted(forged)
    assert result.seal == t.TAMPERED and result.lease.expires == expires and result.lease.notice == notice
    assert result.lease.extensions == 2
    assert {c.key for c in result.changes} == {"lease_expires", "lease_extensions", "lease_notice"}
    outcome = decide([rec("r1", forged)])["r1"]
    # written back exactly: the readable keys and the seal as they were
    assert outcome.set_values == {k: v for k, v in metadata.items() if forged.get(k) != v}
    assert outcome.decision.expires == expires and "tampered" in outcome.decision.reason


def test_a_forged_notice_never_makes_anything_removable():
    expires = NOW - timedelta(days=3)
    metadata = sealed(expires)  # expired, never told
    forged = dict(metadata, lease_notice=Notice(1, NOW - timedelta(days=5), expires).format())
    outcome = decide([rec("r1", forged)])["r1"]
    assert outcome.decision.action == "notify" and outcome.verb is None
    # the same forgery without any seal, after enforcement: rebuilt, not removable either
    bare = decide([rec("r2", lease_metadata(KEYS, expires=expires, notice=Notice(1, NOW - timedelta(days=5), expires)))])
    assert bare["r2"].verb is None and bare["r2"].trusted.seal == t.TAMPERED


def test_removing_every_key_never_restarts_a_lease():
    outcome = decide([rec("r1", {})])["r1"]
    # made 200 days ago, lease keys gone after enforcement: the last milestone plus grace, no extensions left
    assert outcome.trusted.seal == t.TAMPERED
    assert outcome.decision.expires == NOW + timedelta(days=2)
    assert outcome.lease.extensions == POLICY.max_extensions
    request = decide([rec("r1", {"lease_extend": "30"})])["r1"]
    assert not request.request.granted
    # a resource made after sealing began is simply new: its lease counts from its creation
    young = decide([rec("r2", {}, created=NOW - timedelta(hours=1))])["r2"]
    assert young.trusted.seal == t.NEW and young.decision.expires == NOW - timedelta(hours=1) + timedelta(days=30)


def test_migration_takes_over_unsealed_leases_without_losing_anything():
    expires = NOW + timedelta(days=6)
    notice = Notice(7, NOW - timedelta(days=1), expires)
    old = lease_metadata(KEYS, expires=expires, notice=notice, extensions=1)
    outcome = decide([rec("r1", old)], context=MIGRATING)["r1"]
    assert outcome.trusted.seal == t.ADOPTED and not outcome.trusted.changes
    assert outcome.decision.action == "none"  # the 7-day notice was sent: nobody is mailed twice
    check = s.open_seal(RING, "lease_", "server", "r1", outcome.set_values[KEYS.seal])
    assert check.state == s.SealedState(expires, notice, 1)
    # a fresh cloud still gets every milestone
    fresh = decide([rec("r2", {})], context=MIGRATING)["r2"]
    assert fresh.decision.status == "enrolled" and fresh.decision.expires >= NOW + timedelta(days=15)


def test_migration_refuses_notices_from_the_future_and_owner_overrides():
    expires = NOW + timedelta(days=60)
    metadata = dict(lease_metadata(KEYS, expires=expires,
                                   notice=Notice(0, datetime(2099, 1, 1, tzinfo=UTC), expires)),
                    lease_owner="attacker@evil.example")
    outcome = decide([rec("r1", metadata)], context=MIGRATING)["r1"]
    assert outcome.lease.notice is None and outcome.lease.owner is None
    assert outcome.owner.email == "alice@example.org"
    assert KEYS.owner in outcome.remove_keys


def test_only_sealed_owner_overrides_and_exemptions_count():
    expires = NOW + timedelta(days=30)
    good = sealed(expires, owner="ops@example.org", exempt="keep for the audit")
    assert trusted(good).lease.owner == "ops@example.org" and trusted(good).seal == t.SEALED
    outcome = decide([rec("r1", good)])["r1"]
    assert outcome.decision.status == "exempt" and "sealed exemption" in outcome.decision.reason
    forged_owner = dict(sealed(expires), lease_owner="attacker@evil.example")
    assert trusted(forged_owner).lease.owner is None and trusted(forged_owner).seal == t.TAMPERED
    forged_exempt = dict(sealed(expires), lease_exempt="forever")
    assert decide([rec("r1", forged_exempt)])["r1"].decision.status != "exempt"
    # moving a sealed override to another resource does not work either
    assert trusted(good, rid="r2").seal == t.TAMPERED


@pytest.mark.parametrize("address", ["root,attacker@evil.example", "Ann <ann@example.org>", "ann@example.org\nBcc: x@y.org",
                                     "ann@@example.org", "ann@localhost", "\"a b\"@example.org", "a" * 250 + "@example.org"])
def test_addresses_are_one_plain_addr_spec(address):
    assert not valid_email(address)


def test_images_are_owned_by_their_project_never_a_property():
    image = SimpleNamespace(id="i1", name="img", status="active", owner_id="p1", created_at="2026-01-01T00:00:00Z",
                            properties={"user_id": "exempt-service-user"}, visibility="private", size=1,
                            is_protected=False)
    record = Images(None).to_record(image)
    assert record["user_id"] is None
    exemptions = CompiledExemptions(Exemptions(users=frozenset({"exempt-service-user"})))
    assert exemptions.reason(record) is None
    owner = resolve_owner(record, None, lambda uid: Person(uid, "svc", "svc@example.org"),
                          lambda pid: Person(pid, "proj", "team@example.org"))
    assert owner.email == "team@example.org"


def test_sealed_only_exemptions_ignore_what_owners_write():
    exemptions = Exemptions(name_globs=("keep-*",), metadata=(("keep", "*"),), projects=frozenset({"svc"}))
    record = {"kind": "server", "id": "x", "name": "keep-me", "project_id": "p1", "metadata": {"keep": "1"}}
    assert CompiledExemptions(exemptions).reason(record)
    assert CompiledExemptions(exemptions, sealed_only=True).reason(record) is None
    assert CompiledExemptions(exemptions, sealed_only=True).reason(dict(record, project_id="svc"))


# --- a scan no value can stop ----------------------------------------------------------------------

HOSTILE = [
    {"lease_extend": "99999999"},
    {"lease_expires": "0001-01-01T00:00:00Z"},
    {"lease_expires": "9999-12-31T23:59:59-01:00"},
    {"lease_expires": "0001-01-01T00:00:00+01:00"},
    {"lease_extensions": "\u00b2"},
    {"lease_notice": "0d sent 9999-12-31T23:59:59Z for 9999-12-31T23:59:59Z"},
    {"lease_notice": "0d sent 2099-01-01T00:00:00Z for 2026-11-20T00:00:00Z", "lease_expires": "2026-11-20T00:00:00Z"},
    {"lease_seal": "s1." + "." * 7},
    {"lease_expires": "x" * 100000},
]


@pytest.mark.parametrize("context", [ENFORCED, MIGRATING], ids=["enforced", "migrating"])
def test_hostile_values_of_the_review_never_stop_the_scan_or_remove(context):
    records = [rec("h%d" % index, metadata) for index, metadata in enumerate(HOSTILE)]
    honest = rec("honest", sealed(NOW - timedelta(days=3), Notice(1, NOW - timedelta(days=4), NOW - timedelta(days=3)),
                                  rid="honest"))
    outcomes = decide(records + [honest], context=context)
    assert outcomes["honest"].verb == "delete"
    for index in range(len(HOSTILE)):
        outcome = outcomes["h%d" % index]
        assert outcome.verb is None
        assert outcome.decision.expires is None or outcome.decision.expires <= NOW + POLICY.max_lease


def test_one_resource_that_cannot_be_decided_is_invalid_and_the_others_go_on():
    def exemption(record):
        if record["id"] == "boom":
            raise RuntimeError("a bug or an API error")
        return None

    outcomes = decide([rec("boom", {}), rec("fine", {}, created=NOW)], exemption=exemption)
    assert outcomes["boom"].decision.status == "invalid" and outcomes["boom"].verb is None
    assert "could not be decided" in outcomes["boom"].decision.reason
    assert outcomes["fine"].decision.status in ("enrolled", "active")


VALUES = st.one_of(st.text(max_size=300), st.integers(), st.floats(allow_nan=True), st.none(), st.booleans(),
                   st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
                   st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)).map(
                       lambda moment: moment.isoformat() + "Z"),
                   st.sampled_from(["0001-01-01T00:00:00-23:59", "9999-12-31T23:59:59+00:00", "7d sent x for y",
                                    "99999999", "\u00b2", "0", "-1", "1e9"]))
METADATA = st.dictionaries(st.sampled_from(KEYS.all() + ("name", "keep")), VALUES, max_size=8)


@settings(max_examples=300, deadline=None)
@given(metadata=METADATA, fresh_days=st.integers(min_value=2, max_value=80))
def test_no_stored_value_raises_gains_time_or_removes(metadata, fresh_days):
    """Whatever an owner writes over a sealed, running lease: no exception, no later expiry, no removal."""
    expires = NOW + timedelta(days=fresh_days)
    base = sealed(expires)
    for context in (ENFORCED, MIGRATING):
        for stored in (dict(base, **metadata), dict(metadata)):
            outcome = decide([rec("r1", stored)], context=context)["r1"]
            assert outcome.verb is None
            if KEYS.seal not in metadata:
                if stored is not metadata or context is ENFORCED:
                    assert outcome.decision.expires is None or outcome.decision.expires <= expires or \
                        outcome.decision.expires <= NOW + POLICY.max_lease


@settings(max_examples=200, deadline=None)
@given(value=VALUES, key=st.sampled_from(KEYS.all()))
def test_reading_any_value_of_any_key_is_total(value, key):
    lease = read_lease({key: value}, KEYS)
    classify(POLICY, lease, NOW)
    t.trust_lease(ENFORCED, "server", "r1", {key: value}, lease, None)


# --- options no one can misuse -------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [dict(max_lease_days=float("nan")), dict(max_lease_days=float("inf")),
                                 dict(grace_days=1e12), dict(lifetime_days=-1), dict(grace_days=-1),
                                 dict(max_extensions=-1), dict(max_extensions=10 ** 9), dict(milestones_days=(10 ** 7,)),
                                 dict(milestones_days=(-7,))])
def test_bad_policy_numbers_are_clear_errors(bad):
    with pytest.raises(PolicyError):
        Policy(**bad)


@pytest.mark.parametrize("request_args, message", [
    (dict(lease_days=-10), "lease_days must be"),
    (dict(lease_days=float("nan")), "lease_days must be"),
    (dict(state="extended", extend_days=float("inf")), "extend_days must be"),
    (dict(state="notified", milestone_days=-7), "milestone_days must be"),
    (dict(expires="not-a-date"), "expires: not an ISO 8601 time"),
    (dict(exempt="x" * 300), "exempt"),
])
def test_bad_edit_requests_are_clear_errors(request_args, message):
    with pytest.raises(e.EditError, match=message):
        e.EditRequest(**request_args)


def test_an_extension_request_of_any_size_is_computed_within_the_cap():
    lease = LeaseRecord(NOW + timedelta(days=5))
    outcome = decide([rec("r1", dict(sealed(lease.expires), lease_extend="999999"))])["r1"]
    assert outcome.request.granted and outcome.decision.expires == NOW + POLICY.max_lease
    assert replace(lease).expires == NOW + timedelta(days=5)


def test_the_sealed_keys_of_a_lease_fit_every_service():
    values = sealed(NOW + timedelta(days=30), Notice(14, NOW, NOW + timedelta(days=30)), 3, "o" * 60 + "@example.org",
                    "x" * 200, rid=os.urandom(18).hex())
    assert all(len(value) <= 255 for value in values.values())


def test_a_wrong_key_file_stops_the_run_but_owners_cannot_trigger_it_for_others():
    others = [sealed(NOW + timedelta(days=20), rid="r%d" % index) for index in range(4)]
    wrong = s.parse_keyring("k9 " + "w" * 40)
    context = replace(ENFORCED, keyring=wrong)
    leases = [trusted(metadata, rid="r%d" % index, context=context) for index, metadata in enumerate(others)]
    assert "not one verifies" in t.wrong_key(leases, wrong)
    # the right key: one owner's broken seals among verified ones are tampering, not a wrong key
    forged = [dict(sealed(NOW, rid="x%d" % index), lease_seal="s1.k2.1.n.0.%s.%s" % ("A" * 16, "B" * 43))
              for index in range(5)]
    leases = [trusted(m, rid="r%d" % i) for i, m in enumerate(others)] + [trusted(m, rid="x%d" % i)
                                                                          for i, m in enumerate(forged)]
    assert t.wrong_key(leases, RING) is None and sum(lease.seal == t.TAMPERED for lease in leases) == 5
