# SPDX-License-Identifier: GPL-3.0-or-later
"""Base file names and header inspection, on real image files made by qemu-img and xorriso."""

from __future__ import annotations

import os
import struct
import subprocess

import pytest

from ansible_collections.osops.lifecycle.plugins.module_utils._imagecache import naming
from ansible_collections.osops.lifecycle.plugins.module_utils._imagecache.inspect import (
    Backing,
    Header,
    classify,
    content_matches,
    inspect_fd,
    qcow2_backing,
    unsafe_reason,
)


def header_of(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        return inspect_fd(fd)
    finally:
        os.close(fd)


def backing_of(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        return qcow2_backing(fd, os.fstat(fd).st_size)
    finally:
        os.close(fd)


def test_cache_name_is_nova_sha1_of_the_id():
    # value from coreutils: printf %s 0b5e8c43-... | sha1sum
    assert naming.cache_name("0b5e8c43-3bb4-4a4e-9a0e-6c1f2e0f7a11") == "6a544da8b363d0ed67ab21cd73f493738df19543"


def test_temp_names_are_never_taken_for_nova_files():
    base = naming.cache_name("img")
    temp = naming.temp_name(base, pid=4242)
    assert not naming.is_base_name(temp)
    assert not temp.startswith(base + "_")  # Nova's resized-copy pattern
    assert naming.own_temp_pid(temp) == 4242
    assert naming.own_temp_pid(base + "_20") is None
    assert naming.own_temp_pid(base) is None


def test_lock_path_is_novas():
    assert naming.nova_lock_path("/var/lib/nova/instances", "ab" * 20) == "/var/lib/nova/instances/locks/nova-" + "ab" * 20


def qemu_img(*args):
    subprocess.run(["qemu-img", *args], check=True, capture_output=True)


@pytest.fixture
def images(tmp_path):
    files = {}
    raw = tmp_path / "raw"
    raw.write_bytes(os.urandom(1 << 20))
    files["raw"] = raw
    qemu_img("create", "-f", "qcow2", str(tmp_path / "qcow2"), "16M")
    files["qcow2"] = tmp_path / "qcow2"
    qemu_img("create", "-f", "qcow2", "-F", "raw", "-b", str(raw), str(tmp_path / "backed"))
    files["backed"] = tmp_path / "backed"
    qemu_img("create", "-f", "qcow2", "-o", "data_file=%s" % (tmp_path / "external.data"), str(tmp_path / "datafile"), "16M")
    files["datafile"] = tmp_path / "datafile"
    for fmt in ("vmdk", "vhdx", "vdi", "vpc", "qed"):
        qemu_img("create", "-f", fmt, str(tmp_path / fmt), "16M")
        files[fmt] = tmp_path / fmt
    content = tmp_path / "isodir"
    content.mkdir()
    (content / "hello.txt").write_text("hello")
    subprocess.run(["xorriso", "-as", "mkisofs", "-quiet", "-o", str(tmp_path / "iso"), str(content)],
                   check=True, capture_output=True)
    files["iso"] = tmp_path / "iso"
    return files


@pytest.mark.parametrize(
    "name, expected",
    [
        ("raw", Header("raw")),
        ("qcow2", Header("qcow2")),
        ("backed", Header("qcow2", backing_file=True)),
        ("datafile", Header("qcow2", data_file=True)),
        ("vmdk", Header("vmdk")),
        ("vhdx", Header("vhdx")),
        ("vdi", Header("vdi")),
        ("vpc", Header("vhd")),
        ("qed", Header("qed")),
        ("iso", Header("iso")),
    ],
)
def test_headers_of_real_files(images, name, expected):
    assert header_of(str(images[name])) == expected


def test_backing_file_of_an_instance_disk(images):
    assert backing_of(str(images["backed"])) == Backing(name=str(images["raw"]))
    assert backing_of(str(images["qcow2"])) == Backing()
    assert backing_of(str(images["raw"])) == Backing()


def hostile_disk(tmp_path, offset, length, total=4096):
    """A raw 'instance disk' whose first bytes look like a qcow2 header naming a backing file."""
    head = b"QFI\xfb" + struct.pack(">IQI", 3, offset, length)
    path = tmp_path / "disk"
    path.write_bytes(head + b"/var/lib/nova/instances/_base/x" + bytes(total - len(head) - 31))
    return str(path)


def test_a_hostile_header_allocates_nothing_it_chooses(tmp_path):
    # a 4 GiB backing name: today's header reader would allocate it
    unjudged = backing_of(hostile_disk(tmp_path, 20, 0xFFFFFFFF))
    assert unjudged.name is None and "more than qcow2's 1023" in unjudged.unjudged
    assert "beyond the end" in backing_of(hostile_disk(tmp_path, 1 << 40, 16)).unjudged
    assert "beyond the end" in backing_of(hostile_disk(tmp_path, 4090, 16)).unjudged
    assert backing_of(hostile_disk(tmp_path, 20, 31)).name == "/var/lib/nova/instances/_base/x"
    assert backing_of(hostile_disk(tmp_path, 20, 1023)).unjudged is None


def test_short_and_empty_files():
    assert classify(b"") == Header("raw")
    # a truncated qcow2 header is treated as unsafe, never as linkable
    assert unsafe_reason(classify(b"QFI\xfb\x00\x00")) is not None


def test_qcow2_v3_external_data_bit_only():
    head = b"QFI\xfb" + struct.pack(">IQI", 3, 0, 0) + bytes(52) + struct.pack(">Q", 1 << 2)
    assert classify(head) == Header("qcow2", data_file=True)
    head = b"QFI\xfb" + struct.pack(">IQI", 3, 0, 0) + bytes(52) + struct.pack(">Q", 1)  # dirty bit only
    assert classify(head) == Header("qcow2")


@pytest.mark.parametrize(
    "disk_format, content, ok",
    [
        ("raw", "raw", True),
        ("ami", "raw", True),
        ("raw", "qcow2", False),  # Glance accepted a qcow2 upload registered as raw
        ("raw", "iso", False),
        ("iso", "iso", True),
        ("iso", "raw", False),
        ("qcow2", "qcow2", True),
    ],
)
def test_content_must_agree_with_disk_format(disk_format, content, ok):
    assert content_matches(disk_format, Header(content)) is ok
