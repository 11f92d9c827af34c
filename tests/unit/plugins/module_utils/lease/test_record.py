# SPDX-License-Identifier: GPL-3.0-or-later
"""The resource record: built once, frozen, named in one step; its edges are the one source of "in use"."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import pytest

from ansible_collections.osops.lifecycle.plugins.module_utils._lease.in_use import blocking_user, users_of
from ansible_collections.osops.lifecycle.plugins.module_utils._lease.kind_table import KIND, KINDS
from ansible_collections.osops.lifecycle.plugins.module_utils._lease.record import Key, ResourceRecord
from ansible_collections.osops.lifecycle.plugins.module_utils._lease.scan import named


def server(**details):
    return ResourceRecord("server", "s1", "web", "ACTIVE", "p1", "u1", "2026-01-01T00:00:00Z", {"a": "1"}, details)


def test_a_record_is_frozen_through_and_through():
    record = server(volume_ids=["v1"])
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.name = "other"
    with pytest.raises(TypeError):
        record.metadata["lease_expires"] = "2099-01-01T00:00:00Z"  # an owner's metadata is read, never edited here
    assert record["volume_ids"] == ("v1",) and record.get("image_id") is None


def test_it_reads_as_a_mapping_and_copies_to_plain_data():
    record = server(addresses=["10.0.0.5"])
    assert record["id"] == "s1" and record.get("project_name") is None and "addresses" in record
    plain = record.plain()
    assert plain["metadata"] == {"a": "1"} and plain["addresses"] == ["10.0.0.5"] and "details" not in plain
    assert ResourceRecord.of(plain) == record


def test_names_are_added_in_one_step_and_the_scanned_record_stays_as_read():
    directory = SimpleNamespace(project=lambda pid: SimpleNamespace(name="alpha"),
                                user=lambda uid: SimpleNamespace(name="ann"))
    record = server()
    [enriched] = named([record], directory)
    assert (enriched.project_name, enriched.user_name) == ("alpha", "ann")
    assert record.project_name is None


def test_edges_come_from_the_kind_table_refs_both_ways():
    records = [server(image_id="i1", volume_ids=["v1", "v2"]),
               ResourceRecord("volume", "v3", details={"attached_to": ["s9"]}),
               ResourceRecord("snapshot", "n1", details={"volume_id": "v1"}),
               ResourceRecord("image", "i1", details={"visibility": "private"})]
    users = users_of(records)
    assert users == {Key("image", "i1"): {Key("server", "s1")},
                     Key("volume", "v1"): {Key("server", "s1"), Key("snapshot", "n1")},
                     Key("volume", "v2"): {Key("server", "s1")},
                     Key("volume", "v3"): {Key("server", "s9")}}
    assert blocking_user(frozenset(users[Key("volume", "v1")]), frozenset({Key("snapshot", "n1")})) == Key("snapshot", "n1")
    # hostile details never make an edge: only id strings do
    assert users_of([server(image_id={"id": "i1"}, volume_ids=[None, 5, ""])]) == {}


def test_every_ref_names_a_known_kind_and_a_kind_comes_before_what_it_uses():
    order = [spec.name for spec in KINDS]
    for spec in KINDS:
        for ref in spec.refs:
            assert ref.kind in KIND
            user, used = (spec.name, ref.kind) if ref.uses else (ref.kind, spec.name)
            assert order.index(user) < order.index(used), (user, used)
