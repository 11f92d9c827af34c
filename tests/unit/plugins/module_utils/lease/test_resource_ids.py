# SPDX-License-Identifier: GPL-3.0-or-later
"""A lease run scoped to some resources by id (``resource_ids``, issue 16): what an event-driven scan runs.

Only the resources named are decided, each read strictly by id in each kind (never by name); ids
that no kind has are returned in ``not_found``. The rest is the full scan's: exemptions, owners'
requests, seals, and in-use judged from the whole cloud.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from ansible_collections.osops.lifecycle.plugins.module_utils._lease.engine import CapExceeded
from ansible_collections.osops.lifecycle.plugins.module_utils._lease.exempt import CompiledExemptions, Exemptions
from ansible_collections.osops.lifecycle.plugins.module_utils._lease.keys import lease_metadata, read_lease
from ansible_collections.osops.lifecycle.plugins.module_utils._lease.kinds import adapter_for
from ansible_collections.osops.lifecycle.tests.unit.plugins.module_utils.lease.test_decide import (
    KEYS, NOW, expired_and_told,
)
from ansible_collections.osops.lifecycle.tests.unit.plugins.module_utils.lease.test_lease_run import estate, run


def written(result: dict) -> set[str]:
    return {w["id"] for w in result["lease_writes"] if w["outcome"] == "written"}


def decided(result: dict) -> list[str]:
    return [d["id"] for d in result["decisions"]]


def test_a_run_scoped_to_one_server_enrols_that_server_only():
    cloud, ids = estate()
    other = cloud.add_server("other", ids["project"], None)
    result = run(cloud, resource_ids=[ids["fresh"]])
    assert decided(result) == [ids["fresh"]] and written(result) == {ids["fresh"]}
    assert read_lease(cloud.servers[ids["fresh"]].metadata, KEYS).expires is not None
    assert cloud.servers[other].metadata == {} and KEYS.seal not in cloud.servers[ids["server"]].metadata
    assert result["not_found"] == [] and result["stats"]["scanned"] == 1


def test_each_kind_is_read_by_id_and_decided_in_removal_order():
    cloud, ids = estate()
    snapshot = cloud.add_snapshot("snap", ids["volume"])
    wanted = [ids["image"], ids["volume"], snapshot, ids["fresh"]]
    result = run(cloud, resource_ids=wanted, write_leases=False)
    assert decided(result) == [ids["fresh"], snapshot, ids["volume"], ids["image"]]
    assert cloud.calls == [c for c in cloud.calls if c[1] == "get"]   # a read-only run changes nothing


def test_an_exempt_resource_in_the_scope_gets_no_lease():
    cloud, ids = estate()
    exempt = CompiledExemptions(Exemptions(projects=frozenset({"alpha"})))
    result = run(cloud, resource_ids=[ids["fresh"]], exemptions=exempt)
    assert [d["status"] for d in result["decisions"]] == ["exempt"]
    assert result["lease_writes"] == [] and cloud.servers[ids["fresh"]].metadata == {}


@pytest.mark.parametrize("reap", [False, True])
def test_unknown_ids_are_returned_as_not_found_and_are_no_error(reap):
    cloud, ids = estate()
    unknown = str(uuid.uuid4())
    result = run(cloud, resource_ids=[unknown, ids["fresh"], unknown, "../servers/detail"], reap=reap)
    assert result["not_found"] == [unknown, "../servers/detail"] and decided(result) == [ids["fresh"]]
    # an id that is no plain id never reaches a URL path
    assert not [c for c in cloud.calls if "/" in c[2]]


def test_a_resource_named_after_the_requested_id_is_not_touched():
    cloud, ids = estate()
    gone = str(uuid.uuid4())                    # the id of a resource deleted since its event
    impostors = [cloud.add_server(name, ids["project"], None) for name in (gone, ids["fresh"])]
    impostors.append(cloud.add_image(gone, ids["project"]))
    result = run(cloud, resource_ids=[gone, ids["fresh"]])
    assert result["not_found"] == [gone] and decided(result) == [ids["fresh"]]
    assert [cloud.servers[i].metadata for i in impostors[:2]] == [{}, {}] and cloud.images[impostors[2]].properties == {}


def test_a_resource_of_another_project_is_outside_a_scope_with_projects():
    cloud, ids = estate()
    beta = cloud.add_project("beta")
    theirs = cloud.add_server("theirs", beta, None)
    result = run(cloud, resource_ids=[theirs, ids["fresh"]], projects=["alpha"])
    assert result["not_found"] == [theirs] and decided(result) == [ids["fresh"]]


def test_an_owners_extension_request_on_the_scoped_resource_is_handled():
    cloud, ids = estate()
    lease = lease_metadata(KEYS, expires=NOW + timedelta(days=20))
    asks = cloud.add_server("asks", ids["project"], None, metadata=dict(lease, **{KEYS.extend_request: "7"}))
    waits = cloud.add_server("waits", ids["project"], None, metadata=dict(lease, **{KEYS.extend_request: "7"}))
    result = run(cloud, resource_ids=[asks])
    assert [(r["id"], r["granted"]) for r in result["requests"]] == [(asks, True)]
    assert KEYS.extend_request not in cloud.servers[asks].metadata
    assert read_lease(cloud.servers[asks].metadata, KEYS).expires == NOW + timedelta(days=27)
    assert cloud.servers[waits].metadata[KEYS.extend_request] == "7"     # outside the scope: the next event's


def test_in_use_is_judged_from_the_whole_cloud():
    cloud, ids = estate()
    # the expired image is booted by the expired server "web", which this run does not cover
    result = run(cloud, resource_ids=[ids["image"]], reap=True)
    [decision] = result["decisions"]
    assert decision["status"] == "in_use" and ids["server"] in decision["reason"]
    assert result["removed"] == [] and cloud.images[ids["image"]].status == "active"


def test_a_scoped_reap_removes_what_expired_after_notice_within_the_cap():
    cloud, ids = estate()
    unused = cloud.add_image("old", ids["project"], properties=expired_and_told())
    result = run(cloud, resource_ids=[unused], reap=True)
    assert [(r["id"], r["outcome"]) for r in result["removed"]] == [(unused, "removed")]
    assert cloud.images[unused].status == "deactivated"
    # the cap is the full scan's: one removal of one resource scanned is 100%
    spare = cloud.add_volume("spare", ids["project"], None, metadata=expired_and_told())
    with pytest.raises(CapExceeded) as refused:
        run(cloud, resource_ids=[spare, "gone"], reap=True, max_remove_percent=10)
    assert refused.value.result["not_found"] == ["gone"] and "max_remove_percent" in refused.value.result["cap"]
    assert spare in cloud.volumes


def test_by_id_reads_an_unreadable_resource_as_a_record_error():
    cloud, ids = estate()
    cloud.servers[ids["fresh"]].attached_volumes = 7     # not a list: the adapter cannot read it
    record = adapter_for("server", cloud).by_id(ids["fresh"])
    assert record.id == ids["fresh"] and "unreadable" in record.record_error
    assert adapter_for("image", cloud).by_id(ids["fresh"]) is None
