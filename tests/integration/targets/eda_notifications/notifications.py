# SPDX-License-Identifier: GPL-3.0-or-later
"""The event source plugin against real services: what a rulebook would receive, and when.

Rows (each prints PASS or FAIL and why):
- own_queue: two plugins with their own queues both get Glance's image.activate for a new image, and the
  services' shared notifications.info queue still gets it too (nothing is taken from other readers).
- lifecycle_events: a server, a volume and a snapshot created as a project member give
  compute.instance.create.end, volume.create.end and snapshot.create.end naming the resource.
- malformed: garbage, a half envelope and a notification without event_type published on the exchange are
  dropped with a warning; the plugin keeps running and delivers the next real notification.
- event_filter: only the event types asked for reach the queue.
- rulebook: ansible-rulebook loads the plugin from the installed collection and a rule fires on a new image.
- broker_restart: RabbitMQ is stopped and started again; the plugin reconnects with backoff and a new
  image after the restart reaches it.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from types import SimpleNamespace

import openstack

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "setup_eda"))
from eda_rig import TAG, Listener, about, publish, queue_messages, run_rows, source  # noqa: E402  pylint: disable=wrong-import-position


def new_image(conn, name: str):
    return conn.image.create_image(name="%s-%s" % (TAG, name), disk_format="raw", container_format="bare",
                                   visibility="private", data=os.urandom(4096))


class Rows:
    def __init__(self, config: dict):
        self.config = config
        with open(config["localcloud_notifications_url_file"]) as handle:
            self.url = handle.read().strip()
        os.environ["OS_CLIENT_CONFIG_FILE"] = config["localcloud_clouds_yaml"]
        self.conn = openstack.connect(cloud="admin")
        self.cleanup: list = []

    def wait_connected(self, listener: Listener, timeout: float = 30) -> None:
        """Until the listener's queue exists on the broker (it declares it once connected)."""
        deadline = time.monotonic() + timeout
        while queue_messages(self.url, listener.args["queue"]) is None:
            if time.monotonic() > deadline:
                raise AssertionError("the plugin did not connect within %ds" % timeout)
            time.sleep(0.2)

    def own_queue(self) -> str:
        first, second = Listener(self.url), Listener(self.url)
        try:
            self.wait_connected(first)
            self.wait_connected(second)
            shared_before = queue_messages(self.url, "notifications.info")
            image = new_image(self.conn, "own-queue")
            self.cleanup.append(("image", image.id))
            got = [listener.wait(about("image.activate", image.id)) for listener in (first, second)]
            assert all(got), "image.activate reached %d of 2 own queues" % sum(1 for g in got if g)
            shared_after = queue_messages(self.url, "notifications.info")
            assert shared_before is not None and shared_after > shared_before, (
                "the services' own notifications.info queue did not keep its copy (%s -> %s)"
                % (shared_before, shared_after))
            return "both own queues got image.activate for %s; notifications.info still holds its copy (%d -> %d)" % (
                image.id, shared_before, shared_after)
        finally:
            first.stop()
            second.stop()

    def lifecycle_events(self) -> str:
        listener = Listener(self.url)
        try:
            self.wait_connected(listener)
            server = self.boot("srv")
            volume = self.conn.block_storage.create_volume(name=TAG + "-vol", size=1)
            self.cleanup.append(("volume", volume.id))
            self.conn.block_storage.wait_for_status(volume, "available", failures=["error"], wait=120, interval=1)
            snapshot = self.conn.block_storage.create_snapshot(volume_id=volume.id, name=TAG + "-snap")
            self.cleanup.insert(0, ("snapshot", snapshot.id))
            missing = [what for what, event_type, rid in (
                ("server", "compute.instance.create.end", server.id), ("volume", "volume.create.end", volume.id),
                ("snapshot", "snapshot.create.end", snapshot.id))
                if not listener.wait(about(event_type, rid), 120)]
            assert not missing, "no create event for: %s (got %s)" % (
                ", ".join(missing), sorted({e["event_type"] for _t, e in listener.events}))
            return "server, volume and snapshot each announced with their id"
        finally:
            listener.stop()

    def malformed(self) -> str:
        listener = Listener(self.url, exchanges=["glance"])
        warnings = []
        handler = logging.Handler()
        handler.emit = lambda record: warnings.append(record.getMessage())
        source.LOG.addHandler(handler)
        try:
            self.wait_connected(listener)
            for body in (b"\x00garbage", json.dumps({"oslo.version": "2.0", "oslo.message": "{"}).encode(),
                         json.dumps({"oslo.version": "2.0", "oslo.message": json.dumps({"payload": {}})}).encode()):
                publish(self.url, "glance", "notifications.info", body)
            image = new_image(self.conn, "after-garbage")
            self.cleanup.append(("image", image.id))
            assert listener.wait(about("image.activate", image.id)), "no event after the malformed messages"
            dropped = [w for w in warnings if "dropped a message" in w]
            assert len(dropped) == 3, "expected 3 dropped-message warnings, got %r" % warnings
            return "3 malformed messages dropped with a warning each; the next image.activate arrived"
        finally:
            source.LOG.removeHandler(handler)
            listener.stop()

    def event_filter(self) -> str:
        listener = Listener(self.url, event_types=["image.delete"])
        try:
            self.wait_connected(listener)
            image = new_image(self.conn, "filtered")
            self.conn.image.delete_image(image.id)
            assert listener.wait(about("image.delete", image.id)), "image.delete did not arrive"
            kinds = sorted({event["event_type"] for _t, event in listener.events})
            assert kinds == ["image.delete"], "events not asked for reached the queue: %s" % kinds
            return "only image.delete reached the queue"
        finally:
            listener.stop()

    def broker_restart(self) -> str:
        listener = Listener(self.url)
        localcloud = self.config["localcloud_bin"]
        try:
            self.wait_connected(listener)
            subprocess.run([os.path.join(localcloud, "stop"), "--service", "rabbitmq"], check=True)
            time.sleep(3)  # the plugin retries against a closed port meanwhile
            subprocess.run([os.path.join(localcloud, "start")], check=True, stdout=subprocess.DEVNULL)
            restarted = time.monotonic()
            self.wait_connected(listener, 60)
            image = new_image(self.conn, "after-restart")
            self.cleanup.append(("image", image.id))
            arrived = listener.wait(about("image.activate", image.id), 90)
            assert arrived, "no event after the broker restart"
            # the targets after this one share the cloud: go on only once Nova builds servers again
            # and announces them (its services reconnect to the broker on their own schedule)
            # until the computes report again, the scheduler counts them down (NoValidHost): boot until one builds
            deadline, server = time.monotonic() + 300, None
            while server is None and time.monotonic() < deadline:
                try:
                    server = self.conn.compute.wait_for_server(self.boot("after-restart"), status="ACTIVE",
                                                               failures=["ERROR"], wait=240, interval=1)
                except openstack.exceptions.ResourceFailure:
                    time.sleep(5)
            assert server, "Nova built no server within 300s of the restart"
            healthy = listener.wait(about("compute.instance.create.end", server.id), 60)
            volume = self.conn.block_storage.create_volume(name=TAG + "-after-restart", size=1)
            self.cleanup.append(("volume", volume.id))
            self.conn.block_storage.wait_for_status(volume, "available", failures=["error"], wait=180, interval=1)
            assert healthy, "Nova did not announce a server built after the restart (server %s; events: %s)" % (
                self.conn.compute.get_server(server.id).status,
                sorted({e["event_type"] for _t, e in listener.events if e["event_type"].startswith(("compute", "sch"))}))
            return "reconnected after the restart; image.activate of a new image arrived, and Nova built and " \
                   "announced a server %.0fs after the restart; Cinder built a volume" % (healthy[0] - restarted)
        finally:
            listener.stop()

    def boot(self, name: str):
        image = self.conn.image.find_image("localcloud-tiny")
        flavor = self.conn.compute.find_flavor("m1.nano")
        network = self.conn.network.find_network("localcloud-net")
        server = self.conn.compute.create_server(name="%s-%s" % (TAG, name), image_id=image.id, flavor_id=flavor.id,
                                                 networks=[{"uuid": network.id}])
        self.cleanup.append(("server", server.id))
        return server

    def rulebook(self) -> str:
        """ansible-rulebook (its Drools engine on Java) loads the plugin from the collection and fires a rule."""
        queue, name = TAG + "-rulebook", TAG + "-rulebook-image"
        variables = os.path.join(tempfile.mkdtemp(prefix=TAG), "vars.json")
        with open(variables, "w") as handle:
            json.dump({"amqp_url": self.url, "queue": queue, "image_name": name}, handle)
        started = time.monotonic()
        with subprocess.Popen(["ansible-rulebook", "--rulebook", os.path.join(HERE, "smoke_rulebook.yml"),
                               "--vars", variables],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as rulebook:
            try:
                deadline = time.monotonic() + 90
                while queue_messages(self.url, queue) is None:
                    assert rulebook.poll() is None, "ansible-rulebook ended early:\n%s" % rulebook.stdout.read()
                    assert time.monotonic() < deadline, "ansible-rulebook's source never connected"
                    time.sleep(0.5)
                ready = time.monotonic() - started
                image = self.conn.image.create_image(name=name, disk_format="raw", container_format="bare",
                                                     visibility="private", data=os.urandom(4096))
                self.cleanup.append(("image", image.id))
                output = rulebook.communicate(timeout=60)[0]
            finally:
                if rulebook.poll() is None:
                    rulebook.kill()
        assert rulebook.returncode == 0 and image.id in output and "'kind': 'image'" in output, (
            "ansible-rulebook (exit %s) did not print the event:\n%s" % (rulebook.returncode, output[-2000:]))
        return "ansible-rulebook connected in %.1fs and fired on image.activate of %s" % (ready, image.id)

    @staticmethod
    def settle(done, seconds: int = 60) -> None:
        deadline = time.monotonic() + seconds
        while not done() and time.monotonic() < deadline:
            time.sleep(1)

    def clean(self) -> None:
        for kind, rid in self.cleanup:
            try:
                if kind == "image":
                    self.conn.image.delete_image(rid, ignore_missing=True)
                elif kind == "server":
                    self.conn.compute.delete_server(rid, ignore_missing=True)
                elif kind == "snapshot":
                    self.conn.block_storage.delete_snapshot(rid, ignore_missing=True)
                    self.settle(lambda: self.conn.block_storage.find_snapshot(rid) is None)
                elif kind == "volume":
                    # a volume goes once its snapshot is gone and its server has let go of it
                    self.settle(lambda: (self.conn.block_storage.find_volume(rid) or SimpleNamespace(
                        status="available")).status in ("available", "error"))
                    self.conn.block_storage.delete_volume(rid, ignore_missing=True)
            except Exception as error:  # pylint: disable=broad-except
                print("cleanup of %s %s: %s" % (kind, rid, error))


ROWS = ("own_queue", "lifecycle_events", "malformed", "event_filter", "rulebook", "broker_restart")


def main() -> int:
    logging.basicConfig(level=logging.WARNING, stream=sys.stdout)
    return run_rows(Rows, ROWS)


if __name__ == "__main__":
    sys.exit(main())
