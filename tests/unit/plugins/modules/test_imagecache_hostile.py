# SPDX-License-Identifier: GPL-3.0-or-later
"""imagecache_link against a hostile ``nova`` user, in-process on the test machine's filesystem.

The ``nova`` user is uid/gid 65534 here: it owns the instances directory, _base and
the instance directories, as on a compute node. Each test plants what such a user
could plant and checks that nothing outside _base and locks changed. The racing
versions (a second process swapping in a loop, on xfs/ext4/btrfs) are in the
integration target imagecache_hostile.
"""

from __future__ import annotations

import hashlib
import os
import struct
import threading

import pytest

from ansible_collections.osops.lifecycle.plugins.module_utils._imagecache import act
from ansible_collections.osops.lifecycle.plugins.module_utils._imagecache.fsdir import Refused, open_dir
from ansible_collections.osops.lifecycle.plugins.module_utils._imagecache.plan import Wanted, facts_of
from ansible_collections.osops.lifecycle.plugins.modules import imagecache_link

NOVA = 65534
IMAGE_ID = "22222222-bbbb-4000-8000-000000000001"
WANTED = Wanted(uid=NOVA, gid=NOVA, mode=0o644, touch=True, touch_interval=3600, formats=frozenset(("raw",)), verify_hash=False)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="plants files as another user: needs root")


def sha1(text):
    return hashlib.sha1(text.encode()).hexdigest()


def snapshot(folder):
    """Owner, mode, link count and content of everything under a folder (what an attacker would want changed)."""
    seen = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            path = os.path.join(root, name)
            st = os.lstat(path)
            content = open(path, "rb").read() if os.path.isfile(path) and not os.path.islink(path) else None
            seen[path] = (st.st_uid, st.st_gid, st.st_mode, st.st_nlink, content)
    return seen


@pytest.fixture
def node(tmp_path):
    """A compute node: Glance's store (root's), nova's instances and _base, and root's own files nearby."""
    store = tmp_path / "glance"
    instances = tmp_path / "instances"
    base = instances / "_base"
    root_dir = tmp_path / "root-owned"  # stands for /etc/cron.hourly
    for folder in (store, base, root_dir):
        folder.mkdir(parents=True)
    for folder in (instances, base):
        os.chown(folder, NOVA, NOVA)
    secret = root_dir / "secret"
    secret.write_bytes(b"root's secret\n")
    os.chmod(secret, 0o600)
    content = os.urandom(4096)
    (store / IMAGE_ID).write_bytes(content)
    image = dict(id=IMAGE_ID, status="active", size=len(content), disk_format="raw")
    return dict(tmp=tmp_path, store=store, instances=instances, base=base, root=root_dir, secret=secret,
                content=content, images=[image], state=tmp_path / "state.json")


def args(node, **extra):
    values = dict(images=node["images"], source_dir=str(node["store"]), cache_dir=str(node["base"]),
                  state_file=str(node["state"]), owner=str(NOVA), group=str(NOVA))
    values.update(extra)
    return values


def replace_with_symlink(path, target):
    os.rename(path, str(path) + ".moved")
    os.symlink(target, path)
    os.lchown(path, NOVA, NOVA)


@pytest.mark.parametrize("directory", ["_base", "locks"])
def test_a_symlinked_nova_directory_is_refused_and_nothing_is_made_through_it(run_module, node, directory):
    (node["instances"] / "locks").mkdir()
    replace_with_symlink(node["instances"] / directory, str(node["root"]))
    before = snapshot(node["root"])

    rc, result = run_module(imagecache_link.main, args(node))

    assert rc == 1 and "refused" in result["msg"] and str(node["instances"] / directory) in result["msg"]
    assert result["refused"][0]["path"] == str(node["instances"] / directory)
    assert snapshot(node["root"]) == before


def test_an_operators_symlink_in_root_owned_directories_is_followed(run_module, node):
    # /var/lib/nova/instances -> /mnt/nfs/instances, made by root in a directory only root writes
    link = node["tmp"] / "instances-link"
    os.symlink(node["instances"], link)
    rc, result = run_module(imagecache_link.main, args(node, cache_dir=str(link / "_base")))

    assert rc == 0 and [entry["id"] for entry in result["linked"]] == [IMAGE_ID]
    assert os.stat(node["base"] / sha1(IMAGE_ID)).st_ino == os.stat(node["store"] / IMAGE_ID).st_ino


def test_a_symlink_as_glance_file_is_refused(run_module, node):
    os.chmod(node["store"], 0o777)  # a store the attacker can write to
    os.unlink(node["store"] / IMAGE_ID)
    os.symlink(node["secret"], node["store"] / IMAGE_ID)
    node["images"][0]["size"] = os.path.getsize(node["secret"])

    rc, result = run_module(imagecache_link.main, args(node, fallback="copy"))

    assert rc == 0 and result["linked"] == []
    assert result["refused"][0]["id"] == IMAGE_ID and "symlink" in result["refused"][0]["reason"]
    assert os.listdir(node["base"]) == [] and os.stat(node["secret"]).st_mode & 0o777 == 0o600


def test_a_root_owned_file_in_a_store_root_does_not_own_is_refused(run_module, node):
    # e.g. a hard link of one of root's files, planted over NFS (no protected_hardlinks there)
    os.chown(node["store"], 161, 161)
    rc, result = run_module(imagecache_link.main, args(node))

    assert rc == 0 and result["linked"] == []
    assert "owned by root" in result["refused"][0]["reason"]
    st = os.stat(node["store"] / IMAGE_ID)
    assert (st.st_uid, st.st_nlink) == (0, 1)


def test_a_base_file_swapped_after_the_check_is_never_changed(node):
    """The window between observing _base/<sha1> and fixing its attributes, made deterministic."""
    run_dirs = open_dir(str(node["base"]))
    base_file = node["base"] / sha1(IMAGE_ID)
    os.link(node["store"] / IMAGE_ID, base_file)
    checked = facts_of(os.lstat(base_file))
    replace_with_symlink(base_file, str(node["secret"]))  # the swap
    try:
        with pytest.raises(Refused, match="symlink"):
            act.fix_entry(run_dirs, sha1(IMAGE_ID), checked, WANTED, ("chown", "chmod", "touch"))
        os.unlink(base_file)
        os.link(node["secret"], base_file)  # a hard link of root's file under the checked name
        with pytest.raises(Refused, match="replaced"):
            act.fix_entry(run_dirs, sha1(IMAGE_ID), checked, WANTED, ("chown", "chmod", "touch"))
    finally:
        run_dirs.close()
    st = os.stat(node["secret"])
    assert (st.st_uid, st.st_mode & 0o7777) == (0, 0o600)


def test_a_copy_reads_the_checked_file_even_if_the_name_is_swapped(node):
    """Copy fallback: the source is swapped for a symlink to root's secret after it was opened."""
    store, cache = open_dir(str(node["store"])), open_dir(str(node["base"]))
    source = os.open(node["store"] / IMAGE_ID, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        replace_with_symlink(node["store"] / IMAGE_ID, str(node["secret"]))
        made = act.link_copy(source, cache, sha1(IMAGE_ID), "copy", WANTED, ("chown", "chmod"))
    finally:
        os.close(source)
        store.close()
        cache.close()
    copied = node["base"] / sha1(IMAGE_ID)
    assert copied.read_bytes() == node["content"] and os.stat(copied).st_ino == made.ino
    assert os.listdir(node["base"]) == [sha1(IMAGE_ID)]  # no temp file left


def instance_disk(node, content):
    folder = node["instances"] / "3e1f0000-0000-4000-8000-0000000000aa"
    folder.mkdir(exist_ok=True)
    os.chown(folder, NOVA, NOVA)
    return folder / "disk"


def linked_then_deleted(run_module, node):
    """Link the image, then delete it in Glance: prune's candidate."""
    rc, _result = run_module(imagecache_link.main, args(node))
    assert rc == 0
    os.unlink(node["store"] / IMAGE_ID)
    return args(node, images=[], prune=True)


def test_a_fifo_as_instance_disk_neither_hangs_prune_nor_is_opened(run_module, node):
    prune_args = linked_then_deleted(run_module, node)
    fifo = instance_disk(node, None)
    os.mkfifo(fifo)

    rc, result = run_module(imagecache_link.main, prune_args)

    assert rc == 0 and [entry["base_name"] for entry in result["pruned"]] == [sha1(IMAGE_ID)]
    assert [entry["path"] for entry in result["refused"]] == [str(fifo)] and "FIFO" in result["refused"][0]["reason"]


@pytest.mark.parametrize("offset, length", [(20, 0xFFFFFFFF), (1 << 40, 64)])
def test_a_hostile_disk_header_keeps_every_base_file(run_module, node, offset, length):
    prune_args = linked_then_deleted(run_module, node)
    # a raw disk whose first bytes look like a qcow2 header naming a 4 GiB (or far away) backing file
    instance_disk(node, None).write_bytes(b"QFI\xfb" + struct.pack(">IQI", 3, offset, length) + bytes(4096))

    rc, result = run_module(imagecache_link.main, prune_args)

    assert rc == 0 and result["pruned"] == []
    assert [entry["base_name"] for entry in result["kept"]] == [sha1(IMAGE_ID)]
    assert "not ours to judge" in result["kept"][0]["reason"]
    assert (node["base"] / sha1(IMAGE_ID)).exists()


def test_a_symlink_as_lock_file_is_never_opened(run_module, node):
    locks = node["instances"] / "locks"
    locks.mkdir()
    os.chown(locks, NOVA, NOVA)
    fifo = node["root"] / "fifo"
    os.mkfifo(fifo)
    os.symlink(fifo, locks / ("nova-" + sha1(IMAGE_ID)))
    opened = threading.Event()

    def reader():
        # returns only once someone opens the FIFO for writing (root's module, O_RDWR)
        descriptor = os.open(fifo, os.O_RDONLY)
        opened.set()
        os.close(descriptor)

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    try:
        rc, result = run_module(imagecache_link.main, args(node))
        thread.join(0.5)
        assert not opened.is_set()
    finally:
        os.close(os.open(fifo, os.O_RDWR))  # let the reader go
        thread.join(5)
    assert rc == 0 and result["linked"] == [] and not (node["base"] / sha1(IMAGE_ID)).exists()
    assert result["refused"][0]["id"] == IMAGE_ID and "symlink" in result["refused"][0]["reason"]


@pytest.mark.parametrize("option, value, says", [
    ("mode", "-1", "mode"),
    ("mode", "077777", "outside 0000..0777"),
    ("mode", 4095, "outside 0000..0777"),
    ("mode", "u+rwx", "octal"),
    ("owner", "99999999999", "not a valid id"),
    ("group", "no-such-group-here", "does not exist"),
    ("touch_interval", -5, "touch_interval"),
])
def test_bad_option_values_are_clear_errors_and_change_nothing(run_module, node, option, value, says):
    before = snapshot(node["store"])
    rc, result = run_module(imagecache_link.main, args(node, **{option: value}))

    assert rc == 1 and says in result["msg"] and "Traceback" not in str(result)
    assert snapshot(node["store"]) == before and os.listdir(node["base"]) == []


def test_a_yaml_number_mode_is_octal_as_written(run_module, node):
    rc, _result = run_module(imagecache_link.main, args(node, mode=0o640))  # YAML: mode: 0640

    assert rc == 0 and os.stat(node["base"] / sha1(IMAGE_ID)).st_mode & 0o7777 == 0o640


def test_a_bad_image_entry_is_skipped_and_the_others_are_linked(run_module, node):
    node["images"].append(dict(id="22222222-bbbb-4000-8000-00000000000f", status="active", size={"a": 1}, disk_format="raw"))
    rc, result = run_module(imagecache_link.main, args(node))

    assert rc == 0 and [entry["id"] for entry in result["linked"]] == [IMAGE_ID]
    assert result["skipped_images"][0]["reason"].startswith("invalid image entry")
