# Copyright: osops.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What the event targets (eda_notifications, eda_rulebooks) and bench/events.py share: the collection's source
plugin loaded from where Ansible finds the collection, a listener that runs it as ansible-rulebook would, the
shipped rulebooks run by ansible-rulebook, and the broker's queues."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import re
import signal
import subprocess
import threading
import time
import uuid


def collection_root() -> str:
    """The collection under test, wherever ansible-test put this target: the collections path, or above this file."""
    for root in os.environ.get("ANSIBLE_COLLECTIONS_PATH", "").split(os.pathsep):
        if root and os.path.isdir(os.path.join(root, "ansible_collections", "osops", "lifecycle")):
            return os.path.join(root, "ansible_collections", "osops", "lifecycle")
    return os.path.abspath(os.path.join(os.path.dirname(__file__), *[os.pardir] * 4))


PLUGIN = os.path.join(collection_root(), "extensions", "eda", "plugins", "event_source", "openstack_notifications.py")
spec = importlib.util.spec_from_file_location("openstack_notifications", PLUGIN)
source = importlib.util.module_from_spec(spec)
spec.loader.exec_module(source)

TAG = "eda-" + uuid.uuid4().hex[:6]


class Listener:
    """The plugin's main() in a thread of its own, as ansible-rulebook runs it; events kept with their arrival."""

    def __init__(self, url: str, **args):
        self.events: list[tuple[float, dict]] = []
        self.args = dict(args, urls=[url], queue=args.get("queue", "%s-%s" % (TAG, uuid.uuid4().hex[:4])),
                         reconnect_max=2)
        self.loop = asyncio.new_event_loop()
        self.task = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    async def put(self, event: dict) -> None:
        self.events.append((time.monotonic(), event))

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.task = self.loop.create_task(source.main(self, self.args))
        try:
            self.loop.run_until_complete(self.task)
        except asyncio.CancelledError:
            pass

    def wait(self, match, timeout: float = 60) -> tuple[float, dict] | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for arrived, event in list(self.events):
                if match(event):
                    return arrived, event
            time.sleep(0.05)
        return None

    def stop(self) -> None:
        if self.task is not None:
            self.loop.call_soon_threadsafe(self.task.cancel)
        self.thread.join(10)


def about(event_type: str, resource_id: str):
    return lambda event: event["event_type"] == event_type and (event["resource"] or {}).get("id") == resource_id


def queue_messages(url: str, name: str) -> int | None:
    """Messages waiting in a queue (passive declare: never creates it), None if it does not exist."""
    import aio_pika

    async def count():
        connection = await aio_pika.connect(url)
        async with connection:
            channel = await connection.channel()
            try:
                queue = await channel.declare_queue(name, passive=True)
            except aio_pika.exceptions.ChannelClosed:
                return None
            return queue.declaration_result.message_count

    return asyncio.run(count())


def publish(url: str, exchange: str, routing_key: str, body: bytes) -> None:
    import aio_pika

    async def send():
        connection = await aio_pika.connect(url)
        async with connection:
            channel = await connection.channel()
            target = await channel.declare_exchange(exchange, aio_pika.ExchangeType.TOPIC, durable=False)
            await target.publish(aio_pika.Message(body=body), routing_key=routing_key)

    asyncio.run(send())


def delete_queue(url: str, name: str) -> None:
    """Remove a queue and what waits in it (a rulebook's queue keeps events while nobody reads it)."""
    import aio_pika

    async def delete():
        connection = await aio_pika.connect(url)
        async with connection:
            channel = await connection.channel()
            await channel.queue_delete(name)

    asyncio.run(delete())


class Rulebook:
    """A rulebook shipped in the collection, run by ansible-rulebook as an operator runs it; its output kept."""

    def __init__(self, name: str, inventory: str, url: str, queue: str, fresh: bool = True):
        self.url, self.queue = url, queue
        self.lines: list[tuple[float, str]] = []
        if fresh:
            delete_queue(url, queue)  # nothing left from an earlier run
        environ = dict(os.environ, OSOPS_NOTIFICATIONS_URL=url)
        self.process = subprocess.Popen(
            ["ansible-rulebook", "-i", inventory, "--rulebook", "osops.lifecycle." + name],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=environ, start_new_session=True)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append((time.monotonic(), line))

    def wait_ready(self, timeout: float = 90) -> float:
        """Seconds until the rulebook's source has its queue on the broker."""
        started = time.monotonic()
        while queue_messages(self.url, self.queue) is None:
            assert self.process.poll() is None, "ansible-rulebook ended early:\n%s" % self.output()[-3000:]
            assert time.monotonic() - started < timeout, "ansible-rulebook's source never connected"
            time.sleep(0.3)
        return time.monotonic() - started

    def output(self) -> str:
        return "".join(entry[1] for entry in self.lines)

    def count(self, pattern: str) -> int:
        return len(re.findall(pattern, self.output(), re.MULTILINE))

    def wait_count(self, pattern: str, count: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self.count(pattern) < count:
            if time.monotonic() > deadline or self.process.poll() is not None:
                return False
            time.sleep(0.2)
        return True

    def stop(self, keep_queue: bool = False) -> None:
        """End ansible-rulebook; its queue is deleted unless kept (then it gathers events until the next start)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        # a playbook the rulebook was running outlives it otherwise (its output pipe gone, it hangs)
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if not keep_queue:
            delete_queue(self.url, self.queue)


def node_roots(nodes_inventory: str) -> dict[str, str]:
    """Each test node's node_root (hack/nodes writes it in the inventory): the nodes share this machine's files."""
    with open(nodes_inventory) as handle:
        return dict(re.findall(r"^(\S+) .*node_root=(\S+)", handle.read(), re.MULTILINE))


def imagecache_inventory(path: str, nodes_inventory: str, glance_images: str, cloud: str = "admin") -> str:
    """An inventory directory for the imagecache rulebook, as an operator keeps one: the nodes, their variables.

    The imagecache role's variables sit in group_vars (ansible-rulebook copies the inventory directory for each
    run; variables given to ansible-rulebook itself never reach the playbooks). A fixed control path keeps SSH
    connections open from one event's run to the next, as docs/events.md advises.
    """
    os.makedirs(os.path.join(path, "group_vars"), exist_ok=True)
    with open(nodes_inventory) as source, open(os.path.join(path, "hosts.ini"), "w") as target:
        target.write(source.read())
    with open(os.path.join(path, "group_vars", "all.yml"), "w") as handle:
        handle.write("imagecache_cloud: %s\n" % cloud)
    with open(os.path.join(path, "group_vars", "compute.yml"), "w") as handle:
        handle.write(IMAGECACHE_NODE_VARS % {"glance_images": glance_images, "control_path": path.rstrip("/") + "-ssh"})
    for root in node_roots(nodes_inventory).values():
        os.makedirs(os.path.join(root, "instances"), exist_ok=True)
    return path


IMAGECACHE_NODE_VARS = """\
imagecache_source_dir: %(glance_images)s
imagecache_instances_dir: "{{ node_root }}/instances"
imagecache_cache_dir: "{{ node_root }}/instances/_base"
imagecache_state_file: "{{ node_root }}/state/imagecache.json"
imagecache_nova_conf: "{{ node_root }}/nova.conf"
imagecache_owner: nobody
imagecache_group: nogroup
ansible_ssh_pipelining: true
ansible_control_path_dir: %(control_path)s
"""


def lease_inventory(path: str, settings: dict) -> str:
    """An inventory directory for the leases rulebook: localhost with the lease role's variables."""
    import json

    os.makedirs(os.path.join(path, "host_vars"), exist_ok=True)
    with open(os.path.join(path, "hosts.ini"), "w") as handle:
        handle.write("localhost ansible_connection=local\n")
    with open(os.path.join(path, "host_vars", "localhost.yml"), "w") as handle:
        json.dump(settings, handle)  # JSON is YAML
    return path


def base_files(roots: dict[str, str], image_id: str) -> dict[str, str]:
    """Node -> the path of the image's base file in that node's _base (sha1 of the id, as Nova names it)."""
    import hashlib

    name = hashlib.sha1(image_id.encode("utf-8")).hexdigest()
    return {node: os.path.join(root, "instances", "_base", name) for node, root in roots.items()}


def wait_until(done, timeout: float, interval: float = 0.05) -> float | None:
    """Seconds until ``done()`` held, or None if it never did within ``timeout``."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if done():
            return time.monotonic() - started
        time.sleep(interval)
    return None


def run_rows(make_rows, names: tuple[str, ...]) -> int:
    """The event targets' main(): --config and --rows; each row prints PASS or FAIL and why; 1 if any failed."""
    import argparse
    import json

    parser = argparse.ArgumentParser()
    parser.add_argument("--config", required=True)
    parser.add_argument("--rows", default=",".join(names))
    args = parser.parse_args()
    with open(args.config) as handle:
        config = json.load(handle) if args.config.endswith(".json") else __import__("yaml").safe_load(handle)
    rows = make_rows(config)
    failed = 0
    try:
        for name in args.rows.split(","):
            started = time.monotonic()
            try:
                said = getattr(rows, name)()
                print("PASS %s (%.1fs): %s" % (name, time.monotonic() - started, said), flush=True)
            except Exception as error:  # pylint: disable=broad-except
                failed += 1
                print("FAIL %s (%.1fs): %s: %s" % (name, time.monotonic() - started, type(error).__name__, error),
                      flush=True)
    finally:
        rows.clean()
    return 1 if failed else 0
