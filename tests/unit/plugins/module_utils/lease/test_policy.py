# SPDX-License-Identifier: GPL-3.0-or-later
"""Lease policy maths and metadata parsing: examples, then properties (hypothesis)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ansible_collections.osops.lifecycle.plugins.module_utils._lease import policy as p
from ansible_collections.osops.lifecycle.plugins.module_utils._lease.keys import (
    LeaseKeys,
    LeaseRecord,
    Notice,
    format_time,
    lease_metadata,
    parse_time,
    read_lease,
)

UTC = timezone.utc
NOW = datetime(2026, 11, 21, 6, 0, tzinfo=UTC)
POLICY = p.Policy(lifetime_days=30, milestones_days=(14, 7, 1), grace_days=1, max_lease_days=90, max_extensions=2)
KEYS = LeaseKeys()


def lease(expires, notice=None, **extra):
    return LeaseRecord(expires=expires, notice=notice, **extra)


def notice(milestone, sent, expires):
    return Notice(milestone, sent, expires)


# --- metadata -----------------------------------------------------------------


def test_keys_share_one_prefix():
    assert LeaseKeys("acme_").all() == ("acme_expires", "acme_notice", "acme_extensions", "acme_owner", "acme_extend",
                                        "acme_seal", "acme_exempt")
    with pytest.raises(ValueError):
        LeaseKeys("bad prefix/")


def test_read_back_what_we_write():
    expiry = datetime(2026, 12, 24, 0, 0, tzinfo=UTC)
    sent = Notice(7, NOW, expiry)
    metadata = lease_metadata(KEYS, expires=expiry, notice=sent, extensions=2, owner="ana@example.org")
    assert metadata == {
        "lease_expires": "2026-12-24T00:00:00Z",
        "lease_notice": "7d sent 2026-11-21T06:00:00Z for 2026-12-24T00:00:00Z",
        "lease_extensions": "2",
        "lease_owner": "ana@example.org",
    }
    record = read_lease(dict(metadata, unrelated="kept"), KEYS)
    assert (record.expires, record.notice, record.extensions, record.owner, record.problems) == (expiry, sent, 2, "ana@example.org", {})


@pytest.mark.parametrize(
    "value, expected",
    [
        ("2026-12-01T00:00:00Z", datetime(2026, 12, 1, tzinfo=UTC)),
        ("2026-12-01T01:00:00+01:00", datetime(2026, 12, 1, tzinfo=UTC)),
        ("2026-12-01", datetime(2026, 12, 1, tzinfo=UTC)),  # a date typed by hand: midnight UTC
    ],
)
def test_times_by_hand(value, expected):
    assert parse_time(value) == expected


def test_malformed_values_are_problems_not_crashes():
    record = read_lease({"lease_expires": "next friday", "lease_notice": "sent!", "lease_extensions": "-1",
                         "lease_owner": "nobody", "lease_extend": "lots"}, KEYS)
    assert set(record.problems) == {"lease_expires", "lease_notice", "lease_extensions", "lease_owner"}
    assert record.expires is None and record.present
    assert record.has_extend_request and record.extend_request_days is None


@given(st.dictionaries(st.sampled_from(KEYS.all() + ("other",)), st.text(max_size=300)))
def test_reading_any_metadata_never_raises(metadata):
    record = read_lease(metadata, KEYS)
    assert set(record.problems) <= set(KEYS.all())


@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)))
def test_time_round_trip(moment):
    moment = moment.replace(microsecond=0)
    assert parse_time(format_time(moment)) == moment


# --- policy options ---------------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [
        dict(milestones_days=()),
        dict(lifetime_days=0),
        dict(max_lease_days=10, lifetime_days=30),
        dict(max_lease_days=30, lifetime_days=30, milestones_days=(30,), grace_days=1),
    ],
)
def test_contradictory_policies_are_refused(options):
    with pytest.raises(p.PolicyError):
        p.Policy(**options)


def test_milestones_are_sorted_and_deduplicated():
    assert p.Policy(milestones_days=(1, 14, 7, 7)).milestones_days == (14, 7, 1)


# --- classification -----------------------------------------------------------------


def test_enrolment_of_an_old_resource_leaves_time_for_every_notice():
    created = NOW - timedelta(days=400)
    decision = p.classify(POLICY, lease(None), NOW, created=created)
    assert (decision.status, decision.action) == (p.ENROLLED, p.WRITE_LEASE)
    assert decision.write_expires == NOW + timedelta(days=15)  # first milestone 14 + grace 1


def test_enrolment_of_a_new_resource_gets_its_lifetime():
    decision = p.classify(POLICY, lease(None), NOW, created=NOW - timedelta(days=2))
    assert decision.write_expires == NOW + timedelta(days=28)


def test_exempt_wins_over_everything():
    expired = lease(NOW - timedelta(days=50), notice(1, NOW - timedelta(days=51), NOW - timedelta(days=50)))
    decision = p.classify(POLICY, expired, NOW, exempt_reason="project ops is exempt")
    assert (decision.status, decision.action, decision.reason) == (p.EXEMPT, p.NONE, "project ops is exempt")


@pytest.mark.parametrize(
    "days_left, sent, status, action, milestone",
    [
        (30, None, p.ACTIVE, p.NONE, None),
        (14, None, p.EXPIRING, p.NOTIFY, 14),
        (10, 14, p.ACTIVE, p.NONE, None),
        (6, 14, p.EXPIRING, p.NOTIFY, 7),
        (6, None, p.EXPIRING, p.NOTIFY, 7),   # the 14-day run was missed: the 7-day notice, not two mails
        (0.5, 7, p.EXPIRING, p.NOTIFY, 1),
        (0.5, 1, p.ACTIVE, p.NONE, None),      # never the same milestone twice
        (-3, 14, p.EXPIRED, p.NOTIFY, 1),      # expired before the last notice: notice first
        (-3, None, p.EXPIRED, p.NOTIFY, 1),
    ],
)
def test_which_notice_is_due(days_left, sent, status, action, milestone):
    expires = NOW + timedelta(days=days_left)
    sent_notice = notice(sent, NOW - timedelta(hours=1), expires) if sent else None
    decision = p.classify(POLICY, lease(expires, sent_notice), NOW)
    assert (decision.status, decision.action, decision.milestone_days) == (status, action, milestone)


def test_a_notice_for_an_earlier_expiry_does_not_count():
    old_expiry = NOW - timedelta(days=2)
    extended = NOW + timedelta(days=5)
    decision = p.classify(POLICY, lease(extended, notice(1, NOW - timedelta(days=3), old_expiry)), NOW)
    assert (decision.action, decision.milestone_days) == (p.NOTIFY, 7)


def test_removal_waits_for_grace_after_the_last_notice():
    expires = NOW - timedelta(hours=1)
    just_told = lease(expires, notice(1, NOW - timedelta(hours=10), expires))
    assert p.classify(POLICY, just_told, NOW).action == p.NONE
    told_long_ago = lease(expires, notice(1, NOW - timedelta(days=2), expires))
    decision = p.classify(POLICY, told_long_ago, NOW)
    assert (decision.status, decision.action) == (p.EXPIRED, p.REMOVE)


# --- what the owner is told: action_dates -------------------------------------------------


def test_expired_yesterday_and_never_told_is_acted_on_grace_after_todays_notice():
    dates = p.action_dates(POLICY, NOW - timedelta(days=1), None, NOW)
    assert dates == p.ActionDates(action_on=NOW + POLICY.grace, last_notice_on=NOW)


def test_a_first_notice_in_time_promises_the_expiry_and_the_last_milestones_day():
    expires = NOW + timedelta(days=14)
    dates = p.action_dates(POLICY, expires, None, NOW)
    assert dates == p.ActionDates(action_on=expires, last_notice_on=expires - timedelta(days=1))


def test_the_last_notice_sent_late_pushes_the_action_past_the_expiry():
    expires = NOW + timedelta(hours=6)   # the 1-day run was missed: the last notice is this one
    dates = p.action_dates(POLICY, expires, notice(7, NOW - timedelta(days=6), expires), NOW)
    assert dates == p.ActionDates(action_on=NOW + POLICY.grace, last_notice_on=NOW)


def test_a_last_notice_already_sent_is_the_one_counted():
    expires = NOW - timedelta(hours=2)
    sent = NOW - timedelta(hours=10)
    assert p.action_dates(POLICY, expires, notice(1, sent, expires), NOW) == p.ActionDates(sent + POLICY.grace, sent)
    # a notice for an earlier expiry does not count: the new expiry's last milestone does
    extended = NOW + timedelta(days=20)
    dates = p.action_dates(POLICY, extended, notice(1, sent, expires), NOW)
    assert dates == p.ActionDates(extended, extended - timedelta(days=1))


def test_action_dates_hold_at_the_ends_of_time():
    ancient = datetime(1, 1, 1, tzinfo=UTC)
    assert p.action_dates(POLICY, ancient, None, NOW) == p.ActionDates(NOW + POLICY.grace, NOW)
    late = datetime(9999, 12, 31, 12, tzinfo=UTC)
    assert p.action_dates(POLICY, late, Notice(1, late, late), late).action_on == datetime.max.replace(tzinfo=UTC)


def test_in_use_is_not_removed():
    expires = NOW - timedelta(days=3)
    decision = p.classify(POLICY, lease(expires, notice(1, NOW - timedelta(days=4), expires)), NOW,
                          in_use_reason="used by 2 servers")
    assert (decision.status, decision.action) == (p.IN_USE, p.NONE)


def test_expiry_edited_beyond_the_maximum_is_capped_and_reported():
    decision = p.classify(POLICY, lease(NOW + timedelta(days=3650)), NOW)
    assert (decision.status, decision.action) == (p.INVALID, p.WRITE_LEASE)
    assert decision.write_expires == NOW + timedelta(days=90) and "beyond the policy maximum" in decision.reason


def test_unreadable_expiry_is_re_enrolled_and_never_removed():
    record = read_lease({"lease_expires": "31/12/2026"}, KEYS)
    decision = p.classify(POLICY, record, NOW, created=NOW - timedelta(days=400))
    assert (decision.status, decision.action) == (p.INVALID, p.WRITE_LEASE)
    assert decision.write_expires == NOW + timedelta(days=15) and decision.drop_keys == ("lease_expires",)


def test_garbling_another_key_buys_no_time():
    expires = NOW - timedelta(days=1)
    record = read_lease({"lease_expires": format_time(expires), "lease_owner": "not-an-address"}, KEYS)
    decision = p.classify(POLICY, record, NOW)
    assert decision.status == p.INVALID and decision.write_expires == expires
    assert decision.drop_keys == ("lease_owner",)


def test_as_of_looks_ahead():
    expires = NOW + timedelta(days=20)
    assert p.classify(POLICY, lease(expires), NOW).status == p.ACTIVE
    assert p.classify(POLICY, lease(expires), NOW + timedelta(days=7)).milestone_days == 14


# --- extensions ---------------------------------------------------------------------


def test_extension_within_caps():
    result = p.extend(POLICY, lease(NOW + timedelta(days=3)), 30, NOW)
    assert result.granted and result.expires == NOW + timedelta(days=33) and result.extensions == 1


def test_extension_of_an_expired_lease_counts_from_now():
    result = p.extend(POLICY, lease(NOW - timedelta(days=3)), 10, NOW)
    assert result.expires == NOW + timedelta(days=10)


def test_extension_is_shortened_to_the_maximum_and_refused_past_it():
    result = p.extend(POLICY, lease(NOW + timedelta(days=80)), 30, NOW)
    assert result.granted and result.expires == NOW + timedelta(days=90) and "shortened" in result.reason
    again = p.extend(POLICY, lease(result.expires, extensions=1), 5, NOW)
    assert not again.granted and "maximum" in again.reason


def test_owners_get_max_extensions_operators_more():
    used_up = lease(NOW + timedelta(days=3), extensions=2)
    assert not p.extend(POLICY, used_up, 7, NOW).granted
    by_operator = p.extend(POLICY, used_up, 7, NOW, operator=True)
    assert by_operator.granted and by_operator.extensions == 2


@pytest.mark.parametrize("days", [0, -5])
def test_non_positive_extensions_are_refused(days):
    assert not p.extend(POLICY, lease(NOW), days, NOW).granted


# --- properties ---------------------------------------------------------------------

policies = st.builds(
    lambda lifetime, milestones, grace, extra: p.Policy(
        lifetime_days=lifetime, milestones_days=tuple(milestones), grace_days=grace,
        max_lease_days=max(lifetime, max(milestones) + grace) + extra),
    st.integers(1, 120), st.lists(st.integers(0, 30), min_size=1, max_size=4), st.integers(0, 5), st.integers(0, 60),
)


@given(policies, st.integers(-1000, 1000))
def test_enrolment_never_earlier_than_first_milestone_plus_grace(policy, created_days_ago):
    decision = p.classify(policy, lease(None), NOW, created=NOW - timedelta(days=created_days_ago))
    assert policy.earliest_expiry(NOW) <= decision.write_expires <= NOW + policy.max_lease


@settings(max_examples=200, deadline=None)
@given(policies, st.integers(-200, 200), st.lists(st.booleans(), min_size=400, max_size=400))
def test_daily_runs_with_missed_days(policy, first_expiry_in_days, ran):
    """Simulate a scheduler that runs every 6 hours and sometimes does not.

    Whatever runs are missed: each milestone is notified at most once per expiry,
    nothing is removed unless the last milestone was notified at least grace ago,
    and once runs resume the resource is removed. What each notice tells the owner
    (``action_dates``) is kept: nothing goes before the date any notice gave; with no
    run missed after the last notice, it goes at the first later run on or after that notice's date.
    """
    now = NOW
    expires = now + timedelta(days=first_expiry_in_days)
    record = LeaseRecord(expires=expires)
    sent = []
    promised = []
    removed_at = None
    for step, runs in enumerate(ran + [True] * 800):
        now = NOW + timedelta(hours=6 * step)
        if not runs:
            continue
        decision = p.classify(policy, record, now)
        if decision.action == p.WRITE_LEASE:
            record = LeaseRecord(expires=decision.write_expires, notice=record.notice)
        elif decision.action == p.NOTIFY:
            assert decision.milestone_days not in [milestone for milestone, _when in sent], "milestone notified twice"
            sent.append((decision.milestone_days, now))
            promised.append((p.action_dates(policy, record.expires, record.notice, now), step))
            record = LeaseRecord(expires=record.expires, notice=Notice(decision.milestone_days, now, record.expires))
        elif decision.action == p.REMOVE:
            last_milestone, last_sent = sent[-1]
            assert last_milestone == policy.milestones_days[-1]
            assert now - last_sent >= policy.grace
            assert now >= record.expires
            assert all(now >= dates.action_on for dates, _step in promised), "removed before the date a notice gave"
            last, told_at = promised[-1]
            assert last.last_notice_on == last_sent
            if all(ran[told_at + 1:]):  # the run that tells never removes: the next one may
                assert now - max(last.action_on, last_sent + timedelta(hours=6)) < timedelta(hours=6)
            removed_at = now
            break
    assert removed_at is not None, "never removed although runs resumed"


moments = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC))
notices = st.none() | st.builds(lambda milestone, sent_hours_ago, same: (milestone, sent_hours_ago, same),
                                st.integers(0, 30), st.integers(0, 24 * 60), st.booleans())


@given(policies, moments, st.integers(-24 * 400, 24 * 400), notices)
def test_the_action_never_comes_before_the_expiry_or_the_last_notice_plus_grace(policy, now, expires_in_hours, sent):
    expires = now + timedelta(hours=expires_in_hours)
    prior = None if sent is None else Notice(sent[0], now - timedelta(hours=sent[1]),
                                             expires if sent[2] else expires - timedelta(days=3))
    dates = p.action_dates(policy, expires, prior, now)
    assert dates.action_on >= expires
    assert dates.action_on >= dates.last_notice_on + policy.grace
    if prior is None or prior.for_expiry != expires:
        # not told the last milestone yet: that notice is now or later, never in the past
        assert dates.last_notice_on >= now
    decision = p.classify(policy, LeaseRecord(expires=expires, notice=prior), now)
    if decision.action == p.REMOVE:
        assert now >= dates.action_on, "removed before the date its owner was told"
