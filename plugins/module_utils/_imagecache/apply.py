# Copyright: osops.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Filesystem work of the image cache: scan, then carry out plan.py's decisions.

Safety rules carried out here (see docs/imagecache.md):
- a base file is created at its final name by link(2), which fails if the name
  exists: an existing base file is never replaced;
- reflink/copy fallbacks write a temp file, fsync it, then link it to the final
  name (atomic, no replace) and remove the temp;
- Nova's own lock on a base file is held while we create or remove it;
- lock files and the locks directory we create get the instances directory's
  owner, so Nova (not root) can still open them;
- one image's failure is recorded and the others go on.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import stat
import time
from dataclasses import dataclass, field

from .inspect import Header, content_matches, inspect_fd, qcow2_backing_file, unsafe_reason
from .naming import cache_name, nova_lock_path, own_temp_pid, temp_name
from .plan import ALREADY, LINK, SKIP, FileFacts, Image, Recorded, Wanted, decide, plan_prune, preselect

FICLONE = 0x40049409  # ioctl: share the source's extents (XFS reflink, Btrfs, NFS 4.2)
STATE_VERSION = 1
STALE_TEMP_SECONDS = 3600
# Names in the instances directory that are not instance directories.
NOT_INSTANCES = frozenset(("_base", "locks", "snapshots", "compute_nodes"))


def facts_of(st: os.stat_result) -> FileFacts:
    return FileFacts(st.st_dev, st.st_ino, st.st_size, st.st_mtime, st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode))


def stat_entry(path: str) -> FileFacts | None:
    try:
        return facts_of(os.lstat(path))
    except FileNotFoundError:
        return None


def describe_os_error(error: OSError) -> str:
    return "%s (errno %s)" % (error.strerror or error, errno.errorcode.get(error.errno or 0, error.errno))


def mount_point(path: str) -> str:
    """The mount a path lives on (where st_dev changes walking up)."""
    path = os.path.realpath(path)
    dev = os.stat(path).st_dev
    while path != "/":
        parent = os.path.dirname(path)
        if os.stat(parent).st_dev != dev:
            return path
        path = parent
    return "/"


@dataclass
class Options:
    source_dir: str
    cache_dir: str
    instances_dir: str
    state_file: str
    wanted: Wanted
    fallback: str  # fail | reflink | copy
    prune: bool
    check_mode: bool


@dataclass
class Report:
    linked: list[dict] = field(default_factory=list)
    already_linked: list[str] = field(default_factory=list)
    updated: list[dict] = field(default_factory=list)
    skipped_images: list[dict] = field(default_factory=list)
    pruned: list[dict] = field(default_factory=list)
    kept: list[dict] = field(default_factory=list)
    errors: list[dict] = field(default_factory=list)
    temp_files_removed: list[str] = field(default_factory=list)
    diff_before: list[str] = field(default_factory=list)
    diff_after: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.linked or self.updated or self.pruned or self.temp_files_removed)

    def result(self) -> dict:
        counts = {
            name: len(getattr(self, name))
            for name in ("linked", "already_linked", "updated", "skipped_images", "pruned", "kept", "errors")
        }
        return dict(
            changed=self.changed, linked=self.linked, already_linked=self.already_linked, updated=self.updated,
            skipped_images=self.skipped_images, pruned=self.pruned, kept=self.kept, errors=self.errors,
            temp_files_removed=self.temp_files_removed, counts=counts,
        )


class State:
    """What we created in one cache (base name -> image and inode) and verified hashes.

    Kept outside ``_base`` so Nova never sees it; written atomically.
    """

    def __init__(self, path: str):
        self.path = path
        self.links: dict[str, Recorded] = {}
        self.hashes: dict[str, dict] = {}
        self.dirty = False

    def load(self) -> "State":
        try:
            with open(self.path) as handle:
                data = json.load(handle)
        except FileNotFoundError:
            return self
        except (OSError, ValueError):
            # An unreadable state only costs re-hashing and forgetting copies
            # we made; it must never stop the run.
            return self
        if data.get("version") != STATE_VERSION:
            return self
        self.links = {name: Recorded(**rec) for name, rec in data.get("links", {}).items()}
        self.hashes = data.get("hashes", {})
        return self

    def save(self) -> None:
        if not self.dirty:
            return
        os.makedirs(os.path.dirname(self.path), mode=0o755, exist_ok=True)
        tmp = "%s.tmp-%d" % (self.path, os.getpid())
        with open(tmp, "w") as handle:
            json.dump({
                "version": STATE_VERSION,
                "links": {name: rec.__dict__ for name, rec in sorted(self.links.items())},
                "hashes": self.hashes,
            }, handle, indent=1, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.path)
        self.dirty = False


@contextlib.contextmanager
def nova_lock(instances_dir: str, base_name: str, owner_like: os.stat_result):
    """Hold Nova's POSIX lock on a base file (oslo.concurrency external lock).

    A lock file we create gets the instances directory's owner: Nova, not
    root, must be able to open it afterwards. Closing the file releases the lock.
    """
    path = nova_lock_path(instances_dir, base_name)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        os.fchown(fd, owner_like.st_uid, owner_like.st_gid)
    except FileExistsError:
        fd = os.open(path, os.O_RDWR)
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def ensure_lock_dir(instances_dir: str, owner_like: os.stat_result) -> None:
    lock_dir = os.path.join(instances_dir, "locks")
    if not os.path.isdir(lock_dir):
        os.makedirs(lock_dir, mode=0o755, exist_ok=True)
        os.chown(lock_dir, owner_like.st_uid, owner_like.st_gid)


def file_hash(fd: int, algo: str) -> str:
    digest = hashlib.new(algo)
    offset = 0
    while True:
        chunk = os.pread(fd, 1 << 20, offset)
        if not chunk:
            return digest.hexdigest()
        digest.update(chunk)
        offset += len(chunk)


def copy_contents(source: int, target: int) -> None:
    """Copy a whole file: in-kernel where it can, else read and write."""
    remaining = os.fstat(source).st_size
    try:
        while remaining > 0:
            copied = os.copy_file_range(source, target, remaining)
            if copied == 0:
                break
            remaining -= copied
        return
    except OSError as error:
        # kernels since 5.19 refuse copy_file_range across filesystems (EXDEV)
        if error.errno not in (errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL) or remaining != os.fstat(source).st_size:
            raise
    offset = 0
    while True:
        chunk = os.pread(source, 1 << 20, offset)
        if not chunk:
            return
        view = memoryview(chunk)
        while view:
            view = view[os.write(target, view):]
        offset += len(chunk)


def clone_or_copy(src: str, dst_dir: str, base_name: str, method: str) -> str:
    """Write a reflink or copy of src to a temp file beside the base file; return its path."""
    tmp = os.path.join(dst_dir, temp_name(base_name))
    with open(src, "rb") as source, open(tmp, "xb") as target:
        try:
            if method == "reflink":
                fcntl.ioctl(target.fileno(), FICLONE, source.fileno())
            else:
                copy_contents(source.fileno(), target.fileno())
            os.fsync(target.fileno())
        except BaseException:
            os.unlink(tmp)
            raise
    return tmp


class ImageCache:
    """One run over one cache directory."""

    def __init__(self, options: Options):
        self.o = options
        self.report = Report()
        self.state = State(options.state_file).load()
        self.now = time.time()
        self.instances_stat = os.stat(options.instances_dir) if os.path.isdir(options.instances_dir) else None
        self.lock_dir_ready = False

    # --- scan + decide -----------------------------------------------------

    def run(self, images: list[Image]) -> Report:
        for path in (self.o.source_dir, self.o.cache_dir):
            if not os.path.isdir(path):
                raise FileNotFoundError(errno.ENOENT, "directory does not exist", path)
        self.remove_stale_temps()
        for image in images:
            try:
                self.handle(image)
            except OSError as error:
                self.error(image.id, getattr(error, "filename", None) or self.o.cache_dir, error)
        if self.o.prune:
            self.prune(images)
        if not self.o.check_mode:
            self.state.save()
        return self.report

    def handle(self, image: Image) -> None:
        base_name = cache_name(image.id)
        reason = preselect(image, self.o.wanted)
        if reason:
            self.report.skipped_images.append({"id": image.id, "reason": reason})
            return
        src = self.o.source_dir + "/" + image.id
        dst = self.o.cache_dir + "/" + base_name
        entry = stat_entry(dst)
        if entry is not None:
            self.handle_existing(image, base_name, src, dst, entry)
        else:
            self.handle_new(image, base_name, src, dst)

    def handle_existing(self, image: Image, base_name: str, src: str, dst: str, entry: FileFacts) -> None:
        """The common case on every run after the first: is the entry ours, are its attributes right?"""
        # stat is enough to compare inodes; sizes of new links are checked on an open file
        try:
            source = facts_of(os.stat(src))
        except FileNotFoundError:
            source = None
        recorded = self.state.links.get(base_name)
        recorded_copy = bool(recorded and recorded.image_id == image.id
                             and (recorded.dev, recorded.ino) == (entry.dev, entry.ino))
        decision = decide(image, base_name, self.o.wanted, self.now, source, entry, recorded_copy)
        if decision.action == ALREADY and not recorded_copy:
            # a link made by an earlier run or an older tool: remember it, so
            # prune can find it once Glance has deleted the image's file
            self.remember(base_name, image.id, entry.dev, entry.ino)
        self.record(decision, src, dst)

    def handle_new(self, image: Image, base_name: str, src: str, dst: str) -> None:
        try:
            fd = os.open(src, os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError:
            self.record(decide(image, base_name, self.o.wanted, self.now, None, None), src, dst)
            return
        try:
            # open + fstat: on NFS this refreshes the attributes (close-to-open)
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                self.report.skipped_images.append({"id": image.id, "reason": "Glance path is not a regular file"})
                return
            source = facts_of(st)
            header = hash_ok = None
            if source.size == image.size:
                header = inspect_fd(fd, source.size)
                # hashing is the expensive part: only for files the header allows
                if self.o.wanted.verify_hash and content_matches(image.disk_format or "", header) \
                        and not unsafe_reason(header):
                    hash_ok = self.hash_matches(image, source, fd)
        finally:
            os.close(fd)
        self.record(decide(image, base_name, self.o.wanted, self.now, source, None, False, header, hash_ok), src, dst)

    def hash_matches(self, image: Image, source: FileFacts, fd: int) -> bool:
        algo = image.os_hash_algo or ""
        key = {"dev": source.dev, "ino": source.ino, "size": source.size, "algo": algo}
        known = self.state.hashes.get(image.id)
        # Glance never rewrites a stored file: same inode and size, same content.
        if known and {k: known.get(k) for k in key} == key:
            return known.get("value") == image.os_hash_value
        try:
            value = file_hash(fd, algo)
        except ValueError:
            return False  # an algorithm hashlib does not know
        self.state.hashes[image.id] = dict(key, value=value)
        self.state.dirty = True
        return value == image.os_hash_value

    # --- act ---------------------------------------------------------------

    def record(self, decision, src: str, dst: str) -> None:
        if decision.action == SKIP:
            self.report.skipped_images.append({"id": decision.image_id, "reason": decision.reason})
        elif decision.action == ALREADY:
            self.report.already_linked.append(decision.image_id)
            if decision.fixes:
                self.fix_attributes(decision.image_id, dst, decision.fixes)
        elif decision.action == LINK:
            self.link(decision, src, dst)

    def lock(self, base_name: str):
        owner_like = self.instances_stat or os.stat(self.o.cache_dir)
        if not self.lock_dir_ready:
            ensure_lock_dir(self.o.instances_dir, owner_like)
            self.lock_dir_ready = True
        return nova_lock(self.o.instances_dir, base_name, owner_like)

    def link(self, decision, src: str, dst: str) -> None:
        method = "hard link"
        if not self.o.check_mode:
            with self.lock(decision.base_name):
                method = self.make_entry(src, dst, decision)
                if method is None:
                    return
                entry = os.lstat(dst)
                self.remember(decision.base_name, decision.image_id, entry.st_dev, entry.st_ino)
                self.apply_attributes(dst, decision.fixes)
        elif self.o.fallback != "fail" and os.stat(src).st_dev != os.stat(self.o.cache_dir).st_dev:
            method = self.o.fallback
        self.report.diff_before.append("%s  absent" % decision.base_name)
        self.report.diff_after.append("%s  %s of %s" % (decision.base_name, method, src))
        self.report.linked.append({"id": decision.image_id, "base_name": decision.base_name, "path": dst, "method": method})

    def make_entry(self, src: str, dst: str, decision) -> str | None:
        """Create dst from src; return the method used, or None if it was not created."""
        try:
            os.link(src, dst)
            return "hard link"
        except FileExistsError:
            # appeared since the scan (Nova's download?): never replaced
            self.report.skipped_images.append({"id": decision.image_id, "reason": "a base file appeared meanwhile; left alone"})
            return None
        except OSError as error:
            if error.errno not in (errno.EXDEV, errno.EPERM) or self.o.fallback == "fail":
                if error.errno == errno.EXDEV:
                    error = OSError(error.errno, "hard link impossible across mounts: %s is on %s, %s on %s (fallback=fail)"
                                    % (src, mount_point(src), dst, mount_point(os.path.dirname(dst))), dst)
                raise error
        tmp = clone_or_copy(src, self.o.cache_dir, decision.base_name, self.o.fallback)
        try:
            os.link(tmp, dst)
        except FileExistsError:
            self.report.skipped_images.append({"id": decision.image_id, "reason": "a base file appeared meanwhile; left alone"})
            return None
        finally:
            os.unlink(tmp)
        return self.o.fallback

    def remember(self, base_name: str, image_id: str, dev: int, ino: int) -> None:
        record = Recorded(image_id, dev, ino)
        if self.state.links.get(base_name) != record:
            self.state.links[base_name] = record
            self.state.dirty = True

    def apply_attributes(self, path: str, fixes: tuple[str, ...]) -> None:
        wanted = self.o.wanted
        if "chown" in fixes and (wanted.uid is not None or wanted.gid is not None):
            os.chown(path, -1 if wanted.uid is None else wanted.uid, -1 if wanted.gid is None else wanted.gid)
        if "chmod" in fixes:
            os.chmod(path, wanted.mode)
        if "touch" in fixes:
            os.utime(path, None)

    def fix_attributes(self, image_id: str, dst: str, fixes: tuple[str, ...]) -> None:
        if not self.o.check_mode:
            self.apply_attributes(dst, fixes)
        self.report.updated.append({"id": image_id, "path": dst, "changes": list(fixes)})

    def error(self, image_id: str | None, path: str, error: OSError) -> None:
        self.report.errors.append({"id": image_id, "path": path, "error": describe_os_error(error)})

    # --- prune ---------------------------------------------------------------

    def prune(self, images: list[Image]) -> None:
        active = {image.id for image in images if image.status == "active"}
        entries: dict[str, FileFacts] = {}
        wanted_names = set(self.state.links)
        inactive_sources: dict[str, FileFacts] = {}
        for image in images:
            if image.id in active:
                continue
            base_name = cache_name(image.id)
            source = stat_entry(os.path.join(self.o.source_dir, image.id))
            if source is not None:
                inactive_sources[base_name] = source
                wanted_names.add(base_name)
        for base_name in wanted_names:
            entry = stat_entry(os.path.join(self.o.cache_dir, base_name))
            if entry is not None:
                entries[base_name] = entry
        plan = plan_prune(self.state.links, inactive_sources, active, entries, self.backing_files_in_use())
        ids = {cache_name(image.id): image.id for image in images}
        for base_name in plan.forget:
            self.state.links.pop(base_name, None)
            self.state.dirty = True
        for base_name, reason in sorted(plan.kept.items()):
            self.report.kept.append({"base_name": base_name, "id": self.image_id_of(base_name, ids), "reason": reason})
        for base_name in plan.prune:
            path = os.path.join(self.o.cache_dir, base_name)
            image_id = self.image_id_of(base_name, ids)
            try:
                if not self.o.check_mode:
                    with self.lock(base_name):
                        # re-check under the lock: an instance may have started on it
                        if base_name in self.backing_files_in_use(only=base_name):
                            self.report.kept.append({"base_name": base_name, "id": image_id,
                                                     "reason": "backing file of an instance disk"})
                            continue
                        os.unlink(path)
                    self.state.links.pop(base_name, None)
                    self.state.dirty = True
                self.report.pruned.append({"base_name": base_name, "id": image_id, "path": path})
                self.report.diff_before.append("%s  present" % base_name)
                self.report.diff_after.append("%s  absent (pruned)" % base_name)
            except OSError as error:
                self.error(image_id, path, error)

    def image_id_of(self, base_name: str, ids: dict[str, str]) -> str | None:
        record = self.state.links.get(base_name)
        return record.image_id if record else ids.get(base_name)

    def backing_files_in_use(self, only: str | None = None) -> set[str]:
        """Base names that instance disks under instances_dir name as backing file."""
        used: set[str] = set()
        try:
            instances = os.listdir(self.o.instances_dir)
        except FileNotFoundError:
            return used
        for instance in instances:
            folder = os.path.join(self.o.instances_dir, instance)
            if instance in NOT_INSTANCES or not os.path.isdir(folder):
                continue
            try:
                names = os.listdir(folder)
            except OSError:
                continue
            for name in names:
                if not name.startswith("disk"):
                    continue
                try:
                    fd = os.open(os.path.join(folder, name), os.O_RDONLY | os.O_NOFOLLOW)
                except OSError:
                    continue
                try:
                    backing = qcow2_backing_file(fd)
                except OSError:
                    backing = None
                finally:
                    os.close(fd)
                if backing:
                    base = os.path.basename(backing)
                    if only is None or base == only:
                        used.add(base)
        return used

    # --- housekeeping ----------------------------------------------------------

    def remove_stale_temps(self) -> None:
        """Remove temp files of ours left by a crashed run (process gone or file old)."""
        for name in os.listdir(self.o.cache_dir):
            pid = own_temp_pid(name)
            if pid is None:
                continue
            path = os.path.join(self.o.cache_dir, name)
            try:
                alive = os.path.exists("/proc/%d" % pid) and pid != os.getpid()
                if alive and self.now - os.lstat(path).st_mtime < STALE_TEMP_SECONDS:
                    continue
                if not self.o.check_mode:
                    os.unlink(path)
                self.report.temp_files_removed.append(path)
            except FileNotFoundError:
                continue
            except OSError as error:
                self.error(None, path, error)


def header_of(path: str) -> Header:
    """Convenience for tests and tools: the header of a file by path."""
    fd = os.open(path, os.O_RDONLY)
    try:
        return inspect_fd(fd)
    finally:
        os.close(fd)
