# SPDX-License-Identifier: GPL-3.0-or-later
"""lock_servers: a stopped or shelved server is locked; it is unlocked once its lease runs again, never otherwise."""

from __future__ import annotations

from datetime import timedelta

from ansible_collections.osops.lifecycle.plugins.module_utils._lease import decide as d
from ansible_collections.osops.lifecycle.plugins.module_utils._lease.audit import AuditLog
from ansible_collections.osops.lifecycle.plugins.module_utils._lease.writes import unlock_extended
from ansible_collections.osops.lifecycle.plugins.module_utils._lease.keys import LeaseRecord, lease_metadata
from ansible_collections.osops.lifecycle.plugins.module_utils._lease.kinds import LOCK_REASON_PREFIX, Servers
from ansible_collections.osops.lifecycle.plugins.module_utils._lease.reaper import Reaper

from ansible_collections.osops.lifecycle.tests.unit.plugins.module_utils.lease.test_decide import (
    EXEMPT, KEYS, NOW, SEALS, decide, owner_of, rec,
)


class FakeServers:
    """The server adapter's calls the reaper makes, against an in-memory server."""

    kind = "server"

    def __init__(self, record, lock_error=None):
        self.record = record
        self.lock_error = lock_error
        self.calls = []

    def records(self, all_projects, project_id):
        return [self.record]

    def in_use_now(self, record):
        return None

    def remove(self, record, verb, timeout, gone):
        self.calls.append(verb)
        return {"stop": "stopped", "shelve": "shelved", "delete": "deleted"}[verb]

    def lock(self, record, expires):
        if self.lock_error:
            raise self.lock_error
        self.calls.append("lock")
        self.record = dict(record, locked=True, locked_reason="%s %s" % (LOCK_REASON_PREFIX, expires))

    locked_by_reaper = Servers.locked_by_reaper

    def unlock(self, record):
        self.calls.append("unlock")


def reap(action, lock_servers=True, lock_error=None):
    record = rec("server", "s1")
    outcome = d.decide_scan([record], SEALS, EXEMPT, owner_of, d.ReapOptions(server_action=action))[0]
    adapter = FakeServers(record, lock_error)
    results = Reaper({"server": adapter}, KEYS, AuditLog(None), lock_servers=lock_servers).run([outcome])
    return adapter, results[0]


def test_a_stopped_server_is_locked_with_our_reason():
    adapter, result = reap("stop")
    assert adapter.calls == ["stop", "lock"]
    assert result["outcome"] == "removed" and result["done"] == "stopped and locked"
    assert adapter.record["locked_reason"].startswith(LOCK_REASON_PREFIX)


def test_a_shelved_server_is_locked_too_a_deleted_one_is_not():
    assert reap("shelve")[0].calls == ["shelve", "lock"]
    adapter, result = reap("delete")
    assert adapter.calls == ["delete"] and result["done"] == "deleted"


def test_without_lock_servers_nothing_is_locked():
    adapter, result = reap("stop", lock_servers=False)
    assert adapter.calls == ["stop"] and result["done"] == "stopped"


def test_a_lock_that_fails_is_a_failure_that_says_the_server_was_stopped():
    adapter, result = reap("stop", lock_error=RuntimeError("nova said no"))
    assert result["outcome"] == "failed" and "stopped, but locking it failed" in result["error"]
    assert adapter.calls == ["stop"]


def running(days):
    return LeaseRecord(expires=NOW + timedelta(days=days))


def locked(reason):
    return dict(rec("server", "s1"), locked=True, locked_reason=reason)


def test_a_server_we_locked_is_unlocked_when_its_lease_runs_again():
    adapter = FakeServers(None)
    done = unlock_extended(adapter, locked(LOCK_REASON_PREFIX + " 2026-11-19"), running(30), NOW, AuditLog(None), True)
    assert done["outcome"] == "unlocked" and adapter.calls == ["unlock"]


def test_never_unlocked_while_expired_nor_when_someone_else_locked_it_nor_in_check_mode():
    adapter = FakeServers(None)
    ours = locked(LOCK_REASON_PREFIX + " 2026-11-19")
    assert unlock_extended(adapter, ours, running(-1), NOW, AuditLog(None), True) is None
    assert unlock_extended(adapter, ours, LeaseRecord(), NOW, AuditLog(None), True) is None
    assert unlock_extended(adapter, locked("security incident 4711"), running(30), NOW, AuditLog(None), True) is None
    assert unlock_extended(adapter, dict(ours, locked=False), running(30), NOW, AuditLog(None), True) is None
    assert unlock_extended(adapter, ours, running(30), NOW, AuditLog(None), False)["outcome"] == "would_unlock"
    assert adapter.calls == []


# --- shelved servers: Nova refuses their metadata, so their lease is left as it is -----------------------------

def test_a_shelved_server_gets_no_lease_written_and_no_notice():
    outcomes = decide([rec("server", "new", metadata={}, status="SHELVED_OFFLOADED"),
                       rec("server", "soon", metadata=lease_metadata(KEYS, expires=NOW + timedelta(days=1)),
                           status="SHELVED")])
    for outcome in outcomes.values():
        assert not outcome.writes and outcome.decision.action == "none"
        assert d.FROZEN_NOTE in outcome.decision.reason


def test_the_same_servers_active_would_be_enrolled_and_notified():
    outcomes = decide([rec("server", "new", metadata={}),
                       rec("server", "soon", metadata=lease_metadata(KEYS, expires=NOW + timedelta(days=1)))])
    assert outcomes["new"].writes and outcomes["soon"].decision.action == "notify"


def test_stopping_leaves_a_shelved_server_alone():
    outcome = decide([rec("server", "s1", status="SHELVED_OFFLOADED")], server_action="stop")["s1"]
    assert outcome.decision.action == "none" and outcome.verb is None and "already" in outcome.decision.reason
