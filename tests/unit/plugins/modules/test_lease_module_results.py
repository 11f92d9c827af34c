# SPDX-License-Identifier: GPL-3.0-or-later
"""What the lease modules return is what their RETURN documents, key for key.

LeaseRun (lease_reap) and the modules themselves run against the in-memory cloud: the top-level
keys of a result are exactly RETURN's, and every key of a documented entry (``contains``) is
documented - the role, the playbooks, the filters and the templates read them.
"""

from __future__ import annotations

from datetime import timedelta

import openstack
import pytest
import yaml

from ansible_collections.osops.lifecycle.plugins.module_utils._base import LifecycleModule
from ansible_collections.osops.lifecycle.plugins.module_utils._lease.decide import ReapOptions
from ansible_collections.osops.lifecycle.plugins.module_utils._lease.keys import lease_metadata
from ansible_collections.osops.lifecycle.plugins.modules import lease_reap, resource_lease
from ansible_collections.osops.lifecycle.tests.unit.plugins.module_utils.lease.test_decide import KEYS, NOW
from ansible_collections.osops.lifecycle.tests.unit.plugins.module_utils.lease.test_lease_run import estate, run

# what AnsibleModule itself adds to every result (diff only with --diff), not a module's own keys
STANDARD = {"changed", "invocation", "warnings", "deprecations", "diff"}
SOFT = ReapOptions(server_action="stop", lock_servers=True)


def documented(module) -> dict:
    return yaml.safe_load(module.RETURN)


def undocumented(value, doc: dict, where: str) -> list[str]:
    """Keys of ``value`` (and of what it contains) that ``doc`` does not document."""
    contains = doc.get("contains")
    if contains is None:
        return []
    entries = value if isinstance(value, list) else [value]
    missing = []
    for index, entry in enumerate(entries):
        for key, item in entry.items():
            if key not in contains:
                missing.append("%s[%d].%s" % (where, index, key))
            elif item is not None:
                missing.extend(undocumented(item, contains[key], "%s[%d].%s" % (where, index, key)))
    return missing


def assert_documented(result: dict, doc: dict, same_as: dict | None = None) -> None:
    """Top-level keys exactly RETURN's; every contained key documented (``same_as``: key -> the key whose
    ``contains`` documents its entries too)."""
    assert sorted(set(result) - STANDARD) == sorted(doc)
    same_as = same_as or {}
    missing = []
    for key in doc:
        if result[key] is not None:
            missing.extend(undocumented(result[key], doc[same_as.get(key, key)], key))
    assert missing == []


def busy_estate():
    """The estate of test_lease_run plus a notice due, an owner's extension request and, later, tampering."""
    cloud, ids = estate()
    cid = cloud.add_user("cid", "cid@example.org")
    ids["soon"] = cloud.add_volume("soon", ids["project"], cid, metadata=lease_metadata(KEYS, expires=NOW + timedelta(days=5)))
    ids["asks"] = cloud.add_server("asks", ids["project"], cid, metadata=dict(
        lease_metadata(KEYS, expires=NOW + timedelta(days=20)), **{KEYS.extend_request: "7"}))
    return cloud, ids


def lease_runs() -> list[dict]:
    """A reap that stops and locks, then a scan after an extension request and an owner's edit."""
    cloud, ids = busy_estate()
    first = run(cloud, reap=True, options=SOFT)
    cloud.servers[ids["server"]].metadata[KEYS.extend_request] = "7"      # unlocked by the next run
    cloud.volumes[ids["soon"]].metadata[KEYS.expires] = "2027-06-01T00:00:00Z"  # tampered with
    second = run(cloud, options=SOFT)
    return [first, second]


UNOWNED_ARE_DECISIONS = {"unowned": "decisions"}


def test_lease_run_returns_exactly_what_lease_reap_documents():
    results = lease_runs()
    # the scenario reaches every list, so that each entry's keys are checked
    for key in ("decisions", "digest", "requests", "lease_writes", "removed", "unlocked", "tampered", "audit"):
        assert any(result[key] for result in results), key
    for result in results:
        assert_documented(result, documented(lease_reap), UNOWNED_ARE_DECISIONS)


@pytest.fixture
def memory_cloud(monkeypatch, tmp_path):
    """The modules connect to the in-memory cloud; the seal key file they need."""
    cloud, ids = busy_estate()
    monkeypatch.setattr(LifecycleModule, "openstack_cloud_from_module", lambda self: (openstack, cloud))
    key_file = tmp_path / "seal.keys"
    key_file.write_text("t1 " + "k" * 40 + "\n")
    key_file.chmod(0o600)
    return cloud, ids, str(key_file)


@pytest.mark.parametrize("check_mode", [False, True])
def test_the_lease_reap_module_returns_what_it_documents(run_module, memory_cloud, check_mode):
    _cloud, _ids, key_file = memory_cloud
    rc, result = run_module(lease_reap.LeaseReapModule, {
        "seal_key_file": key_file, "reap": True, "server_action": "stop", "lock_servers": True,
        "max_remove_percent": 100, "_ansible_check_mode": check_mode, "_ansible_diff": True})
    assert rc == 0, result.get("msg")
    assert_documented(result, documented(lease_reap), UNOWNED_ARE_DECISIONS)


def test_lease_reap_scoped_by_resource_ids_returns_the_ids_not_found(run_module, memory_cloud):
    _cloud, ids, key_file = memory_cloud
    rc, result = run_module(lease_reap.LeaseReapModule, {
        "seal_key_file": key_file, "resource_ids": [ids["fresh"], "0d1e-gone"], "_ansible_check_mode": True})
    assert rc == 0, result.get("msg")
    assert [d["id"] for d in result["decisions"]] == [ids["fresh"]] and result["not_found"] == ["0d1e-gone"]
    assert_documented(result, documented(lease_reap), UNOWNED_ARE_DECISIONS)


def test_the_resource_lease_module_returns_what_it_documents(run_module, memory_cloud):
    cloud, ids, key_file = memory_cloud
    doc = documented(resource_lease)
    cloud.servers[ids["fresh"]].status = "SHELVED_OFFLOADED"
    calls = [
        dict(kind="server", resource="web", state="present", lease_days=10, owner="ann@example.org"),
        dict(kind="volume", resource=ids["volume"], state="extended", extend_days=5, as_operator=True),
        dict(kind="server", resource="asks", state="absent", only_owner="cid@example.org"),
        dict(resources=[{"kind": "volume", "id": ids["soon"], "milestone_days": 7}], state="notified", milestone_days=7),
        dict(resources=[{"kind": "server", "id": ids["fresh"]}, {"kind": "image", "name": "gone"}],
             state="present", exempt="kept by ops", missing="ignore"),
        dict(kind="server", resource="web", state="extended", extend_days=1, only_owner_user="bob"),
    ]
    outcomes = set()
    for args in calls:
        _rc, result = run_module(resource_lease.ResourceLeaseModule, dict(args, seal_key_file=key_file, _ansible_diff=True))
        assert_documented({key: value for key, value in result.items() if key not in ("msg", "failed")}, doc)
        outcomes.update(entry["outcome"] for entry in result["resources"])
    assert {"set", "extended", "cleared", "recorded", "frozen", "missing", "refused"} <= outcomes


def test_resource_lease_takes_no_exemption_rules(run_module, memory_cloud):
    # an exemption rule that lease_reap honours is no option of resource_lease (group defaults must leave them out)
    _cloud, _ids, key_file = memory_cloud
    rc, result = run_module(resource_lease.ResourceLeaseModule, {
        "kind": "server", "resource": "web", "seal_key_file": key_file, "exempt_users": ["ann"]})
    assert rc == 1 and "exempt_users" in result["msg"]
