# SPDX-License-Identifier: GPL-3.0-or-later
"""imagecache_link run in-process on a real directory tree (the test machine's filesystem).

Loop-mounted xfs/btrfs, EXDEV and multi-node rollouts are in the integration targets.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import struct
import time

import pytest

from ansible_collections.osops.lifecycle.plugins.modules import imagecache_link

QCOW2_HEADER = b"QFI\xfb" + struct.pack(">IQI", 3, 0, 0) + bytes(100)


def sha1(text):
    return hashlib.sha1(text.encode()).hexdigest()


@pytest.fixture
def cloud(tmp_path):
    """A Glance store, an instances dir with _base, and the image list Glance would return."""
    store = tmp_path / "glance" / "images"
    instances = tmp_path / "nova" / "instances"
    base = instances / "_base"
    for folder in (store, base):
        folder.mkdir(parents=True)
    images = []

    def add(image_id, content, disk_format="raw", status="active", size=None, write=True):
        if write:
            (store / image_id).write_bytes(content)
            old = time.time() - 10 * 86400  # uploaded ten days ago
            os.utime(store / image_id, (old, old))
        images.append(dict(id=image_id, status=status, disk_format=disk_format,
                           size=len(content) if size is None else size,
                           os_hash_algo="sha512", os_hash_value=hashlib.sha512(content).hexdigest(),
                           name="image " + image_id, visibility="public"))

    add("11111111-aaaa-4000-8000-000000000001", os.urandom(8192))
    add("11111111-aaaa-4000-8000-000000000002", bytes(32768) + b"\x01CD001" + bytes(8192), disk_format="iso")
    add("11111111-aaaa-4000-8000-000000000003", QCOW2_HEADER, disk_format="qcow2")
    add("11111111-aaaa-4000-8000-000000000004", QCOW2_HEADER, disk_format="raw")  # lies about its format
    add("11111111-aaaa-4000-8000-000000000005", os.urandom(100), status="saving")
    add("11111111-aaaa-4000-8000-000000000006", os.urandom(100), write=False)  # file missing
    add("11111111-aaaa-4000-8000-000000000007", os.urandom(100), size=200)  # partial file
    return dict(store=store, instances=instances, base=base, images=images,
                state=tmp_path / "state" / "imagecache.json")


def args(cloud, **extra):
    values = dict(images=cloud["images"], source_dir=str(cloud["store"]), cache_dir=str(cloud["base"]),
                  state_file=str(cloud["state"]))
    values.update(extra)
    return values


def by_id(entries):
    return {entry["id"]: entry for entry in entries}


def test_links_what_is_safe_and_says_why_it_skips_the_rest(run_module, cloud):
    rc, result = run_module(imagecache_link.main, args(cloud))

    assert rc == 0, result
    assert result["changed"] is True
    linked = by_id(result["linked"])
    assert set(linked) == {"11111111-aaaa-4000-8000-000000000001", "11111111-aaaa-4000-8000-000000000002"}
    for image_id, entry in linked.items():
        path = cloud["base"] / sha1(image_id)
        assert entry["path"] == str(path) and entry["method"] == "hard link"
        assert os.stat(path).st_ino == os.stat(cloud["store"] / image_id).st_ino
        assert oct(os.stat(path).st_mode & 0o777) == "0o644"
        assert time.time() - os.stat(path).st_mtime < 60  # touched: Nova's cleanup will not take it
        assert (cloud["instances"] / "locks" / ("nova-" + sha1(image_id))).exists()
    reasons = {k: v["reason"] for k, v in by_id(result["skipped_images"]).items()}
    assert "qcow2 is not in formats" in reasons["11111111-aaaa-4000-8000-000000000003"]
    assert reasons["11111111-aaaa-4000-8000-000000000004"] == "content is qcow2 but Glance says raw"
    assert "saving" in reasons["11111111-aaaa-4000-8000-000000000005"]
    assert reasons["11111111-aaaa-4000-8000-000000000006"] == "Glance file is missing"
    assert "size mismatch" in reasons["11111111-aaaa-4000-8000-000000000007"]
    assert result["counts"] == dict(linked=2, already_linked=0, updated=0, skipped_images=5,
                                    pruned=0, kept=0, errors=0, refused=0)
    assert sorted(os.listdir(cloud["base"])) == sorted(sha1(i) for i in linked)


def test_second_run_changes_nothing(run_module, cloud):
    run_module(imagecache_link.main, args(cloud))
    rc, result = run_module(imagecache_link.main, args(cloud))

    assert rc == 0 and result["changed"] is False
    assert result["counts"]["linked"] == 0 and result["counts"]["already_linked"] == 2


def test_check_mode_changes_nothing_and_diff_tells(run_module, cloud):
    before = sorted(os.listdir(cloud["base"]))
    rc, result = run_module(imagecache_link.main, dict(args(cloud), _ansible_check_mode=True, _ansible_diff=True))

    assert rc == 0 and result["changed"] is True
    assert result["counts"]["linked"] == 2
    assert sorted(os.listdir(cloud["base"])) == before == []
    assert not (cloud["instances"] / "locks").exists()
    assert result["diff"]["after"].count("hard link of") == 2


def test_an_existing_different_base_file_is_left_alone(run_module, cloud):
    image_id = "11111111-aaaa-4000-8000-000000000001"
    novas = cloud["base"] / sha1(image_id)
    novas.write_bytes(b"converted by nova")
    rc, result = run_module(imagecache_link.main, args(cloud))

    assert rc == 0
    assert "left alone" in by_id(result["skipped_images"])[image_id]["reason"]
    assert novas.read_bytes() == b"converted by nova"


def test_stale_attributes_are_refreshed_and_reported(run_module, cloud):
    run_module(imagecache_link.main, args(cloud))
    image_id = "11111111-aaaa-4000-8000-000000000001"
    path = cloud["base"] / sha1(image_id)
    os.chmod(path, 0o600)
    old = time.time() - 2 * 86400
    os.utime(path, (old, old))
    rc, result = run_module(imagecache_link.main, args(cloud))

    assert rc == 0 and result["changed"] is True
    assert by_id(result["updated"])[image_id]["changes"] == ["chmod", "touch"]
    assert os.stat(path).st_mode & 0o777 == 0o644 and time.time() - os.stat(path).st_mtime < 60


def test_hash_verification_refuses_altered_content_and_remembers(run_module, cloud):
    image_id = "11111111-aaaa-4000-8000-000000000001"
    glance = next(i for i in cloud["images"] if i["id"] == image_id)
    glance["os_hash_value"] = "0" * 128
    rc, result = run_module(imagecache_link.main, args(cloud, verify="hash"))

    assert rc == 0
    assert "hash differs" in by_id(result["skipped_images"])[image_id]["reason"]
    assert "11111111-aaaa-4000-8000-000000000002" in by_id(result["linked"])
    state = json.loads(cloud["state"].read_text())
    assert set(state["hashes"]) == {image_id, "11111111-aaaa-4000-8000-000000000002"}


def instance_built_on(cloud, image_id):
    """An instance disk (qcow2) whose backing file is the image's base file."""
    backing = str(cloud["base"] / sha1(image_id)).encode()
    instance = cloud["instances"] / "9d7c3a52-0000-4000-8000-00000000abcd"
    instance.mkdir()
    header = bytearray(b"QFI\xfb" + struct.pack(">IQI", 3, 512, len(backing)) + bytes(492))
    (instance / "disk").write_bytes(bytes(header) + backing)


def test_prune_removes_unused_links_of_deleted_images_and_keeps_used_ones(run_module, cloud, tmp_path):
    run_module(imagecache_link.main, args(cloud))
    used_id, unused_id = "11111111-aaaa-4000-8000-000000000001", "11111111-aaaa-4000-8000-000000000002"
    instance_built_on(cloud, used_id)
    # both images are deleted in Glance: files unlinked, gone from the list
    for image_id in (used_id, unused_id):
        os.unlink(cloud["store"] / image_id)
    remaining = [i for i in cloud["images"] if i["id"] not in (used_id, unused_id)]

    rc, result = run_module(imagecache_link.main, dict(args(cloud), images=remaining, prune=True))

    assert rc == 0 and result["changed"] is True
    assert [p["id"] for p in result["pruned"]] == [unused_id]
    assert [(k["id"], k["reason"]) for k in result["kept"]] == [(used_id, "backing file of an instance disk")]
    assert (cloud["base"] / sha1(used_id)).exists()
    assert not (cloud["base"] / sha1(unused_id)).exists()


def test_prune_never_touches_files_it_did_not_make(run_module, cloud):
    stranger = cloud["base"] / sha1("never-linked-by-us")
    stranger.write_bytes(b"nova download")
    rc, result = run_module(imagecache_link.main, args(cloud, images=[], prune=True))

    assert rc == 0 and result["pruned"] == [] and stranger.exists()


def test_stale_temp_files_of_a_crashed_run_are_removed(run_module, cloud):
    crashed = cloud["base"] / ("%s.osops-tmp-999999999" % sha1("x"))
    crashed.write_bytes(b"partial copy")
    rc, result = run_module(imagecache_link.main, args(cloud))

    assert rc == 0 and result["temp_files_removed"] == [str(crashed)]
    assert not crashed.exists()


def test_missing_cache_dir_is_a_clear_failure(run_module, cloud):
    rc, result = run_module(imagecache_link.main, args(cloud, cache_dir=str(cloud["base"]) + "-typo"))

    assert rc == 1 and "_base-typo" in result["msg"] and "does not exist" in result["msg"]


def test_a_compute_without_base_gets_one_owned_like_instances_when_asked(run_module, cloud):
    shutil.rmtree(cloud["base"])
    os.chown(cloud["instances"], 4242, 4343)  # the nova user's instances directory

    rc, checked = run_module(imagecache_link.main, args(cloud, create_cache_dir=True, _ansible_check_mode=True))
    assert rc == 1 and "does not exist" in checked["msg"] and not cloud["base"].exists()  # check mode makes nothing

    rc, result = run_module(imagecache_link.main, args(cloud, create_cache_dir=True))
    made = os.lstat(cloud["base"])
    assert rc == 0 and stat.S_ISDIR(made.st_mode) and (made.st_uid, made.st_gid) == (4242, 4343)
    assert stat.S_IMODE(made.st_mode) == 0o755
    linked = sorted(e["id"] for e in result["linked"])
    assert linked == ["11111111-aaaa-4000-8000-000000000001", "11111111-aaaa-4000-8000-000000000002"]


def test_create_cache_dir_never_follows_a_symlink_named_base(run_module, cloud, tmp_path):
    shutil.rmtree(cloud["base"])
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    os.chown(cloud["instances"], 4242, 4343)  # not root's: a symlink there is not followed
    os.symlink(elsewhere, cloud["base"])

    rc, result = run_module(imagecache_link.main, args(cloud, create_cache_dir=True))
    assert rc == 1 and "refused" in result["msg"] and os.listdir(elsewhere) == []


def test_unknown_owner_is_a_clear_failure(run_module, cloud):
    rc, result = run_module(imagecache_link.main, args(cloud, owner="no-such-user-here"))

    assert rc == 1 and "no-such-user-here" in result["msg"]


# --- image_ids: a run limited to some images (the event rulebooks) --------------------------------------------

IMAGE_A, IMAGE_B = "11111111-aaaa-4000-8000-000000000001", "11111111-aaaa-4000-8000-000000000002"


@pytest.fixture
def both_linked(run_module, cloud):
    """A and B linked by a full run, recorded in the state; then A deleted in Glance (file and list entry)."""
    rc, result = run_module(imagecache_link.main, args(cloud))
    assert rc == 0 and {e["id"] for e in result["linked"]} == {IMAGE_A, IMAGE_B}
    os.unlink(cloud["store"] / IMAGE_A)
    return json.loads(cloud["state"].read_text())["links"]


def test_a_scoped_prune_removes_only_that_images_file_and_record(run_module, cloud, both_linked, monkeypatch):
    from ansible_collections.osops.lifecycle.plugins.module_utils._imagecache import cache_run
    looked_at = []
    entry_facts = cache_run.entry_facts
    monkeypatch.setattr(cache_run, "entry_facts", lambda dirs, name: looked_at.append(name) or entry_facts(dirs, name))

    # images=[]: without the scope, B would count as gone and be pruned as well
    rc, result = run_module(imagecache_link.main, args(cloud, images=[], image_ids=[IMAGE_A], prune=True))

    assert rc == 0 and result["changed"] is True
    assert [(p["id"], p["base_name"]) for p in result["pruned"]] == [(IMAGE_A, sha1(IMAGE_A))]
    assert not (cloud["base"] / sha1(IMAGE_A)).exists()
    assert os.stat(cloud["base"] / sha1(IMAGE_B)).st_ino == os.stat(cloud["store"] / IMAGE_B).st_ino
    assert json.loads(cloud["state"].read_text())["links"] == {sha1(IMAGE_B): both_linked[sha1(IMAGE_B)]}
    assert sha1(IMAGE_B) not in looked_at  # B's base file is not even looked at


def test_a_scoped_prune_keeps_other_records_it_would_otherwise_forget(run_module, cloud, both_linked):
    # B's base file was replaced (Nova's own download): a full prune would forget B's record
    os.unlink(cloud["base"] / sha1(IMAGE_B))
    (cloud["base"] / sha1(IMAGE_B)).write_bytes(b"nova's download")

    rc, result = run_module(imagecache_link.main, args(cloud, images=[], image_ids=[IMAGE_A], prune=True))

    assert rc == 0 and [p["id"] for p in result["pruned"]] == [IMAGE_A]
    assert json.loads(cloud["state"].read_text())["links"] == {sha1(IMAGE_B): both_linked[sha1(IMAGE_B)]}


def test_a_scoped_prune_in_check_mode_changes_nothing(run_module, cloud, both_linked):
    before, state = sorted(os.listdir(cloud["base"])), cloud["state"].read_text()

    rc, result = run_module(imagecache_link.main, args(cloud, images=[], image_ids=[IMAGE_A], prune=True,
                                                       _ansible_check_mode=True, _ansible_diff=True))

    assert rc == 0 and result["changed"] is True
    assert [p["id"] for p in result["pruned"]] == [IMAGE_A]
    assert result["diff"]["after"] == "%s  absent (pruned)\n" % sha1(IMAGE_A)
    assert sorted(os.listdir(cloud["base"])) == before and cloud["state"].read_text() == state


def test_a_scoped_prune_keeps_a_base_file_an_instance_uses(run_module, cloud, both_linked):
    instance_built_on(cloud, IMAGE_A)

    rc, result = run_module(imagecache_link.main, args(cloud, images=[], image_ids=[IMAGE_A], prune=True))

    assert rc == 0 and result["changed"] is False and result["pruned"] == []
    assert [(k["id"], k["reason"]) for k in result["kept"]] == [(IMAGE_A, "backing file of an instance disk")]
    assert (cloud["base"] / sha1(IMAGE_A)).exists() and (cloud["base"] / sha1(IMAGE_B)).exists()
    assert set(json.loads(cloud["state"].read_text())["links"]) == {sha1(IMAGE_A), sha1(IMAGE_B)}


def test_a_scoped_run_links_only_its_images_and_reports_nothing_of_the_others(run_module, cloud):
    others_temp = cloud["base"] / ("%s.osops-tmp-999999999" % sha1(IMAGE_A))
    others_temp.write_bytes(b"partial copy of another run")

    rc, result = run_module(imagecache_link.main, args(cloud, image_ids=[IMAGE_B], prune=True))

    assert rc == 0 and result["changed"] is True
    assert [e["id"] for e in result["linked"]] == [IMAGE_B]
    assert result["counts"] == dict(linked=1, already_linked=0, updated=0, skipped_images=0,
                                    pruned=0, kept=0, errors=0, refused=0)
    assert sorted(os.listdir(cloud["base"])) == sorted([sha1(IMAGE_B), others_temp.name])
    assert result["temp_files_removed"] == []


def test_a_scoped_run_reports_a_bad_entry_of_its_own_image_only(run_module, cloud):
    images = [dict(i, size={"bad": 1}) for i in cloud["images"]]

    rc, result = run_module(imagecache_link.main, args(cloud, images=images, image_ids=[IMAGE_B]))

    assert rc == 0 and [e["id"] for e in result["skipped_images"]] == [IMAGE_B]


@pytest.mark.parametrize("bad", ["", "../etc", ".hidden", "a/b"])
def test_an_image_id_that_cannot_be_one_fails_before_anything_is_done(run_module, cloud, bad):
    rc, result = run_module(imagecache_link.main, args(cloud, image_ids=[IMAGE_B, bad], prune=True))

    assert rc == 1 and "image_ids" in result["msg"] and repr(bad) in result["msg"]
    assert os.listdir(cloud["base"]) == [] and not cloud["state"].exists()
