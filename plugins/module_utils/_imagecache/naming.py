# Copyright: osops.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Names in Nova's image cache: the one place that knows them.

Nova names a base file ``sha1(image_id)`` (nova/virt/libvirt/imagecache.py,
``get_cache_fname``) and locks it with ``<instances_path>/locks/nova-<sha1>``.
It also keeps ``<sha1>_<n>`` (resized copies), ``swap_<MB>`` and
``ephemeral_<GB>_<x>`` in ``_base``. Our temporary files are
``<sha1>.osops-tmp-<pid>``: never ``<sha1>_...``, which Nova would take for a
resized base file.
"""

from __future__ import annotations

import hashlib
import os
import re

TEMP_MARKER = ".osops-tmp-"
_SHA1 = re.compile(r"^[0-9a-f]{40}$")
_OWN_TEMP = re.compile(r"^([0-9a-f]{40})" + re.escape(TEMP_MARKER) + r"(\d+)$")


def cache_name(image_id: str) -> str:
    """The base file name Nova uses for an image: sha1 of the id string as stored."""
    return hashlib.sha1(image_id.encode("utf-8")).hexdigest()


def is_base_name(name: str) -> bool:
    """True for a plain ``<sha1>`` entry (an image's base file)."""
    return bool(_SHA1.match(name))


def temp_name(base_name: str, pid: int | None = None) -> str:
    """A temporary name beside a base file that Nova ignores and we can find again."""
    return "%s%s%d" % (base_name, TEMP_MARKER, os.getpid() if pid is None else pid)


def own_temp_pid(name: str) -> int | None:
    """The pid embedded in one of our temp names, or None if ``name`` is not ours."""
    match = _OWN_TEMP.match(name)
    return int(match.group(2)) if match else None


def lock_name(base_name: str) -> str:
    """The name of the file in ``<instances_path>/locks`` that Nova (oslo.concurrency) locks for a base file."""
    return "nova-%s" % base_name


def nova_lock_path(instances_dir: str, base_name: str) -> str:
    """The path of Nova's lock file for a base file (lock_path=$instances_path/locks)."""
    return os.path.join(instances_dir, "locks", lock_name(base_name))
