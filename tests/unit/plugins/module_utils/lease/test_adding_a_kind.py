# SPDX-License-Identifier: GPL-3.0-or-later
"""Adding a resource kind, as a test-only example: one KindSpec and one adapter, nothing else.

A Manila share kind ("share", removed with delete, kept while a share snapshot of the same
cloud uses it) runs through the whole lease run against the in-memory cloud: it is scanned,
enrolled with a sealed lease, decided, removed in dependency order after its snapshot, and
reported with its own extension command. The product code is not changed: the fixture puts
the spec into the kind table and the adapter into ``ADAPTERS`` for the test's duration, the
way the two files of docs/development.md ("Adding a resource kind") would.
"""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

import pytest

from ansible_collections.osops.lifecycle.plugins.module_utils._lease import kind_table, kinds, reaper, scan
from ansible_collections.osops.lifecycle.plugins.module_utils._lease.engine import LeaseRun
from ansible_collections.osops.lifecycle.plugins.module_utils._lease.keys import read_lease
from ansible_collections.osops.lifecycle.plugins.module_utils._lease.kind_table import KindSpec, Ref
from ansible_collections.osops.lifecycle.tests.unit.plugins.module_utils.lease.memory_cloud import (
    MemoryCloud, _new_id, _Service,
)
from ansible_collections.osops.lifecycle.tests.unit.plugins.module_utils.lease.test_decide import KEYS, expired_and_told
from ansible_collections.osops.lifecycle.tests.unit.plugins.module_utils.lease.test_lease_run import SETTINGS

# --- the two pieces a contributor writes ---------------------------------------------------------------------

SHARE = KindSpec("share", "share", ("delete",))
SHARE_SNAPSHOT = KindSpec("share_snapshot", "share snapshot", ("delete",), refs=(Ref("share_id", "share"),))


class Shares(kinds.MetadataAdapter):
    kind = "share"
    service, set_metadata, delete_metadata = "shared_file_system", "set_share_metadata", "delete_share_metadata"
    lister, finder = "shares", "find_share"

    def to_record(self, resource):
        return self.record(resource, resource.project_id, resource.user_id, resource.metadata)

    def remove(self, record, verb, timeout, gone):
        self.conn.shared_file_system.delete_share(record.id)
        kinds.wait_for(lambda: gone(record), timeout, "deleting share %s" % record.id, interval=0.01)
        return kind_table.PAST[verb]


class ShareSnapshots(Shares):
    kind = "share_snapshot"
    set_metadata, delete_metadata = "set_share_snapshot_metadata", "delete_share_snapshot_metadata"
    lister, finder = "share_snapshots", "find_share_snapshot"

    def to_record(self, resource):
        return self.record(resource, resource.project_id, resource.user_id, resource.metadata,
                           share_id=resource.share_id)

    def remove(self, record, verb, timeout, gone):
        self.conn.shared_file_system.delete_share_snapshot(record.id)
        return kind_table.PAST[verb]


# --- the test's stand-in for Manila in the memory cloud --------------------------------------------------------

class SharedFileSystem(_Service):
    def __init__(self, cloud):
        super().__init__(cloud)
        self.tables = {"shares": {}, "share_snapshots": {}}

    def add(self, table, name, project_id, user_id, metadata, **fields):
        item = SimpleNamespace(id=_new_id(), name=name, project_id=project_id, user_id=user_id, status="available",
                               created_at="2026-01-01T00:00:00Z", metadata=dict(metadata), **fields)
        self.tables[table][item.id] = item
        return item.id

    def shares(self, details=True, all_projects=False, project_id=None):
        return self._list(self.tables["shares"], all_projects, project_id)

    def share_snapshots(self, details=True, all_projects=False, project_id=None):
        return self._list(self.tables["share_snapshots"], all_projects, project_id)

    def _set(self, table, item_id, values):
        self.tables[table][item_id].metadata.update(values)
        self.cloud.calls.append(("shared_file_system", "set_metadata", item_id))

    def set_share_metadata(self, share_id, **values):
        self._set("shares", share_id, values)

    def set_share_snapshot_metadata(self, snapshot_id, **values):
        self._set("share_snapshots", snapshot_id, values)

    def delete_share(self, share_id):
        if any(s.share_id == share_id for s in self.tables["share_snapshots"].values()):
            raise RuntimeError("share %s has snapshots" % share_id)  # Manila refuses, like Cinder
        del self.tables["shares"][share_id]
        self.cloud.calls.append(("shared_file_system", "delete", share_id))

    def delete_share_snapshot(self, snapshot_id):
        del self.tables["share_snapshots"][snapshot_id]
        self.cloud.calls.append(("shared_file_system", "delete", snapshot_id))


@pytest.fixture
def with_share_kinds(monkeypatch):
    """The kind table with the two new entries (a kind comes before what it uses), and their adapters."""
    specs = kind_table.KINDS[:1] + (SHARE_SNAPSHOT,) + kind_table.KINDS[1:] + (SHARE,)
    order = tuple(spec.name for spec in specs)
    monkeypatch.setattr(kind_table, "KINDS", specs)
    # the modules that took the order at import time
    for module in (kind_table, scan, reaper):
        monkeypatch.setattr(module, "KIND_ORDER", order)
    for spec in (SHARE, SHARE_SNAPSHOT):
        monkeypatch.setitem(kind_table.KIND, spec.name, spec)
    monkeypatch.setitem(kind_table.USES, "share", SHARE.used_by)
    monkeypatch.setitem(kinds.ADAPTERS, "share", Shares)
    monkeypatch.setitem(kinds.ADAPTERS, "share_snapshot", ShareSnapshots)
    return order


def test_a_new_kind_is_scanned_enrolled_removed_in_order_and_mailed(with_share_kinds):
    assert SHARE.used_by == ("share_snapshot",)
    cloud = MemoryCloud()
    cloud.shared_file_system = manila = SharedFileSystem(cloud)
    project = cloud.add_project("alpha")
    ann = cloud.add_user("ann", "ann@example.org")
    old = manila.add("shares", "old", project, ann, expired_and_told())
    kept = manila.add("shares", "kept", project, ann, expired_and_told())
    snapshot = manila.add("share_snapshots", "old-snap", project, ann, expired_and_told(), share_id=old)
    manila.add("share_snapshots", "fresh-snap", project, ann, {}, share_id=kept)
    new = manila.add("shares", "new", project, ann, {})

    settings = replace(SETTINGS, kinds=("share_snapshot", "share"))
    scanned = LeaseRun(cloud, replace(settings, reap=True, check_mode=True)).run()
    status = {d["name"]: d["status"] for d in scanned["decisions"]}
    assert status == {"old": "expired", "kept": "in_use", "new": "enrolled", "old-snap": "expired",
                      "fresh-snap": "enrolled"}
    assert [r["name"] for r in scanned["removed"]] == ["old-snap", "old"]  # the snapshot first

    result = LeaseRun(cloud, replace(settings, reap=True)).run()
    assert [(r["kind"], r["outcome"]) for r in result["removed"]] == [("share_snapshot", "removed"),
                                                                      ("share", "removed")]
    assert cloud.changes("delete") == [snapshot, old]
    assert read_lease(manila.tables["shares"][new].metadata, KEYS).expires is not None
    assert KEYS.seal in manila.tables["shares"][new].metadata and kept in manila.tables["shares"]


def test_its_extension_command_uses_its_cli_noun(with_share_kinds):
    assert KEYS.extend_command("share_snapshot", "n1", 30) == \
        "openstack share snapshot set --property lease_extend=30 n1"
