# SPDX-License-Identifier: GPL-3.0-or-later
"""The image-cache decisions, without touching a filesystem."""

from __future__ import annotations

from dataclasses import replace

import pytest

from ansible_collections.osops.lifecycle.plugins.module_utils._imagecache.inspect import Header
from ansible_collections.osops.lifecycle.plugins.module_utils._imagecache.naming import cache_name
from ansible_collections.osops.lifecycle.plugins.module_utils._imagecache.plan import (
    ALREADY,
    LINK,
    SKIP,
    FileFacts,
    Image,
    Recorded,
    Wanted,
    attribute_fixes,
    decide,
    in_scope,
    plan_prune,
    preselect,
    scope_names,
    scoped_records,
)

NOW = 1_800_000_000.0
WANTED = Wanted(uid=107, gid=107, mode=0o644, touch=True, touch_interval=3600,
                formats=frozenset(("raw", "iso")), verify_hash=False)
IMAGE = Image("img-1", "active", 1024, "raw", "sha512", "ab" * 64)
SOURCE = FileFacts(dev=1, ino=100, size=1024, mtime=NOW - 5 * 86400, uid=161, gid=161, mode=0o640)


def linked(**changes):
    values = dict(dev=1, ino=100, size=1024, mtime=NOW - 60, uid=107, gid=107, mode=0o644)
    values.update(changes)
    return FileFacts(**values)


@pytest.mark.parametrize("status", ["queued", "saving", "importing", "uploading", "deactivated", "killed", ""])
def test_only_active_images(status):
    assert "not active" in preselect(Image("i", status, 10, "raw"), WANTED)


@pytest.mark.parametrize("image_id", ["../../etc/shadow", "a/b", ".hidden", ""])
def test_ids_that_would_leave_the_source_dir(image_id):
    assert preselect(Image(image_id, "active", 10, "raw"), WANTED) == "invalid image id"


def test_formats_and_missing_metadata():
    assert "qcow2 is not in formats" in preselect(Image("i", "active", 10, "qcow2"), WANTED)
    assert "no size" in preselect(Image("i", "active", None, "raw"), WANTED)
    assert "no disk_format" in preselect(Image("i", "active", 10, None), WANTED)
    hashing = replace(WANTED, verify_hash=True)
    assert "no os_hash_value" in preselect(Image("i", "active", 10, "raw"), hashing)
    assert preselect(IMAGE, WANTED) is None


def test_new_link_when_everything_agrees():
    decision = decide(IMAGE, "b", WANTED, NOW, SOURCE, None, header=Header("raw"))
    assert decision.action == LINK
    assert set(decision.fixes) == {"chown", "chmod", "touch"}


@pytest.mark.parametrize(
    "source, header, reason",
    [
        (None, Header("raw"), "missing"),
        (FileFacts(1, 100, 512, NOW, 0, 0, 0o644), Header("raw"), "size mismatch: file has 512 bytes, Glance says 1024"),
        (SOURCE, Header("qcow2"), "content is qcow2 but Glance says raw"),
        (SOURCE, Header("iso"), "content is iso but Glance says raw"),
    ],
)
def test_skips_with_a_reason(source, header, reason):
    decision = decide(IMAGE, "b", WANTED, NOW, source, None, header=header)
    assert decision.action == SKIP and reason in decision.reason


def test_unsafe_qcow2_never_linked_even_when_allowed():
    allow_qcow2 = replace(WANTED, formats=frozenset(("qcow2",)))
    image = Image("q", "active", 1024, "qcow2")
    assert decide(image, "b", allow_qcow2, NOW, SOURCE, None, header=Header("qcow2")).action == LINK
    for header, reason in ((Header("qcow2", backing_file=True), "backing file"),
                           (Header("qcow2", data_file=True), "data file")):
        decision = decide(image, "b", allow_qcow2, NOW, SOURCE, None, header=header)
        assert decision.action == SKIP and reason in decision.reason


def test_hash_verification():
    hashing = replace(WANTED, verify_hash=True)
    assert decide(IMAGE, "b", hashing, NOW, SOURCE, None, header=Header("raw"), hash_ok=True).action == LINK
    bad = decide(IMAGE, "b", hashing, NOW, SOURCE, None, header=Header("raw"), hash_ok=False)
    assert bad.action == SKIP and "hash differs" in bad.reason


def test_existing_link_is_already_linked_and_left_alone_when_fresh():
    decision = decide(IMAGE, "b", WANTED, NOW, SOURCE, linked())
    assert decision.action == ALREADY and decision.fixes == ()


def test_existing_link_gets_its_attributes_and_mtime_refreshed():
    stale = linked(uid=0, mode=0o600, mtime=NOW - 7200)
    assert set(decide(IMAGE, "b", WANTED, NOW, SOURCE, stale).fixes) == {"chown", "chmod", "touch"}


def test_a_different_base_file_is_never_replaced():
    novas_own = FileFacts(dev=1, ino=999, size=4096, mtime=NOW, uid=107, gid=107, mode=0o644)
    decision = decide(IMAGE, "b", WANTED, NOW, SOURCE, novas_own, header=Header("raw"))
    assert decision.action == SKIP and "left alone" in decision.reason


def test_our_own_copy_counts_as_linked():
    copy = linked(ino=555)
    assert decide(IMAGE, "b", WANTED, NOW, SOURCE, copy, recorded_copy=True).action == ALREADY


def test_touch_off_never_touches():
    no_touch = replace(WANTED, touch=False)
    assert "touch" not in attribute_fixes(linked(mtime=0), no_touch, NOW)


def test_prune_plan():
    entries = {
        "gone-image": FileFacts(1, 10, 1, NOW, 0, 0, 0o644),
        "in-use": FileFacts(1, 11, 1, NOW, 0, 0, 0o644),
        "still-active": FileFacts(1, 12, 1, NOW, 0, 0, 0o644),
        "replaced": FileFacts(1, 99, 1, NOW, 0, 0, 0o644),
        "deactivated-link": FileFacts(1, 14, 1, NOW, 0, 0, 0o644),
        "novas-download": FileFacts(1, 15, 1, NOW, 0, 0, 0o644),
    }
    recorded = {
        "gone-image": Recorded("deleted-1", 1, 10),
        "in-use": Recorded("deleted-2", 1, 11),
        "still-active": Recorded("active-1", 1, 12),
        "replaced": Recorded("deleted-3", 1, 13),
        "vanished": Recorded("deleted-4", 1, 16),
    }
    linked_sources = {
        "deactivated-link": FileFacts(1, 14, 1, NOW, 0, 0, 0o644),
        "novas-download": FileFacts(1, 77, 1, NOW, 0, 0, 0o644),  # not the same inode: not ours
    }
    plan = plan_prune(recorded, linked_sources, {"active-1"}, entries, in_use={"in-use"})
    assert plan.prune == ["deactivated-link", "gone-image"]
    assert plan.kept == {"in-use": "backing file of an instance disk"}
    assert sorted(plan.forget) == ["replaced", "vanished"]


def test_a_scope_covers_its_ids_only_and_no_scope_covers_all():
    assert in_scope("img-1", None) and in_scope(["not", "hashable"], None)
    assert in_scope("img-1", frozenset({"img-1"})) and not in_scope("img-2", frozenset({"img-1"}))
    assert not in_scope(["not", "hashable"], frozenset({"img-1"})) and not in_scope(None, frozenset({"img-1"}))


def test_a_scoped_prune_judges_only_the_records_of_its_images():
    recorded = {cache_name("img-%d" % n): Recorded("img-%d" % n, 1, n) for n in (1, 2, 3)}
    names = scope_names(frozenset({"img-1", "img-9"}))

    assert scope_names(None) is None and scoped_records(recorded, None) is recorded
    assert names == {cache_name("img-1"), cache_name("img-9")}
    assert scoped_records(recorded, names) == {cache_name("img-1"): Recorded("img-1", 1, 1)}
