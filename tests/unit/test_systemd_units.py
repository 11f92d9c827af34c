# SPDX-License-Identifier: GPL-3.0-or-later
"""The systemd units and cron file in extensions/systemd (schedules without AWX) are valid.

``systemd-analyze verify`` checks the unit files as systemd would load them. It
refuses a unit whose ExecStart binary does not exist, and this machine need not
have /usr/bin/ansible-playbook, so it checks copies whose ExecStart runs /bin/true
with the same arguments. It does not resolve User= (a missing osops user gives no
warning), so User= is checked here by value.
"""

from __future__ import annotations

import fnmatch
import os
import re
import shlex
import shutil
import subprocess

import pytest
import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
UNITS = os.path.join(REPO, "extensions", "systemd")
SERVICES = {
    "osops-lease-cycle.service": ("osops.lifecycle.lease_cycle", "/etc/osops-lifecycle/lease-settings.yml"),
    "osops-imagecache-rollout.service": ("osops.lifecycle.imagecache_rollout", "/etc/osops-lifecycle/imagecache-settings.yml"),
}
TIMERS = {
    "osops-lease-cycle.timer": ("*-*-* 06:00:00", "15min"),
    "osops-imagecache-rollout.timer": ("hourly", "5min"),
}
CRON = os.path.join(UNITS, "osops-lifecycle.cron")
ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(
    ANALYZE is None, reason="systemd-analyze is not installed (Debian package systemd, see hack/apt-dev.txt)"
)


def unit_entries(name):
    """(section, key, value) of a unit file, in order; keys may repeat (Environment=)."""
    entries, section = [], None
    with open(os.path.join(UNITS, name)) as handle:
        for line in handle:
            line = line.strip()
            if not line or line[0] in "#;":
                continue
            if line.startswith("["):
                section = line.strip("[]")
                continue
            key, value = line.partition("=")[::2]
            entries.append((section, key.strip(), value.strip()))
    return entries


def values(name, section, key):
    return [v for s, k, v in unit_entries(name) if (s, k) == (section, key)]


def one(name, section, key):
    found = values(name, section, key)
    assert len(found) == 1, f"{name}: [{section}] {key}= {found}"
    return found[0]


def verify(directory, names):
    paths = [os.path.join(directory, name) for name in names]
    return subprocess.run(
        [ANALYZE, "verify", "--man=no", *paths], capture_output=True, text=True, cwd=directory, timeout=60, check=False
    )


def copies_running_true(tmp_path, edit=None):
    for name in [*SERVICES, *TIMERS]:
        with open(os.path.join(UNITS, name)) as handle:
            text = handle.read()
        text = re.sub(r"^ExecStart=/usr/bin/ansible-playbook ", "ExecStart=/bin/true ", text, flags=re.M)
        if edit:
            text = edit(name, text)
        (tmp_path / name).write_text(text)
    return [*SERVICES, *TIMERS]


def test_extensions_systemd_holds_the_units_and_the_cron_file():
    assert sorted(os.listdir(UNITS)) == sorted([*SERVICES, *TIMERS, "osops-lifecycle.cron"])


@needs_analyze
def test_systemd_analyze_verify_accepts_the_units_without_a_warning(tmp_path):
    names = copies_running_true(tmp_path)
    result = verify(tmp_path, names)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert not [line for line in output.splitlines() if "osops-" in line], output


@needs_analyze
def test_verify_would_report_a_misspelt_key(tmp_path):
    # the check above bites: an unknown key is a warning (exit code 0), which it refuses
    def misspell(name, text):
        return text.replace("Type=oneshot", "Tpye=oneshot") if name == "osops-lease-cycle.service" else text

    result = verify(tmp_path, copies_running_true(tmp_path, misspell))
    assert "Unknown key" in result.stdout + result.stderr and "osops-lease-cycle.service" in result.stderr


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_service_is_a_hardened_oneshot_run_as_osops(name):
    playbook, settings = SERVICES[name]
    assert one(name, "Service", "Type") == "oneshot"
    assert one(name, "Service", "User") == "osops"
    assert one(name, "Service", "EnvironmentFile") == "-/etc/osops-lifecycle/env"
    assert one(name, "Service", "WorkingDirectory") == "/etc/osops-lifecycle"
    argv = shlex.split(one(name, "Service", "ExecStart"))
    assert argv == ["/usr/bin/ansible-playbook", "-i", "/etc/osops-lifecycle/inventory", "-e", f"@{settings}", playbook]
    # ansible's home (temp files, collections) is in the state directory, writable under ProtectSystem
    assert one(name, "Service", "StateDirectory") == "osops-lifecycle"
    assert "ANSIBLE_HOME=/var/lib/osops-lifecycle/.ansible" in values(name, "Service", "Environment")
    for key, value in {"NoNewPrivileges": "yes", "PrivateTmp": "yes", "ProtectSystem": "full", "ProtectHome": "yes"}.items():
        assert one(name, "Service", key) == value, key
    assert re.fullmatch(r"\d+(min|h)", one(name, "Service", "TimeoutStartSec"))


@pytest.mark.parametrize("name", sorted(TIMERS))
def test_timer_names_its_service_and_catches_up_missed_runs(name):
    calendar, delay = TIMERS[name]
    assert one(name, "Timer", "Unit") == name.replace(".timer", ".service")
    assert name.replace(".timer", ".service") in SERVICES
    assert one(name, "Timer", "OnCalendar") == calendar
    assert one(name, "Timer", "RandomizedDelaySec") == delay
    assert one(name, "Timer", "Persistent") == "true"
    assert one(name, "Install", "WantedBy") == "timers.target"


@needs_analyze
@pytest.mark.parametrize("name", sorted(TIMERS))
def test_oncalendar_parses(name):
    result = subprocess.run(
        [ANALYZE, "calendar", one(name, "Timer", "OnCalendar")], capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "Next elapse:" in result.stdout


def cron_jobs():
    jobs = []
    with open(CRON) as handle:
        for line in handle:
            line = line.strip()
            if not line or line.startswith("#") or re.match(r"^[A-Z_]+=", line):
                continue
            jobs.append(line)
    return jobs


def test_cron_file_runs_both_playbooks_as_osops_under_flock():
    jobs = cron_jobs()
    assert len(jobs) == 2
    when = {}
    for job in jobs:
        # /etc/cron.d: 5 time fields, the user, the command
        fields = job.split(None, 6)
        assert len(fields) == 7, job
        assert all(re.fullmatch(r"[0-9*/,-]+", field) for field in fields[:5]), job
        assert fields[5] == "osops"
        command = fields[6]
        assert "/usr/bin/flock -n " in command
        assert "%" not in command  # cron turns % into a newline
        # the shell parses the command, and what flock runs
        assert subprocess.run(["sh", "-n", "-c", command], timeout=30, check=False).returncode == 0
        inner = shlex.split(command.split("/bin/sh -c ", 1)[1])[0]
        assert subprocess.run(["sh", "-n", "-c", inner], timeout=30, check=False).returncode == 0
        assert ". /etc/osops-lifecycle/env" in inner
        for playbook, settings in SERVICES.values():
            if inner.endswith(" " + playbook):
                assert f"exec /usr/bin/ansible-playbook -i /etc/osops-lifecycle/inventory -e @{settings} {playbook}" in inner
                when[playbook] = fields[:5]
    assert when == {
        "osops.lifecycle.lease_cycle": ["0", "6", "*", "*", "*"],
        "osops.lifecycle.imagecache_rollout": ["0", "*", "*", "*", "*"],
    }
    # two locks: the jobs may run side by side, never twice each
    locks = [re.search(r"flock -n (\S+)", job).group(1) for job in jobs]
    assert len(set(locks)) == 2


def test_the_unit_files_ship_in_the_built_collection():
    # ansible-galaxy collection build skips a path when build_ignore matches it or a folder above it
    with open(os.path.join(REPO, "galaxy.yml")) as handle:
        ignore = yaml.safe_load(handle)["build_ignore"]
    for name in os.listdir(UNITS):
        path = f"extensions/systemd/{name}"
        parents = ["extensions", "extensions/systemd", path]
        assert not [(p, pattern) for p in parents for pattern in ignore if fnmatch.fnmatch(p, pattern)]
