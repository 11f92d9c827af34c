# Copyright: osops.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Directories and files on hostile ground, through verified file descriptors.

The module runs as root in directories the ``nova`` user owns (with a shared
NFS ``instances_path``: the ``nova`` user of every node). A path name there is
only a suggestion: between two system calls its owner may swap any component
for a symlink. So we resolve each directory once, component by component, and
afterwards name files only relative to the directory's descriptor, with
O_NOFOLLOW. A symlink is followed only where root alone could have made it: in
a directory that root owns and that neither group nor others may write (an
operator's ``instances -> /mnt/nfs/instances``). Anywhere else it is refused.
"""

from __future__ import annotations

import errno
import os
import stat
from collections import deque
from dataclasses import dataclass

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
# O_NONBLOCK: opening a FIFO planted under a file's name must not hang us.
FILE_FLAGS = os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
MAX_SYMLINKS = 40  # as the kernel's own limit on one path resolution


class Refused(OSError):
    """Filesystem state we will not work through (a symlink where only a directory or file may be, ...)."""

    def __init__(self, path: str, reason: str):
        super().__init__(errno.EPERM, reason, path)
        self.path = path
        self.reason = reason

    def __str__(self) -> str:
        return "refused: %s: %s" % (self.path, self.reason)


@dataclass(frozen=True)
class OpenDir:
    """A directory held open: its descriptor, the path it was reached by, and the mount it is on."""

    fd: int
    path: str
    st: os.stat_result
    mount: str

    def join(self, name: str) -> str:
        # names here are single components; os.path.join costs more than the link itself
        return self.path + name if self.path.endswith("/") else self.path + "/" + name

    def close(self) -> None:
        os.close(self.fd)


def root_only(st: os.stat_result) -> bool:
    """Can only root change the entries of this directory?"""
    return st.st_uid == 0 and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def kind_of(st: os.stat_result) -> str:
    mode = st.st_mode
    for test, name in ((stat.S_ISLNK, "a symlink"), (stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device")):
        if test(mode):
            return name
    return "a regular file" if stat.S_ISREG(mode) else "of unknown type"


def _names(path: str) -> list[str]:
    return [name for name in path.split("/") if name not in ("", ".")]


def _walk(fd: int, st: os.stat_result, path: str, mount: str, names: list[str], shown: str) -> OpenDir:
    """Open the directory ``names`` lead to from the open directory ``fd`` (which it takes over)."""
    pending = deque(names)
    followed = 0
    try:
        while pending:
            name = pending.popleft()
            here = os.path.normpath(os.path.join(path, name))
            try:
                child = os.open(name, DIR_FLAGS | os.O_NOFOLLOW, dir_fd=fd)
            except OSError as error:
                if error.errno == errno.ENOENT:
                    raise OSError(error.errno, "does not exist", here) from None
                if error.errno not in (errno.ELOOP, errno.ENOTDIR):
                    raise OSError(error.errno, error.strerror, here) from None
                entry = os.stat(name, dir_fd=fd, follow_symlinks=False)
                if stat.S_ISDIR(entry.st_mode):
                    # a symlink when opened, a directory again now: someone is swapping it
                    raise Refused(here, "was swapped between a symlink and a directory while it was opened") from None
                if not stat.S_ISLNK(entry.st_mode):
                    raise OSError(errno.ENOTDIR, "is %s, not a directory" % kind_of(entry), here) from None
                if not root_only(st):
                    raise Refused(here, "a symlink in a directory that uid %d owns or others may write; not followed"
                                  % st.st_uid) from None
                followed += 1
                if followed > MAX_SYMLINKS:
                    raise OSError(errno.ELOOP, "too many levels of symbolic links", shown) from None
                target = os.readlink(name, dir_fd=fd)
                if target.startswith("/"):
                    os.close(fd)
                    fd = -1
                    fd = os.open("/", DIR_FLAGS)
                    st, path, mount = os.fstat(fd), "/", "/"
                pending.extendleft(reversed(_names(target)))
                continue
            child_st = os.fstat(child)
            if name == "..":
                mount = _mount_of(child, child_st, here)
            elif child_st.st_dev != st.st_dev:
                mount = here
            os.close(fd)
            fd, st, path = child, child_st, here
        return OpenDir(fd, shown, st, mount)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        raise


def _mount_of(fd: int, st: os.stat_result, path: str) -> str:
    """The mount point above an open directory (only for messages; reads parents through '..')."""
    mount = path
    current = os.dup(fd)
    try:
        while mount != "/":
            parent = os.open("..", DIR_FLAGS, dir_fd=current)
            os.close(current)
            current = parent
            if os.fstat(current).st_dev != st.st_dev:
                return mount
            mount = os.path.dirname(mount)
        return "/"
    finally:
        os.close(current)


def open_dir(path: str) -> OpenDir:
    """Open a directory by an absolute path, following only symlinks that root alone could have made."""
    path = os.path.abspath(path)
    fd = os.open("/", DIR_FLAGS)
    return _walk(fd, os.fstat(fd), "/", "/", _names(path), path)


def open_subdir(parent: OpenDir, name: str) -> OpenDir:
    """Open a directory in ``parent`` under the same rule."""
    fd = os.dup(parent.fd)
    return _walk(fd, parent.st, parent.path, parent.mount, [name], parent.join(name))


def stat_at(parent: OpenDir, name: str) -> os.stat_result | None:
    """lstat of an entry (never following it), or None when it does not exist."""
    try:
        return os.stat(name, dir_fd=parent.fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def create_file(parent: OpenDir, name: str, flags: int, mode: int) -> int:
    """Create a new file of ours in ``parent`` (O_CREAT|O_EXCL: never through an existing name or symlink).

    FileExistsError when the name is taken, whatever it is.
    """
    try:
        return os.open(name, flags | os.O_CREAT | os.O_EXCL | FILE_FLAGS, mode, dir_fd=parent.fd)
    except FileExistsError:
        raise
    except OSError as error:
        raise OSError(error.errno, error.strerror, parent.join(name)) from None


def open_regular(parent: OpenDir, name: str, flags: int = os.O_RDONLY, look_first: bool = True) -> tuple[int, os.stat_result]:
    """Open an existing regular file in ``parent``; anything else under that name is refused.

    With ``look_first`` the entry is looked at first (a FIFO or device in the
    ``nova`` user's reach is not even opened). It is opened without following a
    symlink and without blocking on a FIFO, and the open file must be a regular
    file (and the entry that was looked at).
    """
    path = parent.join(name)
    seen = None
    if look_first:
        seen = os.stat(name, dir_fd=parent.fd, follow_symlinks=False)
        if not stat.S_ISREG(seen.st_mode):
            raise Refused(path, "is %s, not a regular file" % kind_of(seen))
    try:
        fd = os.open(name, flags | FILE_FLAGS, dir_fd=parent.fd)
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise Refused(path, "is a symlink, not a regular file") from None
        raise OSError(error.errno, error.strerror, path) from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or (seen is not None and (seen.st_ino != st.st_ino or seen.st_dev != st.st_dev)):
        os.close(fd)
        raise Refused(path, "was swapped while it was opened (now %s)" % kind_of(st))
    return fd, st


def make_subdir(parent: OpenDir, name: str, mode: int, uid: int, gid: int) -> OpenDir:
    """Open ``parent/name``, creating it first if missing; a directory we created gets ``uid``/``gid``."""
    try:
        os.mkdir(name, mode, dir_fd=parent.fd)
        created = True
    except FileExistsError:
        created = False
    opened = open_subdir(parent, name)
    # only a directory still root-owned is one we made (or root's): chown never follows anyone else's
    if created and opened.st.st_uid == 0 and (uid, gid) != (0, 0):
        os.fchown(opened.fd, uid, gid)
    return opened


def proc_fd_path(fd: int) -> str:
    """A name of an open file that linkat(AT_SYMLINK_FOLLOW) resolves to the file itself, not a path."""
    return "/proc/self/fd/%d" % fd
