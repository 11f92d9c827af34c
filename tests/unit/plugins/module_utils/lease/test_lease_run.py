# SPDX-License-Identifier: GPL-3.0-or-later
"""LeaseRun, the reaper and owner lookup against the in-memory cloud: the I/O half in seconds."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from ansible_collections.osops.lifecycle.plugins.module_utils._lease.decide import ReapOptions
from ansible_collections.osops.lifecycle.plugins.module_utils._lease.engine import LeaseRun, RunSettings
from ansible_collections.osops.lifecycle.plugins.module_utils._lease.exempt import CompiledExemptions, Exemptions
from ansible_collections.osops.lifecycle.plugins.module_utils._lease.keys import lease_metadata, read_lease
from ansible_collections.osops.lifecycle.tests.unit.plugins.module_utils.lease.memory_cloud import MemoryCloud
from ansible_collections.osops.lifecycle.tests.unit.plugins.module_utils.lease.test_decide import (
    KEYRING, KEYS, NOW, POLICY, expired_and_told,
)

SETTINGS = RunSettings(policy=POLICY, keys=KEYS, exemptions=CompiledExemptions(Exemptions()), now=NOW,
                       look_ahead=False, check_mode=False, keyring=KEYRING, max_remove_percent=100)


def estate():
    """An owner with an address in a project with a contact; a server booted from an image, with a volume."""
    cloud = MemoryCloud()
    project = cloud.add_project("alpha", contact_email="team@example.org")
    ann = cloud.add_user("ann", "ann@example.org")
    nomail = cloud.add_user("bob")
    image = cloud.add_image("img", project, properties=expired_and_told())
    volume = cloud.add_volume("data", project, ann, metadata=expired_and_told())
    server = cloud.add_server("web", project, ann, metadata=expired_and_told(), image_id=image, volume_ids=[volume])
    fresh = cloud.add_server("new", project, nomail)
    return cloud, dict(project=project, image=image, volume=volume, server=server, fresh=fresh)


def run(cloud, **changes):
    return LeaseRun(cloud, replace(SETTINGS, **changes)).run()


def test_a_scan_enrols_new_resources_and_seals_every_lease_without_removing():
    cloud, ids = estate()
    result = run(cloud)
    assert {w["id"] for w in result["lease_writes"] if w["outcome"] == "written"} == set(ids.values()) - {
        ids["project"]}
    # created long ago: the new lease still leaves room for the first notice (14 days) before it expires
    assert read_lease(cloud.servers[ids["fresh"]].metadata, KEYS).expires - NOW >= timedelta(days=14)
    assert all(KEYS.seal in s.metadata for s in cloud.servers.values())
    assert result["removed"] == [] and cloud.changes("delete") == []


def test_check_mode_writes_nothing_and_says_what_it_would():
    cloud, ids = estate()
    result = run(cloud, check_mode=True, reap=True)
    assert {w["outcome"] for w in result["lease_writes"]} == {"would_write"}
    assert {r["outcome"] for r in result["removed"]} == {"would_remove"}
    assert cloud.calls == [c for c in cloud.calls if c[1] == "get"]


def test_the_reaper_removes_in_dependency_order_and_deactivates_the_image():
    cloud, ids = estate()
    result = run(cloud, reap=True)
    done = {r["id"]: r["done"] for r in result["removed"] if r["outcome"] == "removed"}
    assert done == {ids["server"]: "deleted", ids["volume"]: "deleted", ids["image"]: "deactivated"}
    # the server goes first: its volume is detached and the image no longer booted
    assert cloud.changes("delete") == [ids["server"], ids["volume"]]
    assert cloud.images[ids["image"]].status == "deactivated" and ids["fresh"] in cloud.servers


def test_owners_come_from_keystone_users_then_the_projects_contact():
    cloud, ids = estate()
    result = run(cloud, write_leases=False)
    owners = {d["id"]: d["owner"] for d in result["decisions"]}
    assert owners[ids["server"]] == "ann@example.org"        # the user's address
    assert owners[ids["fresh"]] == "team@example.org"        # a user without one: the project's contact
    assert owners[ids["image"]] == "team@example.org"        # images belong to the project only


def test_a_stopped_and_locked_server_is_unlocked_by_the_scan_once_extended():
    cloud, ids = estate()
    result = run(cloud, reap=True, options=ReapOptions(server_action="stop", lock_servers=True))
    server = cloud.servers[ids["server"]]
    assert server.status == "SHUTOFF" and server.is_locked
    assert [r["done"] for r in result["removed"] if r["id"] == ids["server"]] == ["stopped and locked"]
    # the operator writes the owner's request (the owner cannot while it is locked); the next scan grants it
    server.metadata[KEYS.extend_request] = "7"
    again = run(cloud, options=ReapOptions(server_action="stop", lock_servers=True))
    assert [u["outcome"] for u in again["unlocked"]] == ["unlocked"] and not server.is_locked


def test_a_shelved_server_takes_no_lease_and_the_run_stays_green():
    cloud, ids = estate()
    cloud.servers[ids["fresh"]].status = "SHELVED_OFFLOADED"
    result = run(cloud)
    assert not [w for w in result["lease_writes"] if w["id"] == ids["fresh"]]
    assert not [w for w in result["lease_writes"] if w["outcome"] == "failed"]
    assert "Nova accepts no metadata" in [d for d in result["decisions"] if d["id"] == ids["fresh"]][0]["reason"]


def test_the_digest_names_the_days_an_extension_asks_for():
    cloud = MemoryCloud()
    project = cloud.add_project("alpha")
    ann = cloud.add_user("ann", "ann@example.org")
    server = cloud.add_server("soon", project, ann, metadata=lease_metadata(KEYS, expires=NOW + timedelta(days=3)))
    [entry] = run(cloud, extend_days=12)["digest"]
    assert entry["resources"][0]["extend_command"] == "openstack server set --property lease_extend=12 %s" % server
