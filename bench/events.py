# Copyright: osops.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Benchmark: how soon the cloud's changes take effect, event-driven vs scheduled, side by side in one run.

Baseline: the scheduled jobs (osops.lifecycle.imagecache_rollout hourly, lease_scan daily, and the original
cron script's 10 s loop). A scheduled job's latency is the wait for its next run (uniform over the period)
plus the run itself; the run is measured here, on the same cloud and nodes, right after the event path.

  image     Glance's image.activate (as it reaches a queue of our own) -> the base file is a hard link of
            Glance's file on every one of the three SSH test nodes (the imagecache rulebook)
  server    Nova's compute.instance.create.end -> the lease is written (leases rulebook); Nova refuses metadata
            while a server builds, so the lease cannot come earlier; also printed from the create call
  request   an owner writes lease_extend on a server -> the request is granted

Needs the local cloud (hack/localcloud/start) and the SSH test nodes (hack/nodes/up 3), as the
eda_rulebooks target does. Run:  . hack/lib.sh && enter_dev_env && python bench/events.py [--rounds 10]
Prints p50/p95 per path and the ratios; see docs/performance.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tests", "integration", "targets", "setup_eda"))
import eda_rig  # noqa: E402  pylint: disable=wrong-import-position

LOCALCLOUD = os.environ.get("OSOPS_LOCALCLOUD_HOME", os.path.join(REPO, ".localcloud"))
NODES = os.environ.get("OSOPS_NODES_HOME", os.path.join(REPO, ".nodes"))
SEAL_KEY = os.path.join(REPO, ".test-state", "lease-seal.key")
HOUR, DAY = 3600.0, 86400.0


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * (len(ordered) - 1))))]


def scheduled(period: float, run: float, share: float) -> float:
    """The share-quantile of a scheduled job's latency: waiting for the next run (uniform) plus the run."""
    return share * period + run


def seal_key() -> str:
    if not os.path.exists(SEAL_KEY):
        os.makedirs(os.path.dirname(SEAL_KEY), exist_ok=True)
        with os.fdopen(os.open(SEAL_KEY, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as handle:
            handle.write("bench %s\n" % os.urandom(33).hex())
    return SEAL_KEY


class Bench:
    def __init__(self, rounds: int):
        import openstack

        os.environ["OS_CLIENT_CONFIG_FILE"] = os.path.join(LOCALCLOUD, "clouds.yaml")
        self.conn = openstack.connect(cloud="admin")
        with open(os.path.join(LOCALCLOUD, "notifications.url")) as handle:
            self.url = handle.read().strip()
        self.rounds = rounds
        self.work = tempfile.mkdtemp(prefix="bench-events-")
        self.nodes_inventory = os.path.join(NODES, "inventory.ini")
        self.glance = os.path.join(LOCALCLOUD, "glance", "images")
        self.roots = eda_rig.node_roots(self.nodes_inventory)
        self.images: list[str] = []
        self.servers: list[str] = []

    def linked(self, image_id: str) -> bool:
        try:
            inode = os.stat(os.path.join(self.glance, image_id)).st_ino
            return all(os.stat(path).st_ino == inode for path in eda_rig.base_files(self.roots, image_id).values())
        except FileNotFoundError:
            return False

    def image_path(self) -> tuple[list[float], float]:
        inventory = eda_rig.imagecache_inventory(os.path.join(self.work, "imagecache"), self.nodes_inventory, self.glance)
        listener = eda_rig.Listener(self.url, event_types=["image.activate"])
        rulebook = eda_rig.Rulebook("imagecache", inventory, self.url, "osops-lifecycle-imagecache")
        latencies = []
        try:
            rulebook.wait_ready()
            time.sleep(2)  # the listener's queue too
            for index in range(self.rounds):
                image = self.conn.image.create_image(name="bench-events-%d" % index, disk_format="raw",
                                                     container_format="bare", visibility="private",
                                                     data=os.urandom(1 << 20))
                self.images.append(image.id)
                eda_rig.wait_until(lambda: self.linked(image.id), 120, 0.02)
                done = time.monotonic()
                activated = listener.wait(eda_rig.about("image.activate", image.id), 10)
                latencies.append(done - activated[0])
                time.sleep(2)  # let the rollout end: each upload is its own event
        finally:
            rulebook.stop()
            listener.stop()
        started = time.monotonic()
        subprocess.run(["ansible-playbook", "-i", inventory, "osops.lifecycle.imagecache_rollout"], check=True,
                       stdout=subprocess.DEVNULL)
        return latencies, time.monotonic() - started

    def lease_paths(self) -> tuple[list[float], list[float], list[float], float]:
        settings = {"lease_cloud": "admin", "lease_seal_key_file": seal_key(), "lease_policy": {"lifetime_days": 30}}
        inventory = eda_rig.lease_inventory(os.path.join(self.work, "leases"), settings)
        rulebook = eda_rig.Rulebook("leases", inventory, self.url, "osops-lifecycle-leases")
        image = self.conn.image.find_image("localcloud-tiny")
        flavor = self.conn.compute.find_flavor("m1.nano")
        network = self.conn.network.find_network("localcloud-net")
        created, built, requested = [], [], []
        listener = eda_rig.Listener(self.url, event_types=["compute.instance.create.end"])
        try:
            rulebook.wait_ready()
            time.sleep(2)  # the listener's queue too
            for index in range(self.rounds):
                started = time.monotonic()
                server = self.conn.compute.create_server(name="bench-events-%d" % index, image_id=image.id,
                                                         flavor_id=flavor.id, networks=[{"uuid": network.id}])
                self.servers.append(server.id)

                def metadata(server_id=server.id) -> dict:
                    return self.conn.compute.get_server_metadata(server_id).metadata or {}

                eda_rig.wait_until(lambda: "lease_expires" in metadata(), 120, 0.1)
                leased = time.monotonic()
                created.append(leased - started)
                built.append(leased - listener.wait(eda_rig.about("compute.instance.create.end", server.id), 10)[0])
                time.sleep(1)
                started = time.monotonic()
                self.conn.compute.set_server_metadata(server.id, lease_extend="5")
                eda_rig.wait_until(lambda: "lease_extend" not in metadata(), 120, 0.1)
                requested.append(time.monotonic() - started)
                time.sleep(2)  # let the run end: each event is measured on its own
        finally:
            rulebook.stop()
            listener.stop()
        started = time.monotonic()
        variables = os.path.join(self.work, "lease-vars.json")
        with open(variables, "w") as handle:
            json.dump(settings, handle)
        subprocess.run(["ansible-playbook", "osops.lifecycle.lease_scan", "-e", "@" + variables], check=True,
                       stdout=subprocess.DEVNULL)
        return built, created, requested, time.monotonic() - started

    def clean(self) -> None:
        for server_id in self.servers:
            self.conn.compute.delete_server(server_id, ignore_missing=True)
        for image_id in self.images:
            self.conn.image.delete_image(image_id, ignore_missing=True)
            for path in eda_rig.base_files(self.roots, image_id).values():
                if os.path.lexists(path):
                    os.unlink(path)


def report(name: str, event: list[float], baselines: list[tuple[str, float, float]]) -> None:
    p50, p95 = statistics.median(event), percentile(event, 0.95)
    print("%-8s event-driven   p50 %7.2f s   p95 %7.2f s   (n=%d, max %.2f s)" % (name, p50, p95, len(event), max(event)))
    for label, period, run in baselines:
        s50, s95 = scheduled(period, run, 0.5), scheduled(period, run, 0.95)
        print("%-8s %-14s p50 %7.0f s   p95 %7.0f s   (run %.1f s)   event/scheduled p95 = %.4fx" % (
            "", label, s50, s95, run, p95 / s95))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--only", choices=["image", "lease"], help="one path only")
    args = parser.parse_args()
    bench = Bench(args.rounds)
    print("baseline: the scheduled jobs (hourly rollout, daily lease scan, the original 10 s cron loop); "
          "%d rounds, 3 SSH nodes, local cloud on loopback" % args.rounds)
    try:
        if args.only != "lease":
            image_latencies, rollout_run = bench.image_path()
            report("image", image_latencies, [("cron 10 s", 10, rollout_run), ("hourly", HOUR, rollout_run)])
        if args.only != "image":
            built, created, requested, scan_run = bench.lease_paths()
            report("server", built, [("daily scan", DAY, scan_run)])
            report("(call)", created, [])
            report("request", requested, [("daily scan", DAY, scan_run)])
    finally:
        bench.clean()
    return 0


if __name__ == "__main__":
    sys.exit(main())
