# Copyright: osops.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Cloud adapters: one per resource kind, the same small interface.

``records()`` lists resources as ``ResourceRecord``s (paginated list calls, never one
call per resource); ``find()`` reads one by id or name; ``by_id()`` reads one strictly by id (a
run scoped to some resources: a name may be another resource's id); ``apply()`` sets and
removes metadata keys (an ``effective_change``), touching only the keys given; ``remove()`` carries out
a removal (delete, or a kind's softer step) and waits until it is done. Images are written with a JSON patch of exactly those keys:
openstacksdk's ``update_image`` patches the whole image, which drops other
custom properties on a single-store Glance and is refused (409, read-only
``stores``) on a multi-store Glance.
"""

from __future__ import annotations

import re
import threading
import time

from .kind_table import KIND, PAST
from .record import ResourceRecord

IMAGE_PATCH = "application/openstack-images-v2.1-json-patch"
# Image attributes that are Glance's own, not custom properties.
IMAGE_CORE = frozenset((
    "id", "name", "status", "visibility", "protected", "checksum", "os_hash_algo", "os_hash_value", "owner",
    "size", "virtual_size", "min_ram", "min_disk", "disk_format", "container_format", "created_at", "updated_at",
    "tags", "self", "file", "schema", "direct_url", "locations", "os_hidden", "stores",
))
# The ids of these services are UUIDs; anything else (a "/" or "?") is never put into a URL path.
PLAIN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")


def _addresses(server) -> list[str]:
    return [entry.get("addr") for entries in (server.addresses or {}).values() for entry in entries if entry.get("addr")]


class Adapter:
    kind = ""

    def __init__(self, conn):
        self.conn = conn

    def records(self, all_projects: bool = True, project_id: str | None = None):
        """Every resource visible (all projects, or one project's), as records.

        A resource whose fields cannot be read (owners write some of them) becomes a record with
        ``record_error``: it is reported and never acted on, and the listing goes on.
        """
        for resource in self.list(all_projects, project_id):
            yield self.readable(resource)

    def readable(self, resource) -> ResourceRecord:
        """The resource as a record, or one with ``record_error`` when its fields cannot be read."""
        try:
            return self.to_record(resource)
        except Exception as error:  # pylint: disable=broad-except
            return ResourceRecord(self.kind, str(getattr(resource, "id", "")), str(getattr(resource, "name", "")),
                                  project_id=getattr(resource, "project_id", None),
                                  record_error="unreadable resource: %s" % error)

    def by_id(self, resource_id: str) -> ResourceRecord | None:
        """The resource with exactly this id (never looked up by name), or None if this kind has none."""
        from openstack import exceptions

        if not PLAIN_ID.match(resource_id):
            return None
        try:
            resource = self.fetch(resource_id)
        except exceptions.NotFoundException:
            return None
        # only the resource asked for, whatever the service would resolve
        return self.readable(resource) if str(getattr(resource, "id", "")) == resource_id else None

    def list(self, all_projects: bool, project_id: str | None):
        raise NotImplementedError

    def get(self, name_or_id: str, all_projects: bool = True):
        raise NotImplementedError

    def fetch(self, resource_id: str):
        """The service's read of one resource by id; NotFoundException if there is none."""
        raise NotImplementedError

    def to_record(self, resource) -> ResourceRecord:
        raise NotImplementedError

    def find(self, name_or_id: str, all_projects: bool = True) -> ResourceRecord | None:
        """One resource by id or (unique) name, or None if there is none."""
        resource = self.get(name_or_id, all_projects)
        return None if resource is None else self.to_record(resource)

    def ids(self, project_id: str | None) -> set[str]:
        """Ids of the resources that exist (one listing), for waiting on deletions."""
        return {resource.id for resource in self.list(bool(project_id), project_id)}

    def remove(self, record: ResourceRecord, verb: str, timeout: float, gone) -> str:
        """Carry out ``verb`` on the resource and wait until it is done; returns what happened.

        ``gone(record)`` says whether a deleted resource has disappeared (a shared
        ``Presence``, so waiting workers cost one listing per interval, not one
        call each).
        """
        raise NotImplementedError

    def locked_by_reaper(self, record: ResourceRecord) -> bool:
        """Did the reaper lock this resource (only servers are ever locked)?"""
        return False

    def unlock(self, record: ResourceRecord) -> None:
        raise NotImplementedError

    def in_use_now(self, record: ResourceRecord) -> str | None:
        """Asked right before a removal: who uses the resource now, anywhere in the cloud (None: nobody).

        Kinds whose service refuses to delete what is in use (Cinder: attached volumes, volumes
        with snapshots) need no check of their own; Glance removes images whatever boots from them.
        """
        return None

    def record(self, resource, project_id, user_id, metadata, **details) -> ResourceRecord:
        """The fields every kind's record has, plus the kind's own (``details``)."""
        return ResourceRecord(self.kind, resource.id, resource.name, resource.status, project_id, user_id,
                              resource.created_at, metadata or {}, details)

    def apply(self, resource_id: str, values: dict, remove: tuple) -> None:
        """Set ``values`` and remove ``remove`` (an ``effective_change``); keys not named are never touched."""
        raise NotImplementedError


class MetadataAdapter(Adapter):
    """Kinds with a metadata API: set merges the keys given, delete removes keys."""

    service = ""
    set_metadata = ""
    delete_metadata = ""
    lister = ""
    finder = ""
    getter = ""

    def list(self, all_projects, project_id, details=True):
        # another project's resources are listed as admin, with all_projects and a filter
        filters = {"project_id": project_id} if project_id else {}
        proxy = getattr(self.conn, self.service)
        return getattr(proxy, self.lister)(details=details, all_projects=all_projects or bool(project_id), **filters)

    def get(self, name_or_id, all_projects=True):
        proxy = getattr(self.conn, self.service)
        return getattr(proxy, self.finder)(name_or_id, ignore_missing=True, all_projects=all_projects)

    def fetch(self, resource_id):
        return getattr(getattr(self.conn, self.service), self.getter)(resource_id)

    def ids(self, project_id):
        # ids only: the light listing, without details
        return {item.id for item in self.list(bool(project_id), project_id, details=False)}

    def apply(self, resource_id, values, remove):
        proxy = getattr(self.conn, self.service)
        if values:
            getattr(proxy, self.set_metadata)(resource_id, **values)
        if remove:
            getattr(proxy, self.delete_metadata)(resource_id, list(remove))


def wait_for(done, timeout: float, what: str, interval: float = 1.0) -> None:
    """Poll ``done()`` until it is true; TimeoutError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() >= deadline:
            raise TimeoutError("%s: not done after %gs" % (what, timeout))
        time.sleep(interval)


def status_of(fetch) -> str | None:
    """The resource's status, or None once it is gone."""
    from openstack import exceptions

    try:
        return fetch().status
    except exceptions.NotFoundException:
        return None


class Presence:
    """Which resources of one kind still exist: one light listing per project per interval, shared by workers."""

    def __init__(self, adapter: "Adapter", interval: float = 1.0):
        self.adapter = adapter
        self.interval = interval
        self._seen: dict = {}
        self._lock = threading.Lock()

    def gone(self, record: ResourceRecord) -> bool:
        project = record.project_id
        with self._lock:
            listed_at, ids = self._seen.get(project, (None, set()))
            if listed_at is None or time.monotonic() - listed_at >= self.interval:
                ids = self.adapter.ids(project)
                self._seen[project] = (time.monotonic(), ids)
        return record.id not in ids


class Servers(MetadataAdapter):
    kind = "server"
    service, set_metadata, delete_metadata = "compute", "set_server_metadata", "delete_server_metadata"
    lister, finder, getter = "servers", "find_server", "get_server"

    def to_record(self, resource):
        return self.record(
            resource, resource.project_id, resource.user_id, resource.metadata,
            addresses=_addresses(resource), image_id=(resource.image or {}).get("id"),
            volume_ids=[attachment.get("id") for attachment in resource.attached_volumes or []],
            locked=bool(resource.is_locked), locked_reason=resource.locked_reason,
        )

    def lock(self, record: ResourceRecord, expires: str) -> None:
        """Lock a stopped or shelved server so that its owner cannot start it again without an extension."""
        self.conn.compute.lock_server(record.id, locked_reason="%s %s; extend the lease to unlock it" % (
            LOCK_REASON_PREFIX, expires))

    def locked_by_reaper(self, record: ResourceRecord) -> bool:
        return bool(record.get("locked")) and str(record.get("locked_reason") or "").startswith(LOCK_REASON_PREFIX)

    def unlock(self, record: ResourceRecord) -> None:
        self.conn.compute.unlock_server(record.id)

    def remove(self, record, verb, timeout, gone):
        compute, server_id = self.conn.compute, record.id
        if verb == "delete":
            compute.delete_server(server_id)
            wait_for(lambda: gone(record), timeout, "deleting server %s" % server_id)
            return PAST[verb]
        done = KIND["server"].done_in(verb)
        if verb == "shelve":
            compute.shelve_server(server_id)
        else:
            compute.stop_server(server_id)
        statuses = []

        def settled():
            statuses.append(status_of(lambda: compute.get_server(server_id)))
            return statuses[-1] in done + ("ERROR", None)

        wait_for(settled, timeout, "%s server %s" % (verb, server_id))
        if statuses[-1] not in done:
            raise RuntimeError("server %s is %s after %s" % (server_id, statuses[-1] or "gone", verb))
        return PAST[verb]


# The start of the reason the reaper gives Nova when it locks a server: only such a lock is lifted on extension
# (an admin-set lock cannot be lifted or re-set by the owner; Nova refuses their unlock with 403).
LOCK_REASON_PREFIX = "osops.lifecycle: lease expired"


class Images(Adapter):
    kind = "image"

    def list(self, all_projects, project_id):
        # an admin sees every image in the list; a member sees their own, shared and public ones.
        # Glance pages by 25 unless asked; 1000 is its default api_limit_max.
        # visibility=all: Glance leaves community images out of listings unless asked
        filters = {"owner": project_id} if project_id else {}
        return self.conn.image.images(limit=1000, visibility="all", **filters)

    def get(self, name_or_id, all_projects=True):
        return self.conn.image.find_image(name_or_id, ignore_missing=True)

    def fetch(self, resource_id):
        return self.conn.image.get_image(resource_id)

    def to_record(self, resource):
        properties = resource.properties or {}
        # Glance records no user: a "user_id" property is the owner's own writing, never an identity
        return self.record(resource, resource.owner_id, None, properties,
                           visibility=resource.visibility, size=resource.size, protected=bool(resource.is_protected))

    def in_use_now(self, record):
        # every project's servers, any state (a shelved server still needs its image back)
        users = []
        for server in self.conn.compute.servers(details=False, all_projects=True, image=record.id):
            users.append(server.id)
            if len(users) == 3:
                break
        return "still used by servers %s (any project)" % ", ".join(users) if users else None

    def remove(self, record, verb, timeout, gone):
        # Glance deletes and deactivates synchronously
        if verb == "deactivate":
            self.conn.image.deactivate_image(record.id)
        else:
            self.conn.image.delete_image(record.id, ignore_missing=False)
        return PAST[verb]

    def apply(self, resource_id, values, remove):
        clash = [key for key in list(values) + list(remove) if key in IMAGE_CORE]
        if clash:
            raise ValueError("refusing to write Glance's own image attributes: %s" % ", ".join(clash))
        patch = [{"op": "add", "path": "/" + key, "value": value} for key, value in sorted(values.items())]
        patch += [{"op": "remove", "path": "/" + key} for key in remove]
        if patch:
            response = self.conn.image.patch(
                "/images/%s" % resource_id, json=patch, headers={"Content-Type": IMAGE_PATCH})
            _raise_for_status(response)


class Volumes(MetadataAdapter):
    kind = "volume"
    service, set_metadata, delete_metadata = "block_storage", "set_volume_metadata", "delete_volume_metadata"
    lister, finder, getter = "volumes", "find_volume", "get_volume"
    # a volume whose server is being deleted passes through these before it can go
    SETTLING = ("in-use", "detaching", "attaching", "reserved")

    def to_record(self, resource):
        return self.record(resource, resource.project_id, resource.user_id, resource.metadata,
                           attached_to=[attachment.get("server_id") for attachment in resource.attachments or []])

    def remove(self, record, verb, timeout, gone):
        storage, volume_id = self.conn.block_storage, record.id
        if record.get("attached_to"):
            # servers deleted in this run detach their volumes asynchronously
            wait_for(lambda: status_of(lambda: storage.get_volume(volume_id)) not in self.SETTLING, timeout,
                     "waiting for volume %s to be detached" % volume_id)
        storage.delete_volume(volume_id, ignore_missing=False)
        wait_for(lambda: gone(record), timeout, "deleting volume %s" % volume_id)
        return PAST[verb]


class Snapshots(MetadataAdapter):
    kind = "snapshot"
    service, set_metadata, delete_metadata = "block_storage", "set_snapshot_metadata", "delete_snapshot_metadata"
    lister, finder, getter = "snapshots", "find_snapshot", "get_snapshot"

    def to_record(self, resource):
        return self.record(resource, resource.project_id, getattr(resource, "user_id", None), resource.metadata,
                           volume_id=resource.volume_id)

    def remove(self, record, verb, timeout, gone):
        self.conn.block_storage.delete_snapshot(record.id, ignore_missing=False)
        wait_for(lambda: gone(record), timeout, "deleting snapshot %s" % record.id)
        return PAST[verb]


ADAPTERS = {adapter.kind: adapter for adapter in (Servers, Images, Volumes, Snapshots)}


def adapter_for(kind: str, conn) -> Adapter:
    try:
        return ADAPTERS[kind](conn)
    except KeyError:
        raise ValueError("unknown resource kind %r (known: %s)" % (kind, ", ".join(sorted(ADAPTERS)))) from None


def _raise_for_status(response) -> None:
    status = getattr(response, "status_code", 200)
    if status >= 400:
        from openstack import exceptions  # the SDK is there whenever a connection is

        raise exceptions.HttpException(message="Glance refused the image patch: %s" % response.text[:300],
                                       response=response)
