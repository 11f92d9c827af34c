# SPDX-License-Identifier: GPL-3.0-or-later
"""Directory resolution on hostile ground, image entries and option values."""

from __future__ import annotations

import errno
import os

import pytest

from ansible_collections.osops.lifecycle.plugins.module_utils._imagecache.fsdir import (
    Refused,
    open_dir,
    open_regular,
    open_subdir,
)
from ansible_collections.osops.lifecycle.plugins.module_utils._imagecache.options import parse_id, parse_image_ids, parse_mode
from ansible_collections.osops.lifecycle.plugins.module_utils._imagecache.plan import FileFacts, Image, source_refusal

NOVA = 65534
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="makes files of another user: needs root")


def same_dir(opened, path):
    try:
        return (opened.st.st_dev, opened.st.st_ino) == (os.stat(path).st_dev, os.stat(path).st_ino)
    finally:
        opened.close()


@pytest.fixture
def tree(tmp_path):
    """root-only/ (0755, root's) holding the real instances dir, and nova/ (nova's)."""
    root_only = tmp_path / "root-only"
    real = root_only / "real" / "instances"
    real.mkdir(parents=True)
    nova = tmp_path / "nova"
    nova.mkdir()
    os.chmod(tmp_path, 0o755)
    os.chmod(root_only, 0o755)
    if os.geteuid() == 0:
        os.chown(nova, NOVA, NOVA)
    return tmp_path, root_only, real, nova


def test_symlinks_root_alone_could_make_are_followed(tree):
    tmp_path, root_only, real, _nova = tree
    os.symlink("real/instances", root_only / "relative")
    os.symlink(str(real), root_only / "absolute")
    os.symlink("absolute", root_only / "chained")
    for name in ("relative", "absolute", "chained"):
        assert same_dir(open_dir(str(root_only / name)), real), name
    assert same_dir(open_dir(str(root_only / "real" / ".." / "real" / "instances")), real)


@needs_root
def test_a_symlink_in_a_directory_another_user_owns_is_refused(tree):
    _tmp, root_only, real, nova = tree
    os.symlink(str(real), nova / "instances")
    with pytest.raises(Refused, match="uid %d owns" % NOVA) as raised:
        open_dir(str(nova / "instances" / "_base"))
    assert raised.value.path == str(nova / "instances")
    # also when reached through an operator's link, and below it
    os.symlink(str(nova), root_only / "to-nova")
    with pytest.raises(Refused):
        open_dir(str(root_only / "to-nova" / "instances"))


def test_a_symlink_in_a_directory_others_may_write_is_refused(tree):
    _tmp, root_only, real, _nova = tree
    os.chmod(root_only, 0o777)
    os.symlink(str(real), root_only / "link")
    with pytest.raises(Refused, match="others may write"):
        open_dir(str(root_only / "link"))


def test_loops_missing_and_non_directories_are_clear_errors(tree):
    _tmp, root_only, _real, _nova = tree
    os.symlink("loop-b", root_only / "loop-a")
    os.symlink("loop-a", root_only / "loop-b")
    with pytest.raises(OSError) as raised:
        open_dir(str(root_only / "loop-a"))
    assert raised.value.errno == errno.ELOOP
    with pytest.raises(OSError, match="does not exist"):
        open_dir(str(root_only / "missing" / "x"))
    (root_only / "file").write_text("x")
    with pytest.raises(OSError, match="regular file, not a directory"):
        open_dir(str(root_only / "file"))


def test_regular_files_only_and_never_through_a_symlink(tree):
    _tmp, root_only, real, _nova = tree
    (real / "plain").write_text("x")
    os.symlink("plain", real / "link")
    os.mkfifo(real / "fifo")
    directory = open_dir(str(real))
    try:
        fd, st = open_regular(directory, "plain")
        os.close(fd)
        assert st.st_size == 1
        with pytest.raises(Refused, match="symlink"):
            open_regular(directory, "link")
        for look_first in (True, False):
            with pytest.raises(Refused, match="FIFO"):
                open_regular(directory, "fifo", look_first=look_first)
        with pytest.raises(OSError, match="not a directory|symlink"):
            open_subdir(directory, "plain")
    finally:
        directory.close()


def test_mounts_are_named_for_messages(tree):
    _tmp, _root_only, real, _nova = tree
    directory = open_dir(str(real))
    try:
        assert directory.path == str(real)
        assert directory.mount and os.path.commonpath([directory.mount, str(real)]) == directory.mount
    finally:
        directory.close()


@pytest.mark.parametrize("entry, says", [
    ("not a dict", "not a dict"),
    ({"status": "active"}, "id must be"),
    ({"id": 5}, "id must be"),
    ({"id": "i", "size": {"a": 1}}, "size must be"),
    ({"id": "i", "size": -1}, "size must be"),
    ({"id": "i", "size": True}, "size must be"),
    ({"id": "i", "size": 1 << 70}, "size must be"),
    ({"id": "i", "status": ["active"]}, "status must be a string"),
    ({"id": "i", "os_hash_value": 12}, "os_hash_value must be a string"),
])
def test_image_entries_of_the_wrong_shape_say_what_is_wrong(entry, says):
    with pytest.raises(ValueError, match=says):
        Image.from_glance(entry)


def test_a_good_image_entry():
    image = Image.from_glance({"id": "i", "status": "active", "size": "42", "disk_format": "raw", "name": "ignored"})
    assert image == Image("i", "active", 42, "raw")


@pytest.mark.parametrize("value, mode", [("0644", 0o644), ("644", 0o644), ("0o640", 0o640), (420, 0o644), ("0", 0), ("0777", 0o777)])
def test_modes(value, mode):
    assert parse_mode(value) == mode


@pytest.mark.parametrize("value", ["-1", "077777", "04755", 0o1777, 4095, -1, "u+rw", "", "0x1a4", True, 6.5, None])
def test_modes_refused(value):
    with pytest.raises(ValueError, match="mode"):
        parse_mode(value)


def test_ids():
    assert parse_id(None, "owner") is None
    assert parse_id("0", "owner") == 0 and parse_id("root", "owner") == 0 and parse_id("root", "group") == 0
    assert parse_id("4294967294", "group") == 4294967294
    with pytest.raises(ValueError, match="not a valid id"):
        parse_id("4294967295", "owner")
    with pytest.raises(ValueError, match="does not exist"):
        parse_id("-1", "owner")


def test_root_files_in_a_store_root_does_not_own_are_refused():
    root_file = FileFacts(1, 2, 3, 0.0, 0, 0, 0o600)
    glance_file = root_file._replace(uid=161)
    assert "owned by root" in source_refusal(root_file, 161)
    assert source_refusal(root_file, 0) is None  # a store of root's (the local cloud's)
    assert source_refusal(glance_file, 161) is None
    assert source_refusal(glance_file._replace(uid=107), 161) is None  # chowned to owner by an earlier run


def test_image_ids():
    assert parse_image_ids([]) is None  # no scope: the whole list
    assert parse_image_ids(["a", "b", "a"]) == frozenset({"a", "b"})
    for bad in ("", ".", "..", "../x", "a/b", "a\0b"):
        with pytest.raises(ValueError, match="image_ids"):
            parse_image_ids(["good", bad])
