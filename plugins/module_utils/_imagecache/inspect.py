# Copyright: osops.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What an image file really holds, from its header magic.

Glance records the ``disk_format`` its uploader claimed; Nova's download path
checks the content, a hard link does not. So we read the content ourselves and
refuse a file that disagrees, and any qcow2 that names a backing file or an
external data file (both would make Nova read files outside the image).
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass

# Bytes read from the start of a file: every header we look at fits.
HEAD_SIZE = 512 + 8
# ISO 9660 volume descriptors: "CD001" at 0x8001, 0x8801 or 0x9001.
ISO_AREA_OFFSET = 0x8000
ISO_AREA_SIZE = 0x1006
_ISO_MAGIC_AT = (0x8001, 0x8801, 0x9001)

QCOW2_MAGIC = b"QFI\xfb"
# qcow2 spec: a backing file name has at most 1023 bytes.
QCOW2_MAX_BACKING_NAME = 1023
# qcow2 v3 incompatible feature bit: image data lives in an external file.
QCOW2_EXTERNAL_DATA_FILE = 1 << 2

# Leading magic -> content format, named as Glance names disk formats.
_MAGIC = (
    (0, b"QFI\xfb", "qcow2"),
    (0, b"QED\x00", "qed"),
    (0, b"KDMV", "vmdk"),
    (0, b"# Disk DescriptorFile", "vmdk"),
    (0, b"vhdxfile", "vhdx"),
    (0, b"conectix", "vhd"),
    (0x40, b"\x7f\x10\xda\xbe", "vdi"),
    (0, b"LUKS\xba\xbe", "luks"),
)

# Glance disk formats whose content is plain bytes (kernels, ramdisks, AMIs).
RAW_DISK_FORMATS = frozenset(("raw", "ami", "ari", "aki"))


@dataclass(frozen=True)
class Header:
    """The content format of a file and the qcow2 features that make it unsafe."""

    format: str
    backing_file: bool = False
    data_file: bool = False


RAW = Header("raw")


def classify(head: bytes, iso_area: bytes = b"") -> Header:
    """Content format from the first bytes of a file and the bytes at ISO_AREA_OFFSET."""
    if head.startswith(QCOW2_MAGIC):
        return _qcow2(head)
    for offset, magic, name in _MAGIC:
        if head.startswith(magic, offset):
            return Header(name)
    for at in _ISO_MAGIC_AT:
        start = at - ISO_AREA_OFFSET
        if iso_area.startswith(b"CD001", start):
            return Header("iso")
    return RAW


def _qcow2(head: bytes) -> Header:
    if len(head) < 20:
        # too short to say: treat as unsafe rather than guess
        return Header("qcow2", backing_file=True)
    version, backing_offset = struct.unpack(">IQ", head[4:16])
    data_file = False
    if version >= 3 and len(head) >= 80:
        (incompatible,) = struct.unpack(">Q", head[72:80])
        data_file = bool(incompatible & QCOW2_EXTERNAL_DATA_FILE)
    return Header("qcow2", backing_file=backing_offset != 0, data_file=data_file)


def inspect_fd(fd: int, size: int | None = None) -> Header:
    """Read the header of an open file (positional reads: the offset is untouched).

    ``size``, when known, spares the read of the ISO area in files too short for it.
    """
    head = os.pread(fd, HEAD_SIZE, 0)
    if size is not None and size <= ISO_AREA_OFFSET:
        return classify(head)
    return classify(head, os.pread(fd, ISO_AREA_SIZE, ISO_AREA_OFFSET))


@dataclass(frozen=True)
class Backing:
    """What an instance disk's header says about its base file."""

    name: str | None = None  # the backing file it names, None for none
    unjudged: str | None = None  # why we cannot tell which base file it uses (then every candidate stays)


def qcow2_backing(fd: int, size: int) -> Backing:
    """The backing file a qcow2 file of ``size`` bytes names; every header field bounded.

    The header is the ``nova`` user's to write: a name longer than qcow2 allows or
    outside the file is not read (no allocation a header can choose), and is not
    ours to judge either.
    """
    head = os.pread(fd, 20, 0)
    if len(head) < 20 or not head.startswith(QCOW2_MAGIC):
        return Backing()
    offset, length = struct.unpack(">QI", head[8:20])
    if not offset or not length:
        return Backing()
    if length > QCOW2_MAX_BACKING_NAME:
        return Backing(unjudged="its backing file name has %d bytes, more than qcow2's %d" % (length, QCOW2_MAX_BACKING_NAME))
    if offset > size or length > size - offset:
        return Backing(unjudged="its backing file name lies beyond the end of the file")
    name = os.pread(fd, length, offset)
    if len(name) != length:
        return Backing(unjudged="its backing file name could not be read whole")
    return Backing(name=name.decode("utf-8", "replace"))


def content_matches(disk_format: str, header: Header) -> bool:
    """Does the content agree with what Glance says the image is?"""
    expected = "raw" if disk_format in RAW_DISK_FORMATS else disk_format
    return header.format == expected


def unsafe_reason(header: Header) -> str | None:
    """Why a file must never become a base file whatever its format, or None."""
    if header.backing_file:
        return "qcow2 with a backing file"
    if header.data_file:
        return "qcow2 with an external data file"
    return None
