# SPDX-License-Identifier: GPL-3.0-or-later
"""Benchmark: reaping N expired servers, and scanning a large estate, on the local cloud.

Part 1, reap N expired servers (each contender gets its own project of N fresh servers):
  module    osops.lifecycle.lease_reap reap=true (one task; leases set beforehand)
  loop      the baseline an operator writes today: openstack.cloud.server_info, then
            openstack.cloud.server state=absent in a loop (one task per server)
  cleanup   `openstack project cleanup --project P --auto-approve` (openstacksdk's project cleanup)
Part 2, scan: lease_reap in check mode over M extra images plus every server and volume;
  prints API calls and seconds per 1,000 resources.

Run:  . hack/lib.sh && enter_dev_env && hack/localcloud/start &&
      python bench/leases.py [--servers 200] [--images 5000] [--skip loop]
Prints wall-clock seconds and ratios; see docs/performance.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

import openstack

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HOME = os.environ.get("OSOPS_LOCALCLOUD_HOME", os.path.join(REPO, ".localcloud"))
CLOUDS = os.path.join(HOME, "clouds.yaml")
OPENSTACK_CLI = os.path.join(HOME, "venv", "bin", "openstack")
UTC = timezone.utc


def log(message: str) -> None:
    print("[bench %s] %s" % (time.strftime("%H:%M:%S"), message), flush=True)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def make_project(admin, name: str):
    project = admin.identity.create_project(name=name, domain_id="default", description="bench/leases.py")
    role = admin.identity.find_role("admin")
    user = admin.identity.find_user("admin", domain_id="default")
    admin.identity.assign_project_role_to_user(project, user, role)
    return project


def boot(admin, project, count: int, workers: int) -> list[str]:
    """N servers in the project, all ACTIVE; returns their ids."""
    scoped = admin.connect_as_project({"id": project.id})  # an id string is taken for a name
    image = admin.image.find_image("localcloud-tiny")
    flavor = admin.compute.find_flavor("m1.nano")
    network = admin.network.find_network("localcloud-net")
    names = ["bench-%s-%04d" % (project.name, index) for index in range(count)]

    def create(name):
        return scoped.compute.create_server(name=name, image_id=image.id, flavor_id=flavor.id,
                                            networks=[{"uuid": network.id}]).id

    with ThreadPoolExecutor(max_workers=workers) as pool:
        ids = list(pool.map(create, names))
    deadline = time.monotonic() + 60 + count * 3
    while time.monotonic() < deadline:
        servers = list(admin.compute.servers(all_projects=True, project_id=project.id))
        states = [s.status for s in servers]
        if states.count("ACTIVE") == count:
            return ids
        if "ERROR" in states:
            raise SystemExit("a benchmark server went to ERROR; see .localcloud/log/nova-*.log")
        time.sleep(2)
    raise SystemExit("servers not ACTIVE in time")


def seal_key_file() -> str:
    """A seal key for the benchmark's leases (mode 0600), as an operator keeps one."""
    path = os.path.join(tempfile.mkdtemp(prefix="osops-bench-"), "seal.key")
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write("bench %s\n" % os.urandom(33).hex())
    return path


SEAL_KEY = seal_key_file()


def expire_and_notify(admin, ids: list[str], workers: int) -> None:
    """Sealed leases that expired two days ago, the owner told three days ago (set before the clock starts)."""
    sys.path.insert(0, os.path.join(REPO, ".venv", "collections"))
    from ansible_collections.osops.lifecycle.plugins.module_utils._lease import keys, policy, seal, trust

    expires = datetime.now(UTC) - timedelta(days=2)
    notice = keys.Notice(1, expires - timedelta(days=1), expires)
    sealing = trust.SealContext(seal.load_keyring(SEAL_KEY), keys.LeaseKeys(), policy.Policy(), datetime.now(UTC))

    def write(server_id):
        values = trust.sealed_values(sealing, "server", server_id, keys.LeaseRecord(expires, notice))
        admin.compute.set_server_metadata(server_id, **values)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(write, ids))


def playbook(tasks: list[dict]) -> str:
    handle = tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False)
    json.dump([{"hosts": "localhost", "gather_facts": False, "tasks": tasks}], handle)
    handle.close()
    return handle.name


def run_playbook(path: str, extra: dict | None = None) -> tuple[float, dict]:
    env = dict(os.environ, OS_CLIENT_CONFIG_FILE=CLOUDS, ANSIBLE_STDOUT_CALLBACK="json",
               ANSIBLE_COLLECTIONS_PATH=os.path.join(REPO, ".venv", "collections"))
    cmd = ["ansible-playbook", "-i", "localhost,", "-c", "local", path,
           "-e", "ansible_python_interpreter=%s" % sys.executable]
    if extra:
        cmd += ["-e", json.dumps(extra)]
    started = time.monotonic()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    seconds = time.monotonic() - started
    if proc.returncode != 0:
        raise SystemExit("playbook failed (%d):\n%s\n%s" % (proc.returncode, proc.stdout[-3000:], proc.stderr[-2000:]))
    return seconds, json.loads(proc.stdout)


def task_result(output: dict, index: int) -> dict:
    return output["plays"][0]["tasks"][index]["hosts"]["localhost"]


REAP_WORKERS: int | None = None  # --reap-workers; None: the module's default


def reap_module(project, count: int) -> None:
    options = {"cloud": "admin", "reap": True, "kinds": ["server"], "projects": [project.id],
               "max_remove": count, "max_remove_percent": 100, "seal_key_file": SEAL_KEY}
    if REAP_WORKERS:
        options["workers"] = REAP_WORKERS
    path = playbook([{"name": "reap", "osops.lifecycle.lease_reap": options, "register": "reaped"}])
    _seconds, output = run_playbook(path)
    removed = task_result(output, 0)["removed"]
    bad = [r for r in removed if r["outcome"] != "removed"]
    if len(removed) != count or bad:
        raise SystemExit("module removed %d of %d: %s" % (len(removed) - len(bad), count, bad[:3]))


def reap_loop(project, count: int) -> None:
    path = playbook([
        {"name": "list", "register": "found", "openstack.cloud.server_info": {
            "cloud": "admin", "all_projects": True, "filters": {"project_id": project.id}}},
        {"name": "delete", "openstack.cloud.server": {"cloud": "admin", "name": "{{ item.id }}", "state": "absent"},
         "loop": "{{ found.servers }}", "loop_control": {"label": "{{ item.name }}"}},
    ])
    run_playbook(path)


def reap_cleanup(project, count: int) -> None:
    env = dict(os.environ, OS_CLIENT_CONFIG_FILE=CLOUDS, OS_CLOUD="admin")
    proc = subprocess.run([OPENSTACK_CLI, "project", "cleanup", "--project", project.id, "--auto-approve"],
                          env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit("project cleanup failed:\n%s" % proc.stderr[-2000:])


def remaining(admin, project) -> int:
    return len(list(admin.compute.servers(all_projects=True, project_id=project.id)))


def part_reap(admin, args) -> dict:
    contenders = [("module", reap_module), ("loop", reap_loop), ("cleanup", reap_cleanup)]
    results = {}
    tag = uuid.uuid4().hex[:6]
    for name, reap in contenders:
        if name in args.skip:
            continue
        project = make_project(admin, "bench%s-%s" % (tag, name))
        try:
            log("%s: booting %d servers" % (name, args.servers))
            ids = boot(admin, project, args.servers, args.workers)
            if name == "module":
                expire_and_notify(admin, ids, args.workers)
            log("%s: reaping" % name)
            started = time.monotonic()
            reap(project, args.servers)
            returned = time.monotonic() - started
            # done means gone: a contender that returns before Nova has finished is timed until it has
            while remaining(admin, project) and time.monotonic() - started < 600:
                time.sleep(0.5)
            seconds = time.monotonic() - started
            left = remaining(admin, project)
            results[name] = seconds
            log("%s: returned after %.1f s, all gone after %.1f s, %d left" % (name, returned, seconds, left))
            if left:
                raise SystemExit("%s left %d servers" % (name, left))
        finally:
            for server in admin.compute.servers(all_projects=True, project_id=project.id):
                admin.compute.delete_server(server.id)
            admin.identity.delete_project(project.id)
    return results


def part_scan(admin, args) -> dict:
    tag = uuid.uuid4().hex[:6]
    log("scan: creating %d images" % args.images)

    def create(index):
        return admin.image.create_image(name="bench%s-%05d" % (tag, index), disk_format="raw",
                                        container_format="bare", visibility="private", allow_duplicates=True).id

    with ThreadPoolExecutor(max_workers=args.workers) as pool:
        ids = list(pool.map(create, range(args.images)))
    try:
        path = playbook([{"name": "scan", "osops.lifecycle.lease_reap": {"cloud": "admin", "seal_key_file": SEAL_KEY},
                          "check_mode": True, "register": "scan"}])
        runs = []
        for _round in range(3):
            seconds, output = run_playbook(path)
            result = task_result(output, 0)
            runs.append((seconds, result["stats"]))
        runs.sort(key=lambda run: run[0])
        seconds, stats = runs[1]
        return {"wall_seconds": seconds, **stats}
    finally:
        log("scan: deleting the images")
        with ThreadPoolExecutor(max_workers=args.workers) as pool:
            list(pool.map(admin.image.delete_image, ids))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--servers", type=int, default=200)
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--workers", type=int, default=8, help="parallel API calls when building the input")
    parser.add_argument("--reap-workers", type=int, help="lease_reap's workers (default: the module's default)")
    parser.add_argument("--skip", action="append", default=[], choices=["module", "loop", "cleanup", "scan"])
    args = parser.parse_args()
    global REAP_WORKERS  # pylint: disable=global-statement
    REAP_WORKERS = args.reap_workers
    if not os.path.exists(CLOUDS):
        raise SystemExit("no local cloud: run hack/localcloud/start first")
    os.environ["OS_CLIENT_CONFIG_FILE"] = CLOUDS
    admin = openstack.connect(cloud="admin")
    print("baseline: openstack.cloud.server_info + openstack.cloud.server state=absent in a loop; "
          "and `openstack project cleanup`")
    reap = part_reap(admin, args)
    if reap:
        print("\nreap %d expired servers (wall clock, one run each):" % args.servers)
        for name, seconds in reap.items():
            print("  %-8s %8.1f s  %6.2f s/server" % (name, seconds, seconds / args.servers))
        if "module" in reap:
            for name in ("loop", "cleanup"):
                if name in reap:
                    print("  %s / module = %.1fx" % (name, reap[name] / reap["module"]))
    if "scan" not in args.skip:
        scan = part_scan(admin, args)
        per_thousand = scan["seconds"] * 1000.0 / scan["scanned"]
        print("\nscan (check mode, every kind, median of 3): %d resources, %d API calls, %.2f s in the module "
              "(%.2f s wall), %.2f s and %.1f API calls per 1,000 resources" % (
                  scan["scanned"], scan["api_calls"], scan["seconds"], scan["wall_seconds"], per_thousand,
                  scan["api_calls"] * 1000.0 / scan["scanned"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
