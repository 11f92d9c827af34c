# Copyright: osops.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The shipped rulebooks, run by ansible-rulebook against the local cloud and the three SSH test nodes.

Rows (each prints PASS or FAIL and why):
- link_one: a new image is a hard link of Glance's file in every node's _base, from one rollout.
- burst: three images uploaded at once are linked on every node by fewer rollouts than images; one image
  announced three times (activate and two property updates) is one rollout; rollouts never overlap.
- delete_prunes: a deleted image's base files go from every node; another image's stay.
- forged_delete: an image.delete published for an image Glance still has (as a compromised host holding
  RabbitMQ credentials could) runs a prune that removes nothing: Glance, not the announcement, decides.
- lease_enrol: a new server, volume, snapshot and image get their lease from the leases rulebook within
  seconds; an exempt volume gets none.
- lease_request: an owner's lease_extend on a server (Nova's compute.instance.update) and on an image
  (Glance's image.update) is granted within seconds.
- safety_net: events while the rulebook is stopped wait in its queue and are handled when it starts again;
  with the queue gone, the scheduled rollout (osops.lifecycle.imagecache_rollout) links what was missed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid

import openstack

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "setup_eda"))
import eda_rig  # noqa: E402  pylint: disable=wrong-import-position

ROLLOUT_START = r"^PLAY \[Image cache rollout for one event\]"
RUN_END = r"^PLAY RECAP"
LEASE_START = r"^PLAY \[Lease of the resource an event names\]"
IMAGECACHE_QUEUE, LEASES_QUEUE = "osops-lifecycle-imagecache", "osops-lifecycle-leases"


class Rows:
    def __init__(self, config: dict):
        self.config = config
        os.environ["OS_CLIENT_CONFIG_FILE"] = config["localcloud_clouds_yaml"]
        self.conn = openstack.connect(cloud="admin")
        with open(config["localcloud_notifications_url_file"]) as handle:
            self.url = handle.read().strip()
        self.work = tempfile.mkdtemp(prefix="eda-rulebooks-")
        self.roots = eda_rig.node_roots(config["nodes_inventory"])
        self.inventory = eda_rig.imagecache_inventory(os.path.join(self.work, "imagecache"), config["nodes_inventory"],
                                                      config["localcloud_glance_images"])
        self.lease_inventory = eda_rig.lease_inventory(os.path.join(self.work, "leases"), {
            "lease_cloud": "admin", "lease_seal_key_file": config["lease_seal_key_file"],
            "lease_policy": {"lifetime_days": 30, "exempt_names": ["*-keep"]}})
        self.images: list[str] = []
        self.cleanup: list[tuple[str, str]] = []
        self.imagecache: eda_rig.Rulebook | None = None

    # --- helpers -------------------------------------------------------------------------------------------

    def cache_rulebook(self, fresh: bool = True) -> eda_rig.Rulebook:
        if self.imagecache is None or self.imagecache.process.poll() is not None:
            self.imagecache = eda_rig.Rulebook("imagecache", self.inventory, self.url, IMAGECACHE_QUEUE, fresh=fresh)
            self.imagecache.wait_ready()
        return self.imagecache

    def upload(self, name: str):
        image = self.conn.image.create_image(name="%s-%s" % (eda_rig.TAG, name), disk_format="raw",
                                             container_format="bare", visibility="private", data=os.urandom(1 << 20))
        self.cleanup.append(("image", image.id))
        return image

    def linked_everywhere(self, image_id: str) -> bool:
        """Every node's base file is Glance's own file (one inode), not a copy."""
        source = os.path.join(self.config["localcloud_glance_images"], image_id)
        try:
            glance = os.stat(source)
            return all(os.stat(path).st_ino == glance.st_ino for path in eda_rig.base_files(self.roots, image_id).values())
        except FileNotFoundError:
            return False

    def nowhere(self, image_id: str) -> bool:
        return not any(os.path.exists(path) for path in eda_rig.base_files(self.roots, image_id).values())

    def wait_linked(self, image_id: str, timeout: float = 90) -> float:
        waited = eda_rig.wait_until(lambda: self.linked_everywhere(image_id), timeout)
        assert waited is not None, "image %s is not linked on every node after %ss:\n%s" % (
            image_id, timeout, self.imagecache.output()[-3000:])
        return waited

    def settled(self, rulebook: eda_rig.Rulebook, start: str, timeout: float = 90) -> int:
        """Wait until every run the rulebook started has ended; the number of runs so far."""
        time.sleep(1.5)  # a debounce window
        ended = eda_rig.wait_until(lambda: rulebook.count(start) == rulebook.count(RUN_END), timeout, 0.2)
        assert ended is not None, "a run of the rulebook did not end:\n%s" % rulebook.output()[-3000:]
        return rulebook.count(start)

    # --- image cache -----------------------------------------------------------------------------------------

    def link_one(self) -> str:
        rulebook = self.cache_rulebook()
        before = rulebook.count(ROLLOUT_START)
        image = self.upload("one")
        waited = self.wait_linked(image.id)
        runs = self.settled(rulebook, ROLLOUT_START) - before
        assert runs == 1, "%d rollouts for one new image" % runs
        self.images.append(image.id)
        return "hard links of Glance's file on %d nodes %.1fs after the upload returned, from 1 rollout" % (
            len(self.roots), waited)

    def burst(self) -> str:
        rulebook = self.cache_rulebook()
        before = self.settled(rulebook, ROLLOUT_START)
        uploaded: list = []
        threads = [threading.Thread(target=lambda n=n: uploaded.append(self.upload("burst%d" % n))) for n in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for image in uploaded:
            self.wait_linked(image.id)
        burst_runs = self.settled(rulebook, ROLLOUT_START) - before
        assert 1 <= burst_runs < 3, "%d rollouts for a burst of 3 uploads" % burst_runs
        # one image announced three times within the window: image.activate, then two image.update (active)
        image = self.upload("thrice")
        self.conn.image.update_image(image, osops_test="1")
        self.conn.image.update_image(image, osops_test="2")
        self.wait_linked(image.id)
        after = self.settled(rulebook, ROLLOUT_START)
        assert after - before - burst_runs == 1, "%d rollouts for one image announced 3 times" % (after - before - burst_runs)
        self.assert_no_overlap(rulebook)
        return "3 parallel uploads linked on every node by %d rollout(s); one image announced 3 times: 1 rollout; " \
               "%d rollouts so far, never two at once" % (burst_runs, after)

    @staticmethod
    def assert_no_overlap(rulebook: eda_rig.Rulebook) -> None:
        marks = [entry[1] for entry in rulebook.lines if entry[1].startswith(("PLAY [Image cache rollout", "PLAY RECAP"))]
        for first, second in zip(marks[::2], marks[1::2]):
            assert first.startswith("PLAY [Image cache rollout") and second.startswith("PLAY RECAP"), "two rollouts overlapped"

    def delete_prunes(self) -> str:
        rulebook = self.cache_rulebook()
        kept, gone = self.upload("kept"), self.upload("gone")
        self.wait_linked(kept.id)
        self.wait_linked(gone.id)
        self.settled(rulebook, ROLLOUT_START)
        self.conn.image.delete_image(gone.id)
        waited = eda_rig.wait_until(lambda: self.nowhere(gone.id), 90)
        assert waited is not None, "base files of deleted image %s still there" % gone.id
        self.settled(rulebook, ROLLOUT_START)
        assert self.linked_everywhere(kept.id), "the other image's base files went too"
        self.images.append(kept.id)
        return "the deleted image's base files left %d nodes %.1fs after the delete; the other image's stayed" % (
            len(self.roots), waited)

    def forged_delete(self) -> str:
        rulebook = self.cache_rulebook()
        image_id = self.images[0]
        before = self.settled(rulebook, ROLLOUT_START)
        message = {"message_id": str(uuid.uuid4()), "publisher_id": "image.localhost", "event_type": "image.delete",
                   "priority": "INFO", "timestamp": "2026-12-05 00:00:00.000000",
                   "payload": {"id": image_id, "status": "deleted", "deleted": True}}
        body = json.dumps({"oslo.version": "2.0", "oslo.message": json.dumps(message)}).encode()
        eda_rig.publish(self.url, "glance", "notifications.info", body)
        ran = eda_rig.wait_until(lambda: rulebook.count(ROLLOUT_START) > before, 30)
        assert ran is not None, "the rulebook never acted on the forged image.delete"
        self.settled(rulebook, ROLLOUT_START)
        assert self.linked_everywhere(image_id), "a forged image.delete removed base files of an active image"
        return "the forged image.delete ran a prune; Glance still has image %s, its base files stayed" % image_id

    def safety_net(self) -> str:
        rulebook = self.cache_rulebook()
        self.settled(rulebook, ROLLOUT_START)
        rulebook.stop(keep_queue=True)
        waiting = self.upload("while-down")
        time.sleep(3)
        assert not self.linked_everywhere(waiting.id), "linked although no rulebook ran"
        rulebook = self.cache_rulebook(fresh=False)
        caught_up = self.wait_linked(waiting.id)
        rulebook.stop()  # queue gone: what happens now is lost to the rulebook
        missed = self.upload("missed")
        self.imagecache = None
        subprocess.run(["ansible-playbook", "-i", self.inventory, "osops.lifecycle.imagecache_rollout"],
                       check=True, stdout=subprocess.DEVNULL, env=dict(os.environ, ANSIBLE_FORCE_COLOR="0"))
        assert self.linked_everywhere(missed.id), "the scheduled rollout did not link the missed image"
        return "an upload while stopped waited in the queue and was linked %.1fs after the restart; with the queue " \
               "gone, the scheduled rollout linked the missed image" % caught_up

    # --- leases -------------------------------------------------------------------------------------------------

    def lease_of(self, kind: str, resource_id: str) -> dict:
        if kind == "server":
            return dict(self.conn.compute.get_server_metadata(resource_id).metadata or {})
        if kind == "image":
            return dict(self.conn.image.get_image(resource_id).properties or {})
        storage = self.conn.block_storage
        found = storage.get_volume(resource_id) if kind == "volume" else storage.get_snapshot(resource_id)
        return dict(found.metadata or {})

    def new_resources(self) -> dict[str, str]:
        image = self.conn.image.find_image("localcloud-tiny")
        server = self.conn.compute.create_server(
            name="%s-lease" % eda_rig.TAG, image_id=image.id, flavor_id=self.conn.compute.find_flavor("m1.nano").id,
            networks=[{"uuid": self.conn.network.find_network("localcloud-net").id}])
        self.cleanup.append(("server", server.id))
        storage = self.conn.block_storage
        volume = storage.create_volume(size=1, name="%s-lease" % eda_rig.TAG)
        self.cleanup.append(("volume", volume.id))
        keep = storage.create_volume(size=1, name="%s-keep" % eda_rig.TAG)
        self.cleanup.append(("volume", keep.id))
        storage.wait_for_status(volume, "available", wait=120)
        snapshot = storage.create_snapshot(volume_id=volume.id, name="%s-lease" % eda_rig.TAG)
        self.cleanup.insert(0, ("snapshot", snapshot.id))
        new_image = self.upload("lease")
        return {"server": server.id, "volume": volume.id, "snapshot": snapshot.id, "image": new_image.id,
                "keep": keep.id}

    def leases_rulebook(self) -> eda_rig.Rulebook:
        rulebook = eda_rig.Rulebook("leases", self.lease_inventory, self.url, LEASES_QUEUE)
        rulebook.wait_ready()
        return rulebook

    def lease_enrol(self) -> str:
        rulebook = self.leases_rulebook()
        try:
            ids = self.new_resources()
            waited = {}
            for kind in ("server", "volume", "snapshot", "image"):
                waited[kind] = eda_rig.wait_until(lambda k=kind: "lease_expires" in self.lease_of(k, ids[k]), 120, 0.3)
                assert waited[kind] is not None, "no lease on the new %s:\n%s" % (kind, rulebook.output()[-3000:])
            self.settled(rulebook, LEASE_START)
            assert not any(key.startswith("lease_") for key in self.lease_of("volume", ids["keep"])), \
                "the exempt volume got a lease"
            self.lease_ids = ids
            return "leases present (waited for in turn after creating all four): %s; the exempt volume has none" % ", ".join(
                "%s %.1fs" % item for item in waited.items())
        finally:
            rulebook.stop()

    def lease_request(self) -> str:
        ids = getattr(self, "lease_ids", None) or self.new_resources()
        rulebook = self.leases_rulebook()
        try:
            said = []
            for kind in ("server", "image"):
                before = self.lease_of(kind, ids[kind])
                if kind == "server":
                    self.conn.compute.set_server_metadata(ids[kind], lease_extend="10")
                else:
                    self.conn.image.update_image(ids[kind], lease_extend="10")
                waited = eda_rig.wait_until(lambda k=kind: "lease_extend" not in self.lease_of(k, ids[k]), 60, 0.3)
                after = self.lease_of(kind, ids[kind])
                assert waited is not None and after.get("lease_extensions") == "1" and \
                    after["lease_expires"] > before["lease_expires"], "request on the %s not granted: %s\n%s" % (
                        kind, after, rulebook.output()[-3000:])
                said.append("%s %.1fs" % (kind, waited))
            return "extension requests granted (after the owner wrote them): %s" % ", ".join(said)
        finally:
            rulebook.stop()

    # --- cleanup ------------------------------------------------------------------------------------------------

    def clean(self) -> None:
        if self.imagecache is not None:
            self.imagecache.stop()
        for kind, rid in self.cleanup:
            try:
                if kind == "image":
                    self.conn.image.delete_image(rid, ignore_missing=True)
                elif kind == "server":
                    self.conn.compute.delete_server(rid, ignore_missing=True)
                elif kind == "snapshot":
                    self.conn.block_storage.delete_snapshot(rid, ignore_missing=True)
                    eda_rig.wait_until(lambda: self.conn.block_storage.find_snapshot(rid) is None, 60, 1)
                elif kind == "volume":
                    self.conn.block_storage.delete_volume(rid, ignore_missing=True)
            except Exception as error:  # pylint: disable=broad-except
                print("cleanup of %s %s: %s" % (kind, rid, error))
        for kind, rid in self.cleanup:
            if kind == "image":
                for path in eda_rig.base_files(self.roots, rid).values():
                    if os.path.lexists(path):
                        os.unlink(path)


ROWS = ("link_one", "burst", "delete_prunes", "forged_delete", "lease_enrol", "lease_request", "safety_net")


def main() -> int:
    return eda_rig.run_rows(Rows, ROWS)


if __name__ == "__main__":
    sys.exit(main())
