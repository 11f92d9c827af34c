# Copyright: osops.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Act stage: the only code that changes the cache, through the descriptors the observe stage verified.

Safety rules carried out here (see docs/imagecache.md):
- a base file is created at its final name by linkat(2) from the open, checked
  Glance file (never by re-resolving a path); link fails if the name exists, so
  an existing base file is never replaced;
- reflink/copy fallbacks read that same open file into a new temp file, fsync it,
  give it owner and mode, then link it to the final name (atomic, no replace);
- owner, mode and times change only through a descriptor whose inode is the one
  that was checked (fchown, fchmod, futimens);
- Nova's own lock on a base file is held while we create or remove it; lock files
  are opened without following symlinks, and only regular ones;
- lock files and the locks directory we create get the instances directory's
  owner, so Nova (not root) can still open them.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os

from .fsdir import OpenDir, Refused, create_file, make_subdir, open_regular, proc_fd_path, stat_at
from .naming import lock_name, temp_name
from .plan import FileFacts, Wanted, facts_of

FICLONE = 0x40049409  # ioctl: share the source's extents (XFS reflink, Btrfs, NFS 4.2)


class NovaLocks:
    """Nova's POSIX locks on base files (oslo.concurrency external locks in ``<instances>/locks``)."""

    def __init__(self, instances: OpenDir, locks: OpenDir | None):
        self.instances = instances
        self.locks = locks  # the caller's (closed by the caller), or one we open on first use
        self.opened_here = False

    def hold(self, base_name: str) -> "HeldLock":
        """Hold the lock on one base file (a context manager); closing the lock file releases it."""
        owner = (self.instances.st.st_uid, self.instances.st.st_gid)
        if self.locks is None:
            self.locks = make_subdir(self.instances, "locks", 0o755, *owner)
            self.opened_here = True
        name = lock_name(base_name)
        try:
            fd = create_file(self.locks, name, os.O_RDWR, 0o644)
            os.fchown(fd, *owner)  # our new file: Nova must be able to open it too
        except FileExistsError:
            fd, _st = open_regular(self.locks, name, os.O_RDWR)
        return HeldLock(fd)

    def close(self) -> None:
        if self.opened_here and self.locks is not None:
            self.locks.close()
            self.locks = None


class HeldLock:
    """An open lock file, locked on entering; closed (and so released) on leaving."""

    def __init__(self, fd: int):
        self.fd = fd

    def __enter__(self) -> "HeldLock":
        try:
            fcntl.lockf(self.fd, fcntl.LOCK_EX)
        except BaseException:
            os.close(self.fd)
            raise
        return self

    def __exit__(self, *_exc) -> None:
        os.close(self.fd)


def apply_attributes(fd: int, wanted: Wanted, fixes: tuple[str, ...]) -> None:
    """Owner, mode and modification time of an open file (the checked inode, whatever its names are now)."""
    if "chown" in fixes and (wanted.uid is not None or wanted.gid is not None):
        os.fchown(fd, -1 if wanted.uid is None else wanted.uid, -1 if wanted.gid is None else wanted.gid)
    if "chmod" in fixes:
        os.fchmod(fd, wanted.mode)
    if "touch" in fixes:
        os.utime(fd, None)


def link_file(fd: int, cache: OpenDir, base_name: str) -> None:
    """Give the open file the base name in the cache; FileExistsError if the name is taken."""
    os.link(proc_fd_path(fd), base_name, dst_dir_fd=cache.fd, follow_symlinks=True)


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


def link_copy(source: int, cache: OpenDir, base_name: str, method: str, wanted: Wanted, fixes: tuple[str, ...]) -> FileFacts:
    """Make the base file a reflink or copy of the open source; return the new file's identity.

    The copy gets its owner and mode before its base name exists, so Nova never
    sees it half done.
    """
    tmp = temp_name(base_name)
    fd = create_file(cache, tmp, os.O_WRONLY, 0o600)
    try:
        if method == "reflink":
            fcntl.ioctl(fd, FICLONE, source)
        else:
            copy_contents(source, fd)
        os.fsync(fd)
        apply_attributes(fd, wanted, fixes)
        link_file(fd, cache, base_name)
        return facts_of(os.fstat(fd))
    finally:
        os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp, dir_fd=cache.fd)


def fix_entry(cache: OpenDir, base_name: str, expected: FileFacts, wanted: Wanted, fixes: tuple[str, ...]) -> None:
    """Change the attributes of an existing base file, if it still is the file that was checked."""
    fd, st = open_regular(cache, base_name)
    try:
        if (st.st_dev, st.st_ino) != (expected.dev, expected.ino):
            raise Refused(cache.join(base_name), "was replaced after it was checked; left alone")
        apply_attributes(fd, wanted, fixes)
    finally:
        os.close(fd)


def remove_entry(cache: OpenDir, base_name: str, expected: FileFacts) -> bool:
    """Remove a base file if it still is the file that was checked; False if it is gone."""
    st = stat_at(cache, base_name)
    if st is None:
        return False
    if (st.st_dev, st.st_ino) != (expected.dev, expected.ino):
        raise Refused(cache.join(base_name), "was replaced after it was checked; left alone")
    os.unlink(base_name, dir_fd=cache.fd)
    return True
