# Copyright: osops.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""OpenStack's oslo.messaging notifications from RabbitMQ, as Event-Driven Ansible events."""

from __future__ import annotations

DOCUMENTATION = r"""
source: osops.lifecycle.openstack_notifications
short_description: OpenStack notifications (Nova, Glance, Cinder) from RabbitMQ, through a queue of its own
description:
  - Declares its own queue, bound to the services' notification exchanges (never reads the services' shared
    C(notifications.info) queue, so it steals nothing from Ceilometer or other readers), unwraps the oslo.messaging
    envelope, keeps the event types asked for and puts one clean event per notification on the queue.
  - Reconnects with exponential backoff (and to the next broker of O(urls)) when the broker goes away; the queue
    is re-declared and re-bound, so notifications that reach the broker after the reconnect are delivered.
  - A message that is not a notification is logged and dropped, never fatal.
  - Each event has C(event_type), C(payload), C(publisher_id), C(timestamp), C(priority), C(message_id),
    C(exchange) and C(resource) (C(kind) server, image, volume or snapshot, and C(id)), when the event names one).
options:
  urls:
    description: AMQP URLs (C(amqp://user:password@host:5672/vhost), C(amqps://) for TLS); tried in turn.
      The password is never logged. Defaults to the environment variable E(OSOPS_NOTIFICATIONS_URL).
    type: list
  exchanges:
    description: The notification exchanges, named after each service's C(control_exchange).
    type: list
    default: [nova, glance, cinder, openstack]
  topics:
    description: The C([oslo_messaging_notifications] topics) of the services.
    type: list
    default: [notifications]
  priorities:
    description: Notification priorities to receive.
    type: list
    default: [info]
  event_types:
    description: Shell-style patterns of event types to keep (C(image.*), C(compute.instance.create.end)).
    type: list
    default: ['*']
  queue:
    description: The name of this consumer's own queue. Two rulebooks with the same name share (split) events.
    type: str
    default: osops-lifecycle-<host name>
  queue_max_length:
    description: Messages the queue keeps while nobody reads it (oldest dropped first; the scheduled runs catch up).
    type: int
    default: 10000
  queue_ttl:
    description: Seconds a message waits in the queue at most.
    type: int
    default: 86400
  exchange_durable:
    description: Whether the exchanges are durable (oslo.messaging's C(amqp_durable_queues)); must match the broker.
    type: bool
    default: false
  ca_file:
    description: CA bundle to verify the broker's certificate (C(amqps://)).
    type: str
  cert_file:
    description: Client certificate (C(amqps://)).
    type: str
  key_file:
    description: Client certificate's key (C(amqps://)).
    type: str
  reconnect_max:
    description: The longest wait between two connection attempts, in seconds.
    type: float
    default: 30
  quiet_updates:
    description:
      - Seconds after an event about a resource during which C(*.update) notifications about the same resource
        with the same status are dropped (0 keeps them all). Glance follows every C(image.activate) with an
        C(image.update) within milliseconds; a rulebook that acts on both would act twice.
      - Only updates are ever dropped, and only those that follow another event about the same resource without
        a change of status (C(status), or C(state) in Nova's payloads).
    type: float
    default: 0
"""

EXAMPLES = r"""
- name: New images into every compute node's image cache
  hosts: localhost
  sources:
    - osops.lifecycle.openstack_notifications:
        urls: ["amqp://eda:{{ rabbit_password }}@rabbit1:5672/", "amqp://eda:{{ rabbit_password }}@rabbit2:5672/"]
        event_types: ["image.activate", "image.delete"]
  rules:
    - name: Show
      condition: event.event_type == "image.activate"
      action:
        debug:
"""

import asyncio
import fnmatch
import json
import logging
import os
import random
import socket
import ssl
import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

LOG = logging.getLogger(__name__)

# event type prefix -> (resource kind of the lease code, payload fields that hold its id, in order)
RESOURCE_OF = (
    ("compute.instance.", "server", ("instance_id", "uuid")),
    ("instance.", "server", ("uuid", "instance_id")),  # Nova's versioned notifications
    ("image.", "image", ("id",)),
    ("volume.", "volume", ("volume_id", "id")),
    ("snapshot.", "snapshot", ("snapshot_id", "id")),
)


class MalformedNotification(ValueError):
    """A message on the exchange that is not an oslo.messaging notification."""


def unwrap(body: bytes | str) -> dict:
    """The notification in a message body: oslo's 2.0 envelope, or a bare notification (messaging v1)."""
    try:
        message = json.loads(body)
    except (ValueError, TypeError) as error:
        raise MalformedNotification("not JSON: %s" % error) from None
    if isinstance(message, dict) and "oslo.message" in message:
        try:
            message = json.loads(message["oslo.message"])
        except (ValueError, TypeError) as error:
            raise MalformedNotification("envelope without a JSON message: %s" % error) from None
    if not isinstance(message, dict) or not isinstance(message.get("event_type"), str) or not message["event_type"]:
        raise MalformedNotification("no event_type")
    return message


def payload_of(notification: dict) -> dict:
    """The payload; Nova's versioned notifications wrap theirs in nova_object.data."""
    payload = notification.get("payload")
    if isinstance(payload, dict) and isinstance(payload.get("nova_object.data"), dict):
        payload = payload["nova_object.data"]
    return payload if isinstance(payload, dict) else {}


def resource_of(event_type: str, payload: dict) -> dict | None:
    """The resource a notification is about, as the lease code names kinds; None when it names none."""
    for prefix, kind, fields in RESOURCE_OF:
        if event_type.startswith(prefix):
            for field in fields:
                if isinstance(payload.get(field), str) and payload[field]:
                    return {"kind": kind, "id": payload[field]}
            return None
    return None


def to_event(notification: dict, exchange: str = "", routing_key: str = "") -> dict:
    payload = payload_of(notification)
    event_type = notification["event_type"]
    return {
        "event_type": event_type,
        "payload": payload,
        "publisher_id": notification.get("publisher_id"),
        "timestamp": notification.get("timestamp"),
        "priority": notification.get("priority"),
        "message_id": notification.get("message_id"),
        "exchange": exchange,
        "routing_key": routing_key,
        "resource": resource_of(event_type, payload),
    }


class QuietUpdates:
    """Drops ``*.update`` events that repeat the status of an event about the same resource ``seconds`` before."""

    def __init__(self, seconds: float, remembered: int = 10000):
        self.seconds = seconds
        self.remembered = remembered
        self.last: dict[tuple[str, str], tuple[float, object]] = {}

    def passes(self, event: dict, now: float) -> bool:
        resource = event.get("resource")
        if not self.seconds or not resource:
            return True
        key = (resource["kind"], resource["id"])
        payload = event.get("payload") or {}
        status = payload.get("status", payload.get("state"))
        previous = self.last.get(key)
        if (event["event_type"].endswith(".update") and previous is not None and now - previous[0] < self.seconds
                and previous[1] == status):
            return False
        self.last[key] = (now, status)
        if len(self.last) > self.remembered:
            # bounded memory: forget what is past the window
            self.last = {k: seen for k, seen in self.last.items() if now - seen[0] < self.seconds}
        return True


def wanted(event_type: str, patterns: list[str]) -> bool:
    return any(fnmatch.fnmatchcase(event_type, pattern) for pattern in patterns)


def redact(url: str) -> str:
    """An AMQP URL fit for a log: no password."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = "%s:***@%s%s" % (parts.username or "", host, ":%d" % parts.port if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def settings_from(args: dict) -> dict:
    """The source's options with defaults, checked; a ValueError names the bad one."""
    urls = args.get("urls") or os.environ.get("OSOPS_NOTIFICATIONS_URL")
    if isinstance(urls, str):
        urls = [url for url in urls.split(",") if url.strip()]
    if not urls or not all(isinstance(url, str) and url.startswith(("amqp://", "amqps://")) for url in urls):
        raise ValueError("urls: one or more amqp:// or amqps:// URLs are needed")

    def strings(name, default):
        value = args.get(name, default)
        value = [value] if isinstance(value, str) else value
        if not isinstance(value, list) or not value or not all(isinstance(item, str) and item for item in value):
            raise ValueError("%s: a list of names" % name)
        return value

    settings = {
        "urls": [url.strip() for url in urls],
        "exchanges": strings("exchanges", ["nova", "glance", "cinder", "openstack"]),
        "topics": strings("topics", ["notifications"]),
        "priorities": strings("priorities", ["info"]),
        "event_types": strings("event_types", ["*"]),
        "queue": str(args.get("queue") or "osops-lifecycle-%s" % socket.gethostname()),
        "queue_max_length": int(args.get("queue_max_length", 10000)),
        "queue_ttl": int(args.get("queue_ttl", 86400)),
        "exchange_durable": bool(args.get("exchange_durable", False)),
        "reconnect_max": float(args.get("reconnect_max", 30)),
        "quiet_updates": float(args.get("quiet_updates", 0)),
        "ca_file": args.get("ca_file"), "cert_file": args.get("cert_file"), "key_file": args.get("key_file"),
    }
    if settings["queue_max_length"] < 1 or settings["queue_ttl"] < 1 or settings["reconnect_max"] <= 0:
        raise ValueError("queue_max_length, queue_ttl and reconnect_max must be above 0")
    if not 0 <= settings["quiet_updates"] < 86400:
        raise ValueError("quiet_updates: seconds from 0 to 86400")
    return settings


def backoff(attempt: int, ceiling: float) -> float:
    """Seconds before connection attempt ``attempt`` (0, 1, ...): 0.5 s doubling up to ``ceiling``, with jitter."""
    return min(ceiling, 0.5 * 2 ** min(attempt, 16)) * random.uniform(0.8, 1.0)


def _ssl_context(settings: dict) -> ssl.SSLContext | None:
    if not (settings["ca_file"] or settings["cert_file"]):
        return None
    context = ssl.create_default_context(cafile=settings["ca_file"])
    if settings["cert_file"]:
        context.load_cert_chain(settings["cert_file"], settings["key_file"])
    return context


async def _consume(url: str, settings: dict, queue: asyncio.Queue, connected: asyncio.Event,
                   quiet: QuietUpdates) -> None:
    """One connection: declare the own queue, bind it, put notifications on ``queue`` until the connection ends."""
    import aio_pika  # the decision environment's dependency (extensions/eda/requirements.txt)

    connection = await aio_pika.connect(url, ssl_context=_ssl_context(settings))
    closed = asyncio.get_running_loop().create_future()
    connection.close_callbacks.add(lambda *_: closed.done() or closed.set_result(None))
    async with connection:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=100)
        own = await channel.declare_queue(settings["queue"], durable=False, auto_delete=False, arguments={
            "x-max-length": settings["queue_max_length"], "x-message-ttl": settings["queue_ttl"] * 1000})
        for name in settings["exchanges"]:
            # the notifier declares its exchange as a topic exchange; the same declaration is a no-op
            exchange = await channel.declare_exchange(name, aio_pika.ExchangeType.TOPIC,
                                                      durable=settings["exchange_durable"])
            for topic in settings["topics"]:
                for priority in settings["priorities"]:
                    await own.bind(exchange, routing_key="%s.%s" % (topic, priority))
        LOG.info("openstack_notifications: consuming %s on %s", settings["queue"], redact(url))

        async def deliver(message) -> None:
            async with message.process(ignore_processed=True):
                try:
                    notification = unwrap(message.body)
                except MalformedNotification as error:
                    LOG.warning("openstack_notifications: dropped a message on %s (%s): %s",
                                message.exchange, message.routing_key, error)
                    return
                if wanted(notification["event_type"], settings["event_types"]):
                    event = to_event(notification, message.exchange or "", message.routing_key or "")
                    if quiet.passes(event, time.monotonic()):
                        await queue.put(event)

        await own.consume(deliver)
        connected.set()
        await closed


async def main(queue: asyncio.Queue, args: dict[str, Any]) -> None:
    """Consume until cancelled; every lost connection is retried, brokers in turn, with backoff."""
    settings = settings_from(args)
    quiet = QuietUpdates(settings["quiet_updates"])  # across reconnections
    attempt = 0
    while True:
        url = settings["urls"][attempt % len(settings["urls"])]
        connected = asyncio.Event()
        try:
            await _consume(url, settings, queue, connected, quiet)
            LOG.warning("openstack_notifications: connection to %s closed", redact(url))
        except asyncio.CancelledError:
            raise
        except Exception as error:  # pylint: disable=broad-except
            # never fatal: the broker may be restarting
            LOG.warning("openstack_notifications: %s: %s: %s", redact(url), type(error).__name__,
                        str(error).replace(url, redact(url)))
        attempt = 0 if connected.is_set() else attempt + 1
        await asyncio.sleep(backoff(attempt, settings["reconnect_max"]))


if __name__ == "__main__":
    # ad hoc: print the events (python openstack_notifications.py amqp://...)
    import sys

    class _Printer:
        async def put(self, event):
            print(json.dumps(event, sort_keys=True), flush=True)

    logging.basicConfig(level=logging.INFO)
    asyncio.run(main(_Printer(), {"urls": sys.argv[1:]}))
