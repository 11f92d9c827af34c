# Copyright: osops.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Observe stage: what the store, the cache and the instance disks hold, seen through verified descriptors.

Nothing here changes a file. Every observation is made relative to a directory
descriptor from fsdir.py, never by path, and a file that is to become a base
file stays open: the act stage links and changes that same open file.
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass, field

from .fsdir import OpenDir, Refused, kind_of, make_subdir, open_dir, open_regular, open_subdir, stat_at
from .inspect import Backing, Header, inspect_fd, qcow2_backing
from .plan import FileFacts, Image, facts_of

# Names in the instances directory that are not instance directories.
NOT_INSTANCES = frozenset(("_base", "locks", "snapshots", "compute_nodes"))


@dataclass
class CacheDirs:
    """The directories of one run, each opened once."""

    source: OpenDir  # Glance's store
    cache: OpenDir  # _base
    instances: OpenDir
    locks: OpenDir | None  # None until it exists

    @classmethod
    def open(cls, source_dir: str, cache_dir: str, instances_dir: str | None, create_cache: bool = False) -> "CacheDirs":
        """Open the directories; ``create_cache`` makes a missing ``_base`` in the instances directory
        (a compute that has not booted anything yet), owned like the instances directory, as Nova would."""
        opened: list[OpenDir] = []
        try:
            cache_path = os.path.abspath(cache_dir)
            instances_path = os.path.abspath(instances_dir) if instances_dir else os.path.dirname(cache_path)
            opened.append(open_dir(instances_path))
            instances = opened[-1]
            if os.path.dirname(cache_path) == instances_path:
                # the usual layout: _base is resolved once, from the instances directory
                name = os.path.basename(cache_path)
                if create_cache:
                    opened.append(make_subdir(instances, name, 0o755, instances.st.st_uid, instances.st.st_gid))
                else:
                    opened.append(open_subdir(instances, name))
            else:
                opened.append(open_dir(cache_path))
            cache = opened[-1]
            opened.append(open_dir(source_dir))
            source = opened[-1]
            locks = None
            if stat_at(instances, "locks") is not None:
                opened.append(open_subdir(instances, "locks"))
                locks = opened[-1]
            return cls(source, cache, instances, locks)
        except BaseException:
            for directory in opened:
                directory.close()
            raise

    def close(self) -> None:
        for directory in (self.source, self.cache, self.instances, self.locks):
            if directory is not None:
                directory.close()

    def real_cache_path(self) -> str:
        """The cache directory's path as the kernel resolved it (names the default state file)."""
        return os.readlink("/proc/self/fd/%d" % self.cache.fd)


def entry_facts(dirs: CacheDirs, base_name: str) -> FileFacts | None:
    """What is in _base under a base name now (a symlink is seen as itself, never followed)."""
    st = stat_at(dirs.cache, base_name)
    return None if st is None else facts_of(st)


def source_facts(dirs: CacheDirs, image_id: str) -> FileFacts | None:
    """The Glance file of an image as stat sees it, or None if missing; anything but a regular file is refused."""
    st = stat_at(dirs.source, image_id)
    if st is None:
        return None
    if not stat.S_ISREG(st.st_mode):
        raise Refused(dirs.source.join(image_id), "the Glance file is %s, not a regular file" % kind_of(st))
    return facts_of(st)


@dataclass
class SourceFile:
    """A Glance file held open from the check to the link: the act stage links this very file."""

    fd: int
    facts: FileFacts
    header: Header | None = None

    def close(self) -> None:
        os.close(self.fd)


def open_source(dirs: CacheDirs, image: Image) -> SourceFile | None:
    """Open an image's Glance file once (no symlink, regular only); its header when the size is Glance's."""
    try:
        # the hot path of a first run: open, then check the open file (a FIFO opens without blocking)
        fd, st = open_regular(dirs.source, image.id, look_first=False)
    except FileNotFoundError:
        return None
    except Refused as refused:
        raise Refused(refused.path, "the Glance file " + refused.reason) from None
    source = SourceFile(fd, facts_of(st))
    if source.facts.size == image.size:
        try:
            source.header = inspect_fd(fd, source.facts.size)
        except BaseException:
            source.close()
            raise
    return source


def file_hash(fd: int, algo: str) -> str:
    digest = hashlib.new(algo)
    offset = 0
    while True:
        chunk = os.pread(fd, 1 << 20, offset)
        if not chunk:
            return digest.hexdigest()
        digest.update(chunk)
        offset += len(chunk)


def hash_matches(image: Image, source: SourceFile, known_hashes: dict[str, dict]) -> bool:
    """Does the open file have Glance's hash? Verified hashes are remembered in ``known_hashes`` by inode and size."""
    algo = image.os_hash_algo or ""
    key = {"dev": source.facts.dev, "ino": source.facts.ino, "size": source.facts.size, "algo": algo}
    known = known_hashes.get(image.id)
    # Glance never rewrites a stored file: same inode and size, same content.
    if isinstance(known, dict) and {k: known.get(k) for k in key} == key:
        return known.get("value") == image.os_hash_value
    try:
        value = file_hash(source.fd, algo)
    except ValueError:
        return False  # an algorithm hashlib does not know
    known_hashes[image.id] = dict(key, value=value)
    return value == image.os_hash_value


def disk_version(st: os.stat_result) -> tuple[int, int, int, int, int]:
    """What identifies one version of a disk: a rewrite changes its size or times."""
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


@dataclass(frozen=True)
class DiskSeen:
    """One instance disk as read: the stat that identifies this version of it, and what its header names."""

    version: tuple[int, int, int, int, int]  # dev, ino, size, mtime_ns, ctime_ns
    backing: Backing


@dataclass
class InstanceDisks:
    """The base files instance disks use: each disk read once per run, re-read only if it changed.

    Instance directories and disks are the ``nova`` user's: a disk that is not a
    regular file is reported and never opened; a header is read with every field
    bounded (inspect.qcow2_backing).
    """

    instances: OpenDir
    seen: dict[str, DiskSeen] = field(default_factory=dict)
    refused: dict[str, str] = field(default_factory=dict)  # path -> why it was not read

    def scan(self) -> None:
        """Look at every disk; re-read those that are new or changed since the last scan."""
        current: dict[str, DiskSeen] = {}
        for instance in sorted(os.listdir(self.instances.fd)):
            if instance in NOT_INSTANCES:
                continue
            entry = stat_at(self.instances, instance)
            if entry is None or not (stat.S_ISDIR(entry.st_mode) or stat.S_ISLNK(entry.st_mode)):
                continue
            try:
                folder = open_subdir(self.instances, instance)
            except Refused as refused:
                self.refused[refused.path] = refused.reason
                continue
            except OSError:
                continue  # gone or not a directory after all
            try:
                self._scan_instance(folder, current)
            finally:
                folder.close()
        self.seen = current

    def _scan_instance(self, folder: OpenDir, current: dict[str, DiskSeen]) -> None:
        try:
            names = os.listdir(folder.fd)
        except OSError:
            return
        for name in sorted(names):
            if not name.startswith("disk"):
                continue
            path = folder.join(name)
            st = stat_at(folder, name)
            if st is None:
                continue
            if not stat.S_ISREG(st.st_mode):
                self.refused[path] = "an instance disk that is %s, not a regular file: not read" % kind_of(st)
                continue
            version = disk_version(st)
            known = self.seen.get(path)
            if known is not None and known.version == version:
                current[path] = known
                continue
            try:
                fd, st = open_regular(folder, name)
            except Refused as refused:
                self.refused[path] = "an instance disk that " + refused.reason
                continue
            except OSError:
                continue
            try:
                backing = qcow2_backing(fd, st.st_size)
            except OSError as error:
                backing = Backing(unjudged="its header could not be read (%s)" % (error.strerror or error))
            finally:
                os.close(fd)
            current[path] = DiskSeen(disk_version(st), backing)

    @property
    def in_use(self) -> set[str]:
        """Base names that instance disks name as backing file."""
        return {os.path.basename(disk.backing.name) for disk in self.seen.values() if disk.backing.name}

    @property
    def unjudged(self) -> tuple[str, ...]:
        """Disks whose header does not tell which base file they use, with why."""
        return tuple("%s (%s)" % (path, disk.backing.unjudged) for path, disk in sorted(self.seen.items())
                     if disk.backing.unjudged)
