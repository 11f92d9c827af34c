# SPDX-License-Identifier: GPL-3.0-or-later
"""The event source's parsing: oslo envelopes, payloads, resources, filters, options; malformed input is refused."""

from __future__ import annotations

import importlib.util
import json
import os

import pytest

PATH = os.path.join(os.path.dirname(__file__), "..", "..", "..", "extensions", "eda", "plugins", "event_source",
                    "openstack_notifications.py")
spec = importlib.util.spec_from_file_location("openstack_notifications", PATH)
source = importlib.util.module_from_spec(spec)
spec.loader.exec_module(source)


def envelope(notification) -> bytes:
    """What oslo.messaging (driver messagingv2) publishes."""
    return json.dumps({"oslo.version": "2.0", "oslo.message": json.dumps(notification)}).encode()


GLANCE = {"message_id": "m1", "publisher_id": "image.localhost", "event_type": "image.activate", "priority": "INFO",
          "payload": {"id": "0b1e-image", "name": "cirros", "status": "active"}, "timestamp": "2026-12-05 12:00:00.1"}


def test_an_oslo_envelope_is_unwrapped_into_one_clean_event():
    event = source.to_event(source.unwrap(envelope(GLANCE)), "glance", "notifications.info")
    assert event == {"event_type": "image.activate", "payload": GLANCE["payload"], "publisher_id": "image.localhost",
                     "timestamp": "2026-12-05 12:00:00.1", "priority": "INFO", "message_id": "m1",
                     "exchange": "glance", "routing_key": "notifications.info",
                     "resource": {"kind": "image", "id": "0b1e-image"}}


def test_a_bare_notification_is_read_too():
    assert source.unwrap(json.dumps(GLANCE))["event_type"] == "image.activate"


@pytest.mark.parametrize("body, reason", [
    (b"\xff\xfe", "not JSON"),
    (b"[1, 2]", "no event_type"),
    (json.dumps({"oslo.version": "2.0", "oslo.message": "{not json"}).encode(), "envelope without a JSON message"),
    (json.dumps({"oslo.version": "2.0", "oslo.message": None}).encode(), "envelope without a JSON message"),
    (envelope({"payload": {}}), "no event_type"),
    (envelope({"event_type": ["image.activate"]}), "no event_type"),
    (envelope({"event_type": ""}), "no event_type"),
    (envelope([]), "no event_type"),
])
def test_what_is_not_a_notification_is_refused_with_a_reason(body, reason):
    with pytest.raises(source.MalformedNotification, match=reason):
        source.unwrap(body)


@pytest.mark.parametrize("event_type, payload, resource", [
    ("compute.instance.create.end", {"instance_id": "s1", "image_ref_url": "x"}, {"kind": "server", "id": "s1"}),
    ("instance.create.end", {"nova_object.data": {"uuid": "s2"}}, {"kind": "server", "id": "s2"}),
    ("volume.create.end", {"volume_id": "v1"}, {"kind": "volume", "id": "v1"}),
    ("snapshot.create.end", {"snapshot_id": "n1", "volume_id": "v1"}, {"kind": "snapshot", "id": "n1"}),
    ("image.delete", {"id": "i1"}, {"kind": "image", "id": "i1"}),
    # names set by tenants or odd payloads never make up a resource
    ("image.activate", {"id": {"$ne": 1}}, None),
    ("image.activate", "not a dict", None),
    ("compute.instance.create.end", {"instance_id": ""}, None),
    ("identity.project.created", {"resource_info": "p1"}, None),
])
def test_the_resource_an_event_is_about(event_type, payload, resource):
    event = source.to_event({"event_type": event_type, "payload": payload})
    assert event["resource"] == resource
    assert isinstance(event["payload"], dict)


def test_event_types_are_kept_by_pattern():
    assert source.wanted("image.activate", ["image.*"]) and not source.wanted("image.activate", ["image.delete"])
    assert source.wanted("compute.instance.create.end", ["image.activate", "compute.instance.create.end"])


def test_a_password_never_reaches_the_log():
    assert source.redact("amqp://eda:s3cret@rabbit1:5672/") == "amqp://eda:***@rabbit1:5672/"
    assert source.redact("amqps://rabbit1/vhost") == "amqps://rabbit1/vhost"


def test_options_default_check_and_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("OSOPS_NOTIFICATIONS_URL", "amqp://a@r1//,amqp://a@r2//")
    settings = source.settings_from({})
    assert settings["urls"] == ["amqp://a@r1//", "amqp://a@r2//"]
    assert settings["exchanges"] == ["nova", "glance", "cinder", "openstack"] and settings["event_types"] == ["*"]
    assert settings["queue"].startswith("osops-lifecycle-")
    for bad, name in (({"urls": ["http://x"]}, "urls"), ({"event_types": []}, "event_types"),
                      ({"exchanges": [1]}, "exchanges"), ({"queue_ttl": 0}, "queue_ttl")):
        with pytest.raises(ValueError, match=name):
            source.settings_from(dict({"urls": ["amqp://r//"]}, **bad))


def test_reconnects_back_off_up_to_the_ceiling():
    waits = [source.backoff(attempt, 30) for attempt in range(12)]
    assert waits[0] <= 0.5 and waits[-1] <= 30 and waits[-1] >= 24
    assert all(later >= earlier * 0.8 for earlier, later in zip(waits, waits[1:]))


def _image_event(event_type: str, image_id: str = "i1", status: str = "active") -> dict:
    return {"event_type": event_type, "payload": {"id": image_id, "status": status},
            "resource": {"kind": "image", "id": image_id}}


def test_quiet_updates_drops_glances_echo_of_an_activation():
    quiet = source.QuietUpdates(10)
    assert quiet.passes(_image_event("image.activate"), 100.0)
    assert not quiet.passes(_image_event("image.update"), 100.03)   # Glance's own follow-up
    assert not quiet.passes(_image_event("image.update"), 105.0)    # a property change soon after
    assert quiet.passes(_image_event("image.update"), 111.0)        # past the window


def test_quiet_updates_keeps_a_change_of_status_other_resources_and_non_updates():
    quiet = source.QuietUpdates(10)
    assert quiet.passes(_image_event("image.update", status="saving"), 100.0)
    assert quiet.passes(_image_event("image.update", status="active"), 100.1)   # became active: kept
    assert quiet.passes(_image_event("image.update", image_id="i2"), 100.2)     # another image
    assert quiet.passes(_image_event("image.delete", status="deleted"), 100.3)  # never drops a non-update
    assert quiet.passes(_image_event("image.delete", status="deleted"), 100.4)


def test_quiet_updates_off_and_events_without_resource_pass():
    assert source.QuietUpdates(0).passes(_image_event("image.update"), 1.0)
    quiet = source.QuietUpdates(10)
    assert quiet.passes({"event_type": "image.update", "payload": {}, "resource": None}, 1.0)


def test_quiet_updates_memory_is_bounded():
    quiet = source.QuietUpdates(1, remembered=10)
    for number in range(50):
        quiet.passes(_image_event("image.activate", image_id="i%d" % number), float(number * 2))
    assert len(quiet.last) <= 11


def test_quiet_updates_option_is_checked():
    assert source.settings_from({"urls": ["amqp://h"], "quiet_updates": 2})["quiet_updates"] == 2
    with pytest.raises(ValueError, match="quiet_updates"):
        source.settings_from({"urls": ["amqp://h"], "quiet_updates": -1})
