# SPDX-License-Identifier: GPL-3.0-or-later
"""A hostile `nova` user against imagecache_link (issue 13), on real loop-mounted filesystems.

  python3 hostile_node.py --work DIR [--rows row,row] [--timeout SECONDS] [--keep]

The module runs as root inside directories the `nova` user owns (instances, _base, locks) and
reads Glance's store. Here uid/gid 65534 (nobody:nogroup) plays `nova`: it owns the instances
directory, _base, locks and the instance directories. Its file operations are done either by
root on its behalf where ownership does not matter, or by a child process that dropped to
65534 (the racing swappers), so the kernel's permission checks are the attacker's.

Every row runs (one run shows every broken promise), each in fresh directories, and the script
exits 1 if any row failed. What a row checks is in its function's docstring; they share:
- canaries: a root-owned area per row (a `cron.hourly` directory, a 0600 secret, a FIFO) on the
  same xfs as the cache, so a link into it would succeed; nothing there may change or appear;
- a snapshot of everything else the row made outside the real `_base` and `locks` (Glance's
  store, instance disks): owner, mode, content and link count must not change, except extra
  hard links of Glance files that sit in the real `_base` (the module's legitimate links);
- no module crash (a Python traceback), and no hang: every ansible run has a timeout and is
  killed at it, which fails the row;
- where the row is a refusal: the module says so, in `refused` or in a text refusal_texts()
  collects that mentions "refused".

Filesystems: xfs with reflink=1 for Glance's store and the instances directory, ext4 for a
cache on another filesystem (copy fallback). Unmounted (lazily) and detached at exit.
"""

from __future__ import annotations

import argparse
import atexit
import ctypes
import hashlib
import json
import os
import select
import shutil
import signal
import stat
import struct
import subprocess
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field

NOBODY = 65534  # the hostile `nova` user (and group)
MODULE = "osops.lifecycle.imagecache_link"
FS_SIZE = "320M"
AT_FDCWD = -100
RENAME_EXCHANGE = 2
IN_ACCESS = 0x1
# racing swappers stop at whichever comes first (and when the module runs are over)
SWAP_MAX_SECONDS = 20
SWAP_MAX_COUNT = 1_000_000

LIBC = ctypes.CDLL(None, use_errno=True)


# --- small helpers -------------------------------------------------------------------------

def sha1_hex(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def file_digest(path: str, algo: str = "sha256") -> str:
    digest = hashlib.new(algo)
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def make_dir(path: str, uid: int = 0, gid: int = 0, mode: int = 0o755) -> str:
    os.makedirs(path, exist_ok=True)
    os.chown(path, uid, gid)
    os.chmod(path, mode)
    return path


def write_file(path: str, data: bytes, uid: int = 0, gid: int = 0, mode: int = 0o644) -> str:
    with open(path, "wb") as handle:
        handle.write(data)
    os.chown(path, uid, gid)
    os.chmod(path, mode)
    return path


def nobody_symlink(target: str, path: str) -> str:
    """A symlink as the attacker makes it: owned by 65534 (ownership may matter to a check)."""
    os.symlink(target, path)
    os.lchown(path, NOBODY, NOBODY)
    return path


def exchange(path_a: str, path_b: str) -> bool:
    """Swap two names atomically (renameat2 RENAME_EXCHANGE): both always exist."""
    return LIBC.renameat2(AT_FDCWD, path_a.encode(), AT_FDCWD, path_b.encode(), RENAME_EXCHANGE) == 0


def image_id(number: int) -> str:
    return "0badc0de-0000-4000-8000-%012x" % number


def run_cmd(*argv: str) -> None:
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)


def qcow2_header(backing_offset: int, backing_size: int, virtual_size: int = 1 << 30) -> bytes:
    """A qcow2 v3 header (104 bytes, no extensions): enough for anything that reads the backing name."""
    return struct.pack(
        ">4sIQIIQIIQQIIQQQQII",
        b"QFI\xfb", 3, backing_offset, backing_size, 16, virtual_size,
        0, 2, 0x30000, 0x10000, 1, 0, 0, 0, 0, 0, 4, 104,
    ) + struct.pack(">II", 0, 0)  # end-of-extensions marker


# --- module results --------------------------------------------------------------------------

def refusal_texts(result: dict | None) -> list[str]:
    """Where the module may say it refused something: msg and the per-entry reasons."""
    if not isinstance(result, dict):
        return []
    texts = [result["msg"]] if isinstance(result.get("msg"), str) else []
    for key, text_key in (("refused", "reason"), ("errors", "error"), ("skipped_images", "reason")):
        for entry in result.get(key) or []:
            if isinstance(entry, dict) and entry.get(text_key) is not None:
                texts.append(str(entry[text_key]))
    return texts


def says_refused(result: dict | None) -> bool:
    """The module reported a refusal: an entry in `refused`, or a text that says "refused"."""
    if not isinstance(result, dict):
        return False
    return bool(result.get("refused")) or any("refused" in text.lower() for text in refusal_texts(result))


def crash_of(result: dict | None) -> str | None:
    """A module crash (an unhandled Python exception), not a clean fail_json; None if there is none.

    ansible-core 2.19 reports an unhandled exception as msg "Task failed: Module failed: ..." with the
    module's traceback (through the AnsiballZ loader) in `exception`; older ones as "MODULE FAILURE"
    with the traceback in module_stderr. fail_json inside an except block also carries an `exception`
    key in 2.19 (the handled exception), so the key alone does not mean a crash.
    """
    if not isinstance(result, dict):
        return None
    msg = str(result.get("msg") or "")
    exception = str(result.get("exception") or "")
    if "MODULE FAILURE" in msg or "Module failed:" in msg or "_ansiballz" in exception:
        return "module crashed: %s" % msg[:200]
    for key in ("module_stderr", "module_stdout"):
        if "Traceback (most recent call last)" in str(result.get(key) or ""):
            return "module crashed: traceback in %s" % key
    return None


@dataclass
class Run:
    """One ansible-playbook run of one or more module calls."""

    results: list | None  # registered results, one per call; None if the run did not finish
    timed_out: bool
    elapsed: float
    log: str

    def result(self, index: int = 0) -> dict | None:
        if self.results is None or index >= len(self.results):
            return None
        return self.results[index]

    def problems(self) -> list[str]:
        """A hang or a crash in any call."""
        if self.timed_out:
            return ["timed out after %.0f s (hang); log %s" % (self.elapsed, self.log)]
        if self.results is None:
            return ["no result (ansible-playbook failed); log %s" % self.log]
        return [crash for crash in map(crash_of, self.results) if crash]


# --- snapshots: what must not change outside _base and locks -----------------------------------

@dataclass
class Snapshot:
    entries: dict[str, tuple]
    # (dev, ino) -> names in the excluded (legitimate) directories: the module's own hard links
    legit_links: dict[tuple[int, int], int]


def snapshot(roots: list[str], excluded: list[str], with_mtime: list[str]) -> Snapshot:
    """Owner, mode, link count, content (or link target) of everything under roots but excluded.

    Directories: owner and mode only (their link count follows subdirectories, their content is
    compared entry by entry). Modification times only under with_mtime (the canaries: Glance's
    files are legitimately touched through their hard link).
    """
    skip = {os.path.realpath(path) for path in excluded if os.path.isdir(path) and not os.path.islink(path)}
    entries: dict[str, tuple] = {}
    for root in roots:
        for folder, dirs, files in os.walk(root):
            if os.path.realpath(folder) in skip:
                dirs[:] = []
                continue
            dirs[:] = [d for d in dirs if os.path.realpath(os.path.join(folder, d)) not in skip]
            for name in dirs + files + ([""] if folder == root else []):
                path = os.path.join(folder, name) if name else folder
                st = os.lstat(path)
                mtime = st.st_mtime_ns if any(path.startswith(p) for p in with_mtime) else None
                if stat.S_ISDIR(st.st_mode):
                    entries[path] = ("dir", st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode))
                elif stat.S_ISREG(st.st_mode):
                    entries[path] = ("file", st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode), st.st_nlink,
                                     st.st_size, file_digest(path), mtime, (st.st_dev, st.st_ino))
                elif stat.S_ISLNK(st.st_mode):
                    entries[path] = ("symlink", st.st_uid, st.st_gid, os.readlink(path))
                else:  # FIFOs, devices: never opened
                    entries[path] = ("special", st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode), st.st_nlink, mtime)
    legit: dict[tuple[int, int], int] = {}
    for folder in skip:
        for sub, _dirs, files in os.walk(folder):
            for name in files:
                st = os.lstat(os.path.join(sub, name))
                if stat.S_ISREG(st.st_mode):
                    legit[(st.st_dev, st.st_ino)] = legit.get((st.st_dev, st.st_ino), 0) + 1
    return Snapshot(entries, legit)


FIELDS = {"file": ("type", "uid", "gid", "mode", "nlink", "size", "content", "mtime", "inode"),
          "special": ("type", "uid", "gid", "mode", "nlink", "mtime"),
          "dir": ("type", "uid", "gid", "mode"), "symlink": ("type", "uid", "gid", "target")}


def compare(before: Snapshot, after: Snapshot, allow_owner: dict[str, tuple[int, int]] | None = None) -> list[str]:
    """What changed, appeared or vanished. allow_owner: path -> (uid, gid) the row asked the module to set."""
    problems = []
    for path in sorted(set(before.entries) | set(after.entries)):
        old, new = before.entries.get(path), after.entries.get(path)
        if old is None:
            problems.append("%s appeared (%s)" % (path, new[0]))
            continue
        if new is None:
            problems.append("%s vanished" % path)
            continue
        names = FIELDS[old[0]] if old[0] == new[0] else ("type",)
        for index, name in enumerate(names):
            was, now = old[index], new[index]
            if was == now:
                continue
            if name == "nlink" and old[0] == "file":
                # extra names of a Glance file are fine if they are in the real _base or locks
                inode = old[-1]
                if now - after.legit_links.get(inode, 0) == was - before.legit_links.get(inode, 0):
                    continue
            if name in ("uid", "gid") and allow_owner and path in allow_owner:
                if now == allow_owner[path][0 if name == "uid" else 1]:
                    continue
            if name == "mode":
                problems.append("%s: mode %04o -> %04o" % (path, was, now))
            elif name == "content":
                problems.append("%s: content changed" % path)
            elif name == "mtime":
                problems.append("%s: modification time changed" % path)
            else:
                problems.append("%s: %s %s -> %s" % (path, name, was, now))
    return problems


# --- the attacker's processes ------------------------------------------------------------------

class Nobody:
    """A child process running `target(stop_fd, *args)` as uid/gid 65534, on a CPU of its own.

    It reports "ready" (armed) and then one JSON result on a pipe. Closing the stop pipe tells it to
    finish; it also bounds itself (SWAP_MAX_SECONDS, SWAP_MAX_COUNT).
    """

    def __init__(self, target, *args):
        stop_read, self.stop_write = os.pipe()
        self.result_read, result_write = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:  # the attacker
            status = 1
            try:
                os.close(self.stop_write)
                os.close(self.result_read)
                cpus = sorted(os.sched_getaffinity(0))
                if len(cpus) > 1:
                    os.sched_setaffinity(0, {cpus[-1]})
                os.setgroups([])
                os.setgid(NOBODY)
                os.setuid(NOBODY)
                outcome = target(stop_read, lambda: os.write(result_write, b"ready\n"), *args)
                os.write(result_write, (json.dumps(outcome) + "\n").encode())
                status = 0
            except BaseException:  # pylint: disable=broad-except  # reported to the parent, never raised there
                os.write(result_write, (json.dumps({"error": traceback.format_exc()[-2000:]}) + "\n").encode())
            finally:
                os._exit(status)  # pylint: disable=protected-access
        os.close(stop_read)
        os.close(result_write)
        self.buffer = b""
        CHILDREN.append(self)

    def _line(self, timeout: float) -> str | None:
        end = time.monotonic() + timeout
        while b"\n" not in self.buffer:
            left = end - time.monotonic()
            if left <= 0 or not select.select([self.result_read], [], [], left)[0]:
                return None
            chunk = os.read(self.result_read, 65536)
            if not chunk:
                return None
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return line.decode()

    def wait_ready(self, timeout: float = 10) -> bool:
        return self._line(timeout) == "ready"

    def finish(self, timeout: float = 30) -> dict:
        """Tell it to stop; its result (or an error)."""
        if self.stop_write is not None:
            os.close(self.stop_write)
            self.stop_write = None
        line = self._line(timeout)
        self.kill()
        try:
            return json.loads(line) if line else {"error": "no result from the attacker process"}
        except ValueError:
            return {"error": "bad result from the attacker process: %r" % line[:200]}

    def kill(self) -> None:
        if self.pid:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                os.waitpid(self.pid, 0)
            except ChildProcessError:
                pass
            self.pid = 0
            os.close(self.result_read)
        if self in CHILDREN:
            CHILDREN.remove(self)


CHILDREN: list[Nobody] = []


def stopped(stop_fd: int) -> bool:
    return bool(select.select([stop_fd], [], [], 0)[0])


def attack_swap_new_base_files(stop_fd, ready, pairs: list[list[str]]) -> dict:
    """Row swap-base-file: as soon as the module's link _base/<sha1> appears, replace it with a symlink.

    Spins on each expected name in the module's order; the module's window is between its link()
    and its chown()/chmod()/utime() of the path.
    """
    ready()
    hits = []
    end = time.monotonic() + SWAP_MAX_SECONDS
    for evil, dst in pairs:
        spins = 0
        while not os.access(dst, os.F_OK, follow_symlinks=False):
            spins += 1
            if spins & 0xFFF == 0 and (stopped(stop_fd) or time.monotonic() > end):
                return {"hits": hits, "done": False}
        try:
            os.rename(evil, dst)
            hits.append(dst)
        except OSError as error:
            hits.append("%s: %s" % (dst, error))
    return {"hits": hits, "done": True}


def attack_swap_source_on_read(stop_fd, ready, source: str, evil: str) -> dict:
    """Row source-symlink-copy: once the module reads the Glance file, swap a symlink in for it.

    inotify IN_ACCESS on the file: the module has opened and checked it and is now reading
    (header, hash); the fallback copy comes after that.
    """
    inotify = LIBC.inotify_init1(os.O_CLOEXEC)
    if inotify < 0 or LIBC.inotify_add_watch(inotify, source.encode(), IN_ACCESS) < 0:
        return {"error": "inotify: errno %d" % ctypes.get_errno()}
    ready()
    end = time.monotonic() + 60
    while time.monotonic() < end:
        readable = select.select([inotify, stop_fd], [], [], 1)[0]
        if stop_fd in readable:
            return {"swapped": False}
        if inotify in readable:
            swapped = exchange(source, evil)
            return {"swapped": swapped, "errno": 0 if swapped else ctypes.get_errno()}
    return {"swapped": False, "why": "the module never read the file"}


def attack_swap_loop(stop_fd, ready, pairs: list[list[str]]) -> dict:
    """Row racing-swaps: exchange each (name, symlink) pair over and over, bounded in count and time."""
    ready()
    count = failures = 0
    end = time.monotonic() + SWAP_MAX_SECONDS
    while count < SWAP_MAX_COUNT:
        for path_a, path_b in pairs:
            if exchange(path_a, path_b):
                count += 1
            else:
                failures += 1  # a name the module has not created yet, or has just removed
        if (count + failures) % 64 < len(pairs) and (stopped(stop_fd) or time.monotonic() > end):
            break
    return {"swaps": count, "failures": failures}


class FifoWatch:
    """Counts opens of a FIFO by others: a reader blocks in open(O_RDONLY) until a writer opens it.

    The module opening it O_RDWR or O_WRONLY (as root, through a planted symlink) releases the reader.
    """

    def __init__(self, path: str):
        self.path = path
        self.opens = 0
        self.stopping = False
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()
        time.sleep(0.05)  # let it block in open()

    def _read(self) -> None:
        while True:
            fd = os.open(self.path, os.O_RDONLY)
            os.close(fd)
            if self.stopping:
                return
            self.opens += 1
            time.sleep(0.01)  # while the opener holds it, open() returns at once: do not spin

    def stop(self) -> int:
        self.stopping = True
        end = time.monotonic() + 5
        while self.thread.is_alive() and time.monotonic() < end:
            try:  # release our own blocked reader
                os.close(os.open(self.path, os.O_WRONLY | os.O_NONBLOCK))
            except OSError:
                pass
            self.thread.join(0.05)
        return self.opens


class SecretWatch:
    """Looks into _base every few milliseconds for a file holding the secret.

    A copy made by one run is pruned by the next one of the racing row: only a watcher sees it.
    """

    def __init__(self, folder: str, secret: bytes):
        self.folder, self.secret = folder, secret
        self.seen: set[str] = set()
        self.stopping = False
        self.thread = threading.Thread(target=self._watch, daemon=True)
        self.thread.start()

    def _watch(self) -> None:
        while not self.stopping:
            try:
                for entry in os.scandir(self.folder):
                    if entry.is_file(follow_symlinks=False) and entry.stat(follow_symlinks=False).st_size == len(self.secret):
                        fd = os.open(entry.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
                        try:
                            if os.read(fd, len(self.secret) + 1) == self.secret:
                                self.seen.add(entry.name)
                        finally:
                            os.close(fd)
            except OSError:
                pass  # an entry removed meanwhile
            time.sleep(0.002)

    def stop(self) -> set[str]:
        self.stopping = True
        self.thread.join(5)
        return self.seen


def release_fifo(path: str) -> None:
    """Wake anything blocked opening a FIFO (a killed module run, our own readers)."""
    try:
        os.close(os.open(path, os.O_RDWR | os.O_NONBLOCK))
    except OSError:
        pass


# --- the node: filesystems, layouts, module runs -----------------------------------------------

@dataclass
class Canary:
    """Root-owned things an attack would like to reach, on the cache's filesystem."""

    area: str
    cron_hourly: str
    cron_d: str
    secret: str
    secret_bytes: bytes
    fifo: str


@dataclass
class Layout:
    """Fresh directories of one row (or one part of a row)."""

    name: str
    roots: list[str]
    store: str
    instances: str
    base: str
    locks: str
    attacker: str  # the attacker's own workspace on the store's filesystem: not compared
    canary: Canary
    state_dir: str
    images: list[dict] = field(default_factory=list)

    def glance_file(self, image: dict) -> str:
        return os.path.join(self.store, image["id"])

    def base_file(self, image: dict) -> str:
        return os.path.join(self.base, sha1_hex(image["id"]))

    def args(self, images: list[dict] | None = None, **options) -> dict:
        args = dict(images=self.images if images is None else images, source_dir=self.store, cache_dir=self.base,
                    instances_dir=self.instances, state_file=os.path.join(self.state_dir, "state.json"))
        args.update(options)
        return args

    def snapshot(self) -> Snapshot:
        return snapshot(self.roots + [self.canary.area], [self.base, self.locks, self.attacker], [self.canary.area])

    def add_image(self, number: int, size: int, owner: int = 0, mode: int = 0o644) -> dict:
        data = os.urandom(size)
        image = {"id": image_id(number), "status": "active", "disk_format": "raw", "size": size,
                 "os_hash_algo": "sha512", "os_hash_value": hashlib.sha512(data).hexdigest()}
        write_file(self.glance_file(image), data, owner, owner, mode)
        self.images.append(image)
        return image

    def linked(self, image: dict) -> bool:
        """The base file is a hard link of the Glance file (or a copy with its content)."""
        try:
            base, source = os.lstat(self.base_file(image)), os.lstat(self.glance_file(image))
        except FileNotFoundError:
            return False
        if not stat.S_ISREG(base.st_mode):
            return False
        return (base.st_dev, base.st_ino) == (source.st_dev, source.st_ino) or \
            file_digest(self.base_file(image)) == file_digest(self.glance_file(image))

    def files_with_content(self, data: bytes) -> list[str]:
        """Regular files under the real _base holding exactly `data` (a copied secret)."""
        digest = hashlib.sha256(data).hexdigest()
        found = []
        for folder, _dirs, files in os.walk(self.base):
            for name in files:
                path = os.path.join(folder, name)
                st = os.lstat(path)
                if stat.S_ISREG(st.st_mode) and st.st_size == len(data) and file_digest(path) == digest:
                    found.append("%s (mode %04o)" % (path, stat.S_IMODE(st.st_mode)))
        return found


class Node:
    """The work directory: loop-mounted xfs and ext4, rows' layouts, ansible runs."""

    def __init__(self, work: str, timeout: float):
        self.work = os.path.realpath(work)
        self.timeout = timeout
        self.loops: list[str] = []
        self.mounts: list[str] = []
        self.xfs = os.path.join(self.work, "xfs")
        self.ext4 = os.path.join(self.work, "ext4")
        self.playbook_count = 0
        self.ansible_playbook = shutil.which("ansible-playbook")
        cpus = sorted(os.sched_getaffinity(0))
        # the module on the other CPUs than the attacker's, so a spinning attacker does not starve it
        self.module_cpus = set(cpus[:-1]) if len(cpus) > 1 else set(cpus)

    # filesystems

    def setup(self) -> None:
        if not self.ansible_playbook:
            raise SystemExit("ansible-playbook is not on PATH")
        self.unmount_leftovers()
        if os.path.isdir(self.work):
            shutil.rmtree(self.work)
        make_dir(self.work)
        for sub in ("logs", "playbooks", "state", "fs"):
            make_dir(os.path.join(self.work, sub), mode=0o700 if sub == "state" else 0o755)
        for name, mkfs in (("xfs", ["mkfs.xfs", "-q", "-f", "-m", "reflink=1"]), ("ext4", ["mkfs.ext4", "-q", "-F"])):
            image = os.path.join(self.work, "fs", name + ".img")
            run_cmd("truncate", "-s", FS_SIZE, image)
            run_cmd(*mkfs, image)
            loop = subprocess.run(["losetup", "--find", "--show", image], check=True, capture_output=True,
                                  text=True).stdout.strip()
            self.loops.append(loop)
            mount_point = make_dir(os.path.join(self.work, name))
            run_cmd("mount", loop, mount_point)
            self.mounts.append(mount_point)
            os.chmod(mount_point, 0o755)
        make_dir(os.path.join(self.xfs, "root-owned"))

    def unmount_leftovers(self) -> None:
        """Mounts and loop devices of an earlier run in the same work directory."""
        with open("/proc/self/mountinfo", encoding="utf-8") as handle:
            points = [line.split()[4] for line in handle]
        for point in sorted((p for p in points if p == self.work or p.startswith(self.work + "/")), reverse=True):
            subprocess.run(["umount", "-l", point], check=False)
        for name in ("xfs", "ext4"):
            image = os.path.join(self.work, "fs", name + ".img")
            if os.path.exists(image):
                found = subprocess.run(["losetup", "-j", image], capture_output=True, text=True, check=False).stdout
                for line in found.splitlines():
                    subprocess.run(["losetup", "-d", line.split(":")[0]], check=False)

    def teardown(self, keep: bool) -> None:
        for child in list(CHILDREN):
            child.kill()
        for point in reversed(self.mounts):
            subprocess.run(["umount", "-l", point], check=False)
        self.mounts = []
        for loop in self.loops:
            subprocess.run(["losetup", "-d", loop], check=False)
        self.loops = []
        if not keep:
            shutil.rmtree(os.path.join(self.work, "fs"), ignore_errors=True)

    # layouts

    def canary(self, name: str) -> Canary:
        area = make_dir(os.path.join(self.xfs, "root-owned", name))
        cron_hourly = make_dir(os.path.join(area, "cron.hourly"))
        write_file(os.path.join(cron_hourly, "0anacron"), b"#!/bin/sh\nexit 0\n", mode=0o755)
        cron_d = make_dir(os.path.join(area, "cron.d"))
        write_file(os.path.join(cron_d, "placeholder"), b"# root's\n")
        secret_bytes = b"root-only secret of %s: %s\n" % (name.encode(), os.urandom(8).hex().encode())
        secret = write_file(os.path.join(area, "secret"), secret_bytes, mode=0o600)
        fifo = os.path.join(area, "fifo")
        os.mkfifo(fifo, 0o600)
        return Canary(area, cron_hourly, cron_d, secret, secret_bytes, fifo)

    def layout(self, name: str, store_owner: int = 0, cache_fs: str = "xfs") -> Layout:
        """Glance's store on xfs (owned by store_owner), instances/_base/locks owned by nova (65534)."""
        root = make_dir(os.path.join(self.xfs, name))
        make_dir(os.path.join(root, "glance"))
        store = make_dir(os.path.join(root, "glance", "images"), store_owner, store_owner)
        cache_root = root if cache_fs == "xfs" else make_dir(os.path.join(self.ext4, name))
        make_dir(os.path.join(cache_root, "nova"))
        instances = make_dir(os.path.join(cache_root, "nova", "instances"), NOBODY, NOBODY)
        base = make_dir(os.path.join(instances, "_base"), NOBODY, NOBODY)
        locks = make_dir(os.path.join(instances, "locks"), NOBODY, NOBODY)
        attacker = make_dir(os.path.join(root, "attacker"), NOBODY, NOBODY, 0o700)
        state_dir = make_dir(os.path.join(self.work, "state", name), mode=0o700)
        roots = [root] if cache_root == root else [root, cache_root]
        return Layout(name, roots, store, instances, base, locks, attacker, self.canary(name), state_dir)

    def instance_dir(self, layout: Layout, number: int) -> str:
        return make_dir(os.path.join(layout.instances, "3e1f0000-0000-4000-8000-%012x" % number), NOBODY, NOBODY)

    # module runs

    def ansible(self, name: str, calls: list[dict], timeout: float | None = None) -> Run:
        """Run the module once per call in one playbook; the registered results, JSON, from a file."""
        self.playbook_count += 1
        stem = "%02d-%s" % (self.playbook_count, name)
        out = os.path.join(self.work, "playbooks", stem + ".result.json")
        tasks = [{"name": "call %d" % index, MODULE: call, "register": "r%d" % index, "ignore_errors": True}
                 for index, call in enumerate(calls)]
        tasks.append({"name": "keep the results", "ansible.builtin.copy": {
            "content": "{{ [%s] | to_json }}" % ", ".join("r%d" % i for i in range(len(calls))), "dest": out,
            "mode": "0600"}})
        play = [{"hosts": "localhost", "gather_facts": False, "tasks": tasks,
                 "vars": {"ansible_python_interpreter": "{{ ansible_playbook_python }}"}}]
        playbook = os.path.join(self.work, "playbooks", stem + ".json")
        with open(playbook, "w", encoding="utf-8") as handle:
            json.dump(play, handle, indent=1)
        log = os.path.join(self.work, "logs", stem + ".log")
        env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_DISPLAY_TRACEBACK="error", ANSIBLE_RETRY_FILES_ENABLED="0",
                   ANSIBLE_LOCALHOST_WARNING="0", ANSIBLE_INVENTORY_UNPARSED_WARNING="0")
        timeout = self.timeout if timeout is None else timeout
        start = time.monotonic()
        with open(log, "w", encoding="utf-8") as handle:
            proc = subprocess.Popen(  # pylint: disable=consider-using-with  # killed as a group at the timeout
                [self.ansible_playbook, "-i", "localhost,", "-c", "local", playbook], stdout=handle,
                stderr=subprocess.STDOUT, env=env, start_new_session=True, cwd=self.work)
            try:  # before it forks the module (no preexec_fn: our FIFO watchers are threads)
                os.sched_setaffinity(proc.pid, self.module_cpus)
            except OSError:
                pass
            try:
                proc.wait(timeout)
                timed_out = False
            except subprocess.TimeoutExpired:
                timed_out = True
                kill_tree(proc.pid)
                proc.wait()
        elapsed = time.monotonic() - start
        results = None
        if not timed_out and os.path.exists(out):
            with open(out, encoding="utf-8") as handle:
                results = json.load(handle)
        return Run(results, timed_out, elapsed, log)


def process_tree(root: int) -> list[int]:
    """root and all its descendants (by parent pid), read before anything is killed."""
    parents: dict[int, list[int]] = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % pid, encoding="utf-8") as handle:
                parent = int(handle.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        parents.setdefault(parent, []).append(int(pid))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(parents.get(pid, []))
    return tree


def kill_tree(root: int) -> None:
    """Kill a timed-out ansible run and everything it started.

    Not only its process group: ansible's worker process calls setsid(), so the module hanging in
    open() lives in another session, and would keep the test filesystem busy after we exit.
    """
    for _attempt in range(3):  # the tree may still be forking when we look
        for pid in process_tree(root):
            try:
                os.kill(pid, signal.SIGSTOP)  # freeze first, so nothing forks or reparents meanwhile
            except ProcessLookupError:
                pass
    for pid in process_tree(root):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


# --- the rows ----------------------------------------------------------------------------------

class Row:
    """Collects a row's broken promises."""

    def __init__(self):
        self.problems: list[str] = []
        self.notes: list[str] = []

    def expect(self, condition: bool, problem: str) -> bool:
        if not condition:
            self.problems.append(problem)
        return condition

    def extend(self, prefix: str, problems: list[str]) -> None:
        self.problems.extend("%s%s" % (prefix, problem) for problem in problems)


def expect_refusal(row: Row, result: dict | None, what: str, names: tuple[str, ...] = ()) -> None:
    """The module must fail with msg saying `refused` and naming the path (by one of `names`)."""
    if result is None:
        return  # the run's own problem is reported already
    msg = str(result.get("msg") or "")
    if row.expect(result.get("failed") is True, "%s: the module did not fail (changed=%s, counts=%s)"
                  % (what, result.get("changed"), result.get("counts"))):
        row.expect("refused" in msg.lower(), "%s: msg does not say refused: %r" % (what, msg[:300]))
        if names:
            row.expect(any(name in msg for name in names), "%s: msg does not name %s: %r" % (what, " or ".join(names), msg[:300]))


def row_dir_symlink(node: Node, which: str) -> Row:
    """`locks` or `_base` replaced by a symlink to a root-owned directory: the module must fail, `refused`.

    Today: the lock file nova-<sha1> is created in the root-owned directory chowned to nova, or the
    Glance file is hard-linked into it and chowned to `owner`.
    """
    row = Row()
    layout = node.layout("%s-symlink" % which.strip("_"))
    image = layout.add_image(1, 1 << 20)
    target = layout.locks if which == "locks" else layout.base
    os.rmdir(target)
    nobody_symlink(layout.canary.cron_hourly, target)
    before = layout.snapshot()
    # owner: the link into a root-owned _base would be chowned to it; the lock file gets nova's owner anyway
    options = dict(owner=str(NOBODY), group=str(NOBODY)) if which == "_base" else {}
    run = node.ansible(layout.name, [layout.args(**options)])
    row.extend("", run.problems())
    expect_refusal(row, run.result(), "%s -> root-owned dir" % which, (target, which))
    row.extend("outside _base/locks: ", compare(before, layout.snapshot()))
    row.expect(sha1_hex(image["id"]) not in " ".join(os.listdir(layout.canary.cron_hourly)),
               "the image or its lock reached the root-owned directory")
    return row


def row_locks_symlink(node: Node) -> Row:
    return row_dir_symlink(node, "locks")


def row_base_symlink(node: Node) -> Row:
    return row_dir_symlink(node, "_base")


def row_swap_base_file(node: Node) -> Row:
    """`_base/<sha1>` swapped for a symlink to a root-owned 0600 file right after the module links it.

    Today chown/chmod/utime follow the path: the root-owned 0600 file becomes 65534, mode 0644. A
    race: many images per run, up to 3 runs, the attacker spinning on a CPU of its own.
    """
    row = Row()
    swapped = 0
    for attempt in range(1, 4):
        layout = node.layout("swap-base-file-%d" % attempt)
        for number in range(24):
            layout.add_image(number, 64 << 10)
        pairs = []
        for image in layout.images:
            evil = nobody_symlink(layout.canary.secret, os.path.join(layout.attacker, sha1_hex(image["id"])))
            pairs.append([evil, layout.base_file(image)])
        before = layout.snapshot()
        attacker = Nobody(attack_swap_new_base_files, pairs)
        row.expect(attacker.wait_ready(), "attacker not ready")
        run = node.ansible(layout.name, [layout.args(owner=str(NOBODY), group=str(NOBODY), mode="0644", verify="hash")])
        outcome = attacker.finish()
        row.extend("run %d: " % attempt, run.problems())
        allow = {layout.glance_file(image): (NOBODY, NOBODY) for image in layout.images}  # asked for: owner=65534
        changed = compare(before, layout.snapshot(), allow)
        row.extend("run %d: " % attempt, changed)
        hits = [hit for hit in outcome.get("hits", []) if ":" not in hit]
        error = ", " + outcome["error"] if "error" in outcome else ""
        row.notes.append("run %d: %d of %d base files swapped%s" % (attempt, len(hits), len(pairs), error))
        swapped += len(hits)
        if row.problems:
            break
    # an attacker that never won the race proves nothing: the row must not pass on its absence
    row.expect(swapped > 0 or bool(row.problems), "the attacker never swapped a base file: the row proved nothing")
    return row


def row_source_symlink_copy(node: Node) -> Row:
    """Glance source as a symlink to a root-owned secret, with the copy fallback (cache on ext4).

    a) a symlink before the run: refused, nothing copied;
    b) swapped in once the module reads the real file (inotify), before the fallback copy:
       today the copy reopens the path and copies the secret into _base, mode 0644.
    The store is writable by nova here (shared glance/nova uid), so the attacker can do it.
    """
    row = Row()
    layout = node.layout("source-symlink-copy", store_owner=NOBODY, cache_fs="ext4")
    secret = layout.canary.secret_bytes
    static = {"id": image_id(1), "status": "active", "disk_format": "raw", "size": len(secret),
              "os_hash_algo": "sha512", "os_hash_value": hashlib.sha512(secret).hexdigest()}
    nobody_symlink(layout.canary.secret, layout.glance_file(static))
    racing = layout.add_image(2, 64 << 20, owner=NOBODY)
    evil = nobody_symlink(layout.canary.secret, os.path.join(layout.attacker, racing["id"]))
    before = layout.snapshot()
    attacker = Nobody(attack_swap_source_on_read, layout.glance_file(racing), evil)
    row.expect(attacker.wait_ready(), "attacker not ready")
    run = node.ansible(layout.name, [layout.args([static, racing], fallback="copy", verify="hash")])
    outcome = attacker.finish()
    if os.path.islink(layout.glance_file(racing)):
        exchange(layout.glance_file(racing), evil)  # put Glance's file back before comparing
    row.notes.append("attacker: %s" % json.dumps(outcome)[:200])
    row.extend("", run.problems())
    row.expect(not layout.files_with_content(secret), "the secret was copied into _base: %s"
               % ", ".join(layout.files_with_content(secret)))
    result = run.result()
    if result is not None and racing["id"] in json.dumps(result.get("linked")):
        # b) the copy comes from the file the module checked, never from what the name points to later
        row.expect(layout.linked(racing), "b) the base file of the swapped source is not a copy of the checked Glance file")
    if result is not None:
        refused = [entry for entry in result.get("refused") or [] if static["id"] in json.dumps(entry)]
        row.expect(bool(refused) or any("refused" in text.lower() and static["id"] in json.dumps(result)
                                        for text in refusal_texts(result)),
                   "a) the symlinked source is not reported as refused (errors: %s)" % json.dumps(result.get("errors"))[:300])
    row.extend("outside _base/locks: ", compare(before, layout.snapshot()))
    return row


def prune_setup(node: Node, name: str) -> tuple[Layout, dict, Row, str]:
    """A base file linked by a first run, whose image is then deleted in Glance: prune's candidate."""
    row = Row()
    layout = node.layout(name)
    image = layout.add_image(1, 1 << 20)
    run = node.ansible(layout.name + "-link", [layout.args()])
    row.extend("first run: ", run.problems())
    row.expect(layout.linked(image), "first run did not link the image (setup)")
    instance = node.instance_dir(layout, 1)
    return layout, image, row, instance


def deleted(image: dict) -> dict:
    return dict(image, status="deleted")


def row_fifo_disk(node: Node) -> Row:
    """A FIFO planted as an instance `disk`: prune must finish (today it blocks in open() forever)."""
    layout, image, row, instance = prune_setup(node, "fifo-disk")
    disk = os.path.join(instance, "disk")
    os.mkfifo(disk, 0o644)
    os.lchown(disk, NOBODY, NOBODY)
    before = layout.snapshot()
    run = node.ansible(layout.name, [layout.args([deleted(image)], prune=True)])
    release_fifo(disk)
    row.extend("", run.problems())
    result = run.result()
    if result is not None:
        row.expect(not result.get("failed"), "prune failed: %r" % str(result.get("msg"))[:300])
        row.expect(says_refused(result), "the FIFO disk is not reported as refused")
        row.notes.append("base file %s" % ("kept" if os.path.exists(layout.base_file(image)) else "pruned"))
    row.notes.append("run took %.1f s" % run.elapsed)
    row.extend("outside _base/locks: ", compare(before, layout.snapshot()))
    return row


def row_huge_backing_size(node: Node) -> Row:
    """A raw instance disk with a qcow2-looking header naming a 4 GiB backing file name.

    Prune cannot tell which base it uses, so it must keep the base file (in `kept`, still there) and
    not fail. Today it reads the whole "name" (MemoryError where memory is short) and prunes the base.
    """
    layout, image, row, instance = prune_setup(node, "huge-backing-size")
    disk = os.path.join(instance, "disk")
    write_file(disk, qcow2_header(512, 0xFFFFFFFF), NOBODY, NOBODY, 0o644)
    os.truncate(disk, 16 << 20)  # a raw disk: the "name" runs into zeros up to its end
    before = layout.snapshot()
    run = node.ansible(layout.name, [layout.args([deleted(image)], prune=True)])
    row.extend("", run.problems())
    result = run.result()
    if result is not None:
        row.expect(not result.get("failed"), "prune failed: %r" % str(result.get("msg"))[:300])
        base_name = sha1_hex(image["id"])
        row.expect(any(entry.get("base_name") == base_name or entry.get("id") == image["id"]
                       for entry in result.get("kept") or [] if isinstance(entry, dict)),
                   "the base file is not in kept (pruned: %s)" % json.dumps(result.get("pruned"))[:200])
    row.expect(os.path.exists(layout.base_file(image)), "the base file was removed")
    row.extend("outside _base/locks: ", compare(before, layout.snapshot()))
    return row


def row_lock_symlink_fifo(node: Node) -> Row:
    """Lock files that are not regular files: must be refused, never opened through a symlink.

    a) locks/nova-<sha1> is a symlink to a root-owned FIFO outside: today opened O_RDWR as root
       (a reader blocked in open() of that FIFO is released);
    b) locks/nova-<sha1> is itself a FIFO: no hang, refused.
    """
    row = Row()
    layout = node.layout("lock-symlink-fifo")
    first, second = layout.add_image(1, 1 << 20), layout.add_image(2, 1 << 20)
    nobody_symlink(layout.canary.fifo, os.path.join(layout.locks, "nova-" + sha1_hex(first["id"])))
    fifo_lock = os.path.join(layout.locks, "nova-" + sha1_hex(second["id"]))
    os.mkfifo(fifo_lock, 0o644)
    os.lchown(fifo_lock, NOBODY, NOBODY)
    before = layout.snapshot()
    watch = FifoWatch(layout.canary.fifo)
    run = node.ansible(layout.name, [layout.args()])
    opens = watch.stop()
    release_fifo(fifo_lock)
    row.extend("", run.problems())
    row.expect(opens == 0, "a) the root-owned FIFO behind the symlinked lock file was opened (our blocked reader released %d time(s))" % opens)
    result = run.result()
    if result is not None:
        text = json.dumps(result)
        row.expect((says_refused(result) and sha1_hex(first["id"]) in text and sha1_hex(second["id"]) in text)
                   or len(result.get("refused") or []) >= 2,
                   "the lock files are not both reported as refused (refused: %s, errors: %s)"
                   % (json.dumps(result.get("refused"))[:200], json.dumps(result.get("errors"))[:300]))
    row.extend("outside _base/locks: ", compare(before, layout.snapshot()))
    return row


BAD_OPTIONS = (  # (part, options, option named in msg)
    ("mode -1", {"mode": "-1"}, "mode"),
    ("mode 077777", {"mode": "077777"}, "mode"),
    ("mode 07777", {"mode": "07777"}, "mode"),
    ("owner 99999999999", {"owner": "99999999999"}, "owner"),
    ("group 99999999999", {"group": "99999999999"}, "group"),
)


def row_bad_options(node: Node) -> Row:
    """Bad option values fail with a msg naming the option, before Glance's file is touched.

    Today: mode -1 / 077777 / 07777 become 07777 (setuid, world-writable) on Glance's file through
    its hard link; a huge owner or group and a dict as an image's size are tracebacks. A dict as
    `size` must only skip that image ("invalid image entry ..."), others are still linked.
    """
    row = Row()
    layouts, calls = [], []
    for number, (part, options, _option) in enumerate(BAD_OPTIONS):
        layout = node.layout("bad-options-%d" % number)
        layout.add_image(1, 1 << 20)
        layouts.append(layout)
        calls.append(layout.args(**options))
    size_layout = node.layout("bad-options-size")
    good = size_layout.add_image(1, 1 << 20)
    bad = dict(good, id=image_id(2), size={"bytes": 1 << 20})
    write_file(size_layout.glance_file(bad), os.urandom(1 << 20))
    calls.append(size_layout.args([bad, good]))
    befores = [layout.snapshot() for layout in layouts + [size_layout]]
    run = node.ansible("bad-options", calls)
    row.extend("", run.problems() if run.timed_out or run.results is None else [])
    for index, ((part, _options, option), layout) in enumerate(zip(BAD_OPTIONS, layouts)):
        result = run.result(index)
        if result is None:
            continue
        crash = crash_of(result)
        row.expect(not crash, "%s: %s" % (part, crash))
        msg = str(result.get("msg") or "")
        if not crash and row.expect(result.get("failed") is True, "%s: the module did not fail (counts=%s)"
                                    % (part, result.get("counts"))):
            row.expect(option in msg, "%s: msg does not name %s: %r" % (part, option, msg[:200]))
        row.extend("%s: " % part, compare(befores[index], layout.snapshot()))
    result = run.result(len(layouts))
    if result is not None:
        crash = crash_of(result)
        row.expect(not crash, "size dict: %s" % crash)
        if not crash:
            row.expect(not result.get("failed"), "size dict: the module failed: %r" % str(result.get("msg"))[:200])
            row.expect(any(entry.get("id") == bad["id"] and str(entry.get("reason", "")).startswith("invalid image entry")
                           for entry in result.get("skipped_images") or []),
                       "size dict: not skipped as 'invalid image entry ...' (skipped: %s)"
                       % json.dumps(result.get("skipped_images"))[:200])
            row.expect(size_layout.linked(good), "size dict: the good image was not linked")
        row.extend("size dict: ", compare(befores[-1], size_layout.snapshot()))
    return row


RACES = (  # phase -> what the attacker exchanges, over and over, while the module runs
    "base-dir",     # _base <-> symlink to a root-owned directory
    "locks-dir",    # locks <-> symlink to a root-owned directory
    "base-file",    # _base/<sha1> <-> symlink to the root-owned 0600 secret
    "source-link",  # Glance source <-> symlink to the secret (nova-writable store), hard links
    "source-copy",  # the same with the copy fallback (cache on ext4)
    "lock-file",    # locks/nova-<sha1> <-> symlink to a root-owned FIFO
)


def row_racing_swaps(node: Node) -> Row:
    """A second process (uid 65534) swaps things in a loop while the module runs 6 times per phase.

    Runs alternate linking (owner 0:0 mode 0644, Glance's own: nothing to change legitimately) and
    pruning (image deleted), so every run takes locks, links or removes, and sets attributes; touch
    every run. Afterwards nothing outside _base and locks may have changed (canaries by mtime too),
    the root-owned FIFO may never have been opened, no run may crash or hang.
    """
    row = Row()
    for phase in RACES:
        source_phase = phase.startswith("source")
        layout = node.layout("racing-" + phase, store_owner=NOBODY if source_phase else 0,
                             cache_fs="ext4" if phase == "source-copy" else "xfs")
        owner = NOBODY if source_phase else 0
        for number in range(3):
            layout.add_image(number, 4 << 20, owner=owner)
        evil = layout.attacker

        def symlink_to(target: str, name: str, workspace: str = evil) -> str:
            return nobody_symlink(target, os.path.join(workspace, name))

        if phase == "base-dir":
            pairs = [[layout.base, symlink_to(layout.canary.cron_hourly, "_base")]]
        elif phase == "locks-dir":
            pairs = [[layout.locks, symlink_to(layout.canary.cron_d, "locks")]]
        elif phase == "base-file":
            pairs = [[layout.base_file(image), symlink_to(layout.canary.secret, sha1_hex(image["id"]))]
                     for image in layout.images]
        elif source_phase:
            pairs = [[layout.glance_file(image), symlink_to(layout.canary.secret, image["id"])] for image in layout.images]
        else:  # lock-file: Nova's lock files exist, nova-owned
            pairs = []
            for image in layout.images:
                lock = write_file(os.path.join(layout.locks, "nova-" + sha1_hex(image["id"])), b"", NOBODY, NOBODY)
                pairs.append([lock, symlink_to(layout.canary.fifo, "nova-" + sha1_hex(image["id"]))])
        if os.stat(evil).st_dev != os.stat(os.path.dirname(pairs[0][0])).st_dev:  # renameat2 needs one filesystem
            raise RuntimeError("attacker workspace on another filesystem than %s" % pairs[0][0])
        before = layout.snapshot()
        options = dict(owner="0" if not source_phase else str(NOBODY), group="0" if not source_phase else str(NOBODY),
                       mode="0644", touch_interval=0, verify="hash", prune=True,
                       fallback="copy" if phase == "source-copy" else "fail")
        calls = [layout.args(layout.images if turn % 2 == 0 else [deleted(image) for image in layout.images], **options)
                 for turn in range(6)]
        watch = FifoWatch(layout.canary.fifo)
        secret_watch = SecretWatch(layout.base, layout.canary.secret_bytes)
        attacker = Nobody(attack_swap_loop, pairs)
        row.expect(attacker.wait_ready(), "%s: attacker not ready" % phase)
        run = node.ansible(layout.name, calls)
        outcome = attacker.finish()
        opens = watch.stop()
        copies = secret_watch.stop()
        for path_a, path_b in pairs:  # put the real names back before comparing
            if os.path.islink(path_a) and not os.path.islink(path_b):
                exchange(path_a, path_b)
        row.extend("%s: " % phase, run.problems())
        row.expect(opens == 0, "%s: the root-owned FIFO was opened (our blocked reader released %d time(s))" % (phase, opens))
        row.expect(not copies, "%s: the secret was copied into _base as %s" % (phase, ", ".join(sorted(copies))))
        row.extend("%s: " % phase, compare(before, layout.snapshot()))
        results = run.results or []
        row.notes.append("%s: %s swaps, %d runs failed, %d refused" % (
            phase, outcome.get("swaps", outcome.get("error", "?")), sum(1 for r in results if r.get("failed")),
            sum(1 for r in results if says_refused(r))))
        # an attacker that never swapped proves nothing: the row must not pass on its absence
        row.expect(bool(outcome.get("swaps")), "%s: the attacker made no swap (%s)" % (phase, outcome.get("error", "no error")))
    return row


def row_operator_symlink_ok(node: Node) -> Row:
    """Symlinks an operator made in root-owned 0755 directories still work (positive).

    <work>/instances-link -> the instances directory, <work>/glance-link -> the store: the image is
    linked, nothing is refused; an instance disk (qcow2) on the base keeps it at prune.
    """
    row = Row()
    layout = node.layout("operator-symlink-ok")
    image = layout.add_image(1, 1 << 20)
    instances_link = os.path.join(node.work, "instances-link")
    glance_link = os.path.join(node.work, "glance-link")
    for link, target in ((instances_link, layout.instances), (glance_link, layout.store)):
        if os.path.lexists(link):
            os.unlink(link)
        os.symlink(target, link)  # root's, in root's 0755 directory
    args = dict(layout.args(), source_dir=glance_link, cache_dir=os.path.join(instances_link, "_base"),
                instances_dir=instances_link)
    instance = node.instance_dir(layout, 1)
    backing = os.path.join(instances_link, "_base", sha1_hex(image["id"])).encode()
    header = qcow2_header(0x200, len(backing))
    write_file(os.path.join(instance, "disk"), header + b"\0" * (0x200 - len(header)) + backing, NOBODY, NOBODY)
    run = node.ansible(layout.name, [args, dict(args, images=[deleted(image)], prune=True)])
    row.extend("", run.problems())
    linking, pruning = run.result(0), run.result(1)
    if linking is not None:
        row.expect(not linking.get("failed"), "linking failed: %r" % str(linking.get("msg"))[:300])
        row.expect(not says_refused(linking), "linking refused something: %s" % refusal_texts(linking))
        row.expect(image["id"] in json.dumps(linking.get("linked")), "the image is not in linked")
    row.expect(layout.linked(image), "the base file is not a link of the Glance file")
    if pruning is not None:
        row.expect(not pruning.get("failed"), "prune failed: %r" % str(pruning.get("msg"))[:300])
        row.expect(not says_refused(pruning), "prune refused something: %s" % refusal_texts(pruning))
        row.expect(any(isinstance(entry, dict) and entry.get("base_name") == sha1_hex(image["id"])
                       for entry in pruning.get("kept") or []), "the base file in use is not in kept")
    row.expect(os.path.exists(layout.base_file(image)), "the base file in use was removed")
    return row


ROWS = {
    "locks-symlink": row_locks_symlink,
    "base-symlink": row_base_symlink,
    "swap-base-file": row_swap_base_file,
    "source-symlink-copy": row_source_symlink_copy,
    "fifo-disk": row_fifo_disk,
    "huge-backing-size": row_huge_backing_size,
    "lock-symlink-fifo": row_lock_symlink_fifo,
    "bad-options": row_bad_options,
    "racing-swaps": row_racing_swaps,
    "operator-symlink-ok": row_operator_symlink_ok,
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--work", required=True, help="work directory (made afresh; filesystems mounted under it)")
    parser.add_argument("--rows", help="comma-separated rows to run (default: all): " + ", ".join(ROWS))
    parser.add_argument("--timeout", type=float, default=60, help="seconds an ansible run may take (default 60)")
    parser.add_argument("--keep", action="store_true", help="keep the filesystem images (unmounted) afterwards")
    options = parser.parse_args()
    names = options.rows.split(",") if options.rows else list(ROWS)
    unknown = [name for name in names if name not in ROWS]
    if unknown:
        parser.error("unknown rows: %s" % ", ".join(unknown))
    if os.geteuid() != 0:
        parser.error("needs root (loop mounts, root-owned canaries)")
    # the attacker runs as uid 65534: behind a directory it cannot enter, every attack would
    # silently do nothing (ansible-test's output dir under /root is such a place)
    above = os.path.dirname(os.path.abspath(options.work))
    while above != "/":
        if not os.stat(above).st_mode & 0o001:
            parser.error("uid %d cannot reach --work: %s is not searchable by others" % (NOBODY, above))
        above = os.path.dirname(above)

    node = Node(options.work, options.timeout)
    atexit.register(node.teardown, options.keep)
    # SIGTERM (ansible-test's timeout) unwinds through finally: unmount, detach
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    outcomes = []
    start = time.monotonic()
    try:
        node.setup()
        for name in names:
            row_start = time.monotonic()
            print("== %s" % name, flush=True)
            try:
                row = ROWS[name](node)
            except Exception:  # pylint: disable=broad-except  # a broken row must not hide the others
                row = Row()
                row.problems.append("harness error: %s" % traceback.format_exc().strip().splitlines()[-1])
                traceback.print_exc()
            verdict = "FAIL" if row.problems else "PASS"
            outcomes.append({"row": name, "verdict": verdict, "problems": row.problems, "notes": row.notes,
                             "seconds": round(time.monotonic() - row_start, 1)})
            for line in row.problems:
                print("   FAIL: %s" % line, flush=True)
            for line in row.notes:
                print("   note: %s" % line, flush=True)
    finally:
        node.teardown(options.keep)
    width = max(len(name) for name in names)
    print("\n%-*s  result  seconds  why" % (width, "row"))
    for outcome in outcomes:
        why = outcome["problems"][0] if outcome["problems"] else "; ".join(outcome["notes"])[:160]
        more = " (+%d more)" % (len(outcome["problems"]) - 1) if len(outcome["problems"]) > 1 else ""
        print("%-*s  %-6s  %7.1f  %s%s" % (width, outcome["row"], outcome["verdict"], outcome["seconds"], why[:200], more))
    print("total %.0f s" % (time.monotonic() - start))
    with open(os.path.join(node.work, "summary.json"), "w", encoding="utf-8") as handle:
        json.dump(outcomes, handle, indent=1)
    return 1 if any(outcome["verdict"] == "FAIL" for outcome in outcomes) or len(outcomes) < len(names) else 0


if __name__ == "__main__":
    sys.exit(main())
