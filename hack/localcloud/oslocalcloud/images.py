"""Small but real image files for Glance (Glance inspects uploaded data and
refuses a qcow2 or iso whose header does not match its disk_format)."""
import os
import struct
import subprocess
import tempfile

_CACHE = {}


def raw(size=1024 * 1024):
    return b"\0" * size


def qcow2(virtual_size="64M"):
    """A real, empty qcow2 (v3) made by qemu-img, about 200 KiB."""
    if ("qcow2", virtual_size) not in _CACHE:
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "disk.qcow2")
            subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", path,
                            virtual_size], check=True)
            with open(path, "rb") as f:
                _CACHE[("qcow2", virtual_size)] = f.read()
    return _CACHE[("qcow2", virtual_size)]


def iso(label=b"OSOPS_LOCALCLOUD"):
    """A minimal ISO 9660 image: 16 empty system sectors, a primary volume
    descriptor and the set terminator (36 KiB)."""
    sector = 2048
    blocks = 18
    pvd = bytearray(sector)
    pvd[0] = 1
    pvd[1:6] = b"CD001"
    pvd[6] = 1
    pvd[40:72] = label.ljust(32, b" ")[:32]
    pvd[80:88] = struct.pack("<L", blocks) + struct.pack(">L", blocks)
    pvd[120:124] = struct.pack("<H", 1) + struct.pack(">H", 1)
    pvd[124:128] = struct.pack("<H", 1) + struct.pack(">H", 1)
    pvd[128:132] = struct.pack("<H", sector) + struct.pack(">H", sector)
    pvd[881] = 1
    term = bytearray(sector)
    term[0] = 255
    term[1:6] = b"CD001"
    term[6] = 1
    return bytes(16 * sector) + bytes(pvd) + bytes(term)
