"""Process bookkeeping: every daemon runs in its own session (process group),
its PID and kernel start time go to run/<name>.pid, so stop ends exactly the
processes start made (a reused PID never matches the recorded start time)."""
import os
import signal
import subprocess
import time

from . import common


def pidfile(name):
    return os.path.join(common.RUN, name + ".pid")


def logfile(name):
    return os.path.join(common.LOG, name + ".log")


def _stat(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            data = f.read()
    except OSError:
        return None
    # comm may contain spaces: split after the closing parenthesis
    rest = data[data.rindex(")") + 2:].split()
    return {"state": rest[0], "pgrp": int(rest[2]), "start": rest[19]}


def _alive(pid, start=None):
    st = _stat(pid)
    if st is None or st["state"] in ("Z", "X"):
        return False
    return start is None or st["start"] == start


def read_pidfile(name):
    try:
        with open(pidfile(name)) as f:
            pid, start = f.read().split()
        return int(pid), start
    except (OSError, ValueError):
        return None, None


def running_pid(name):
    """PID of our process `name` if it still runs, else None."""
    pid, start = read_pidfile(name)
    if pid and _alive(pid, start):
        return pid
    return None


SPAWNED = {}   # name -> time.time() of the spawn in this run


def spawn(name, argv, env=None, cwd=None):
    os.makedirs(common.RUN, exist_ok=True)
    os.makedirs(common.LOG, exist_ok=True)
    out = open(logfile(name), "ab")
    out.write(("\n===== %s start: %s\n" % (
        time.strftime("%Y-%m-%d %H:%M:%S"), " ".join(argv))).encode())
    out.flush()
    full_env = dict(os.environ)
    full_env.update(env or {})
    p = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                         stdin=subprocess.DEVNULL, env=full_env,
                         cwd=cwd or common.HOME, start_new_session=True)
    out.close()
    SPAWNED[name] = time.time()
    st = _stat(p.pid)
    with open(pidfile(name), "w") as f:
        f.write("%d %s\n" % (p.pid, st["start"] if st else "0"))
    return p


def group_members(pgid):
    pids = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            st = _stat(int(d))
            if st and st["pgrp"] == pgid and st["state"] not in ("Z", "X"):
                pids.append(int(d))
    return pids


def stop(names, timeout=30):
    """SIGTERM the process groups of `names` (all at once), wait, SIGKILL
    what is left after `timeout`. Returns the names that were running."""
    targets = {}
    for name in names:
        pid = running_pid(name)
        if pid:
            targets[name] = pid
            try:
                os.killpg(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    deadline = time.time() + timeout
    while targets and time.time() < deadline:
        if not any(group_members(pid) for pid in targets.values()):
            break
        time.sleep(0.2)
    for name, pid in targets.items():
        left = group_members(pid)
        if left:
            common.log("%s did not stop in %ss: SIGKILL %s" % (
                name, timeout, left))
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    t2 = time.time() + 10
    while any(group_members(pid) for pid in targets.values()) \
            and time.time() < t2:
        time.sleep(0.1)
    for name in names:
        try:
            os.unlink(pidfile(name))
        except OSError:
            pass
    return list(targets)


def rss_kib(pids):
    total = 0
    for pid in pids:
        try:
            with open("/proc/%d/status" % pid) as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def strays(known_pgids):
    """Processes working in this state dir (cwd under HOME: start spawns
    everything with cwd=HOME; MariaDB moves into its datadir) that no PID
    file knows, e.g. after someone deleted run/ under a running stack."""
    home = os.path.realpath(common.HOME)
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) == os.getpid():
            continue
        pid = int(d)
        try:
            cwd = os.readlink("/proc/%d/cwd" % pid)
        except OSError:
            continue
        cwd = cwd.replace(" (deleted)", "")
        if cwd != home and not cwd.startswith(home + "/"):
            continue
        st = _stat(pid)
        if not st or st["state"] in ("Z", "X") or st["pgrp"] in known_pgids:
            continue
        if st["pgrp"] != pid and _stat(st["pgrp"]):
            continue        # count process groups by their leader
        try:
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode()[:100]
        except OSError:
            cmd = "?"
        out.append((pid, cmd))
    return out


class Lock:
    """One start/stop at a time per state dir."""

    def __enter__(self):
        import fcntl
        os.makedirs(common.RUN, exist_ok=True)
        self.f = open(os.path.join(common.RUN, ".lock"), "w")
        try:
            fcntl.flock(self.f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            common.log("another start/stop runs on %s: waiting" %
                       common.HOME)
            fcntl.flock(self.f, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        self.f.close()
