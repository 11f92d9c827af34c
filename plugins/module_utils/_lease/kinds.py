# Copyright: osops.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Cloud adapters: one per resource kind, the same small interface.

``records()`` lists resources as plain dicts (paginated list calls, never one
call per resource); ``write()`` sets and removes metadata keys, touching only the
keys given. Images are written with a JSON patch of exactly those keys:
openstacksdk's ``update_image`` patches the whole image, which drops other
custom properties on a single-store Glance and is refused (409, read-only
``stores``) on a multi-store Glance.
"""

from __future__ import annotations

IMAGE_PATCH = "application/openstack-images-v2.1-json-patch"
# Image attributes that are Glance's own, not custom properties.
IMAGE_CORE = frozenset((
    "id", "name", "status", "visibility", "protected", "checksum", "os_hash_algo", "os_hash_value", "owner",
    "size", "virtual_size", "min_ram", "min_disk", "disk_format", "container_format", "created_at", "updated_at",
    "tags", "self", "file", "schema", "direct_url", "locations", "os_hidden", "stores",
))


def _addresses(server) -> list[str]:
    return [entry.get("addr") for entries in (server.addresses or {}).values() for entry in entries if entry.get("addr")]


class Adapter:
    kind = ""

    def __init__(self, conn):
        self.conn = conn

    def records(self, all_projects: bool = True):
        raise NotImplementedError

    def record(self, resource, project_id, user_id, metadata, **extra) -> dict:
        """The fields every kind's record has, plus the kind's own."""
        record = {
            "kind": self.kind, "id": resource.id, "name": resource.name, "status": resource.status,
            "project_id": project_id, "user_id": user_id, "created_at": resource.created_at,
            "metadata": dict(metadata or {}),
        }
        record.update(extra)
        return record

    def write(self, resource_id: str, current: dict, values: dict, remove: tuple = ()) -> None:
        """Set ``values`` and remove ``remove`` on a resource whose metadata is ``current``.

        Keys not named are never touched; removing a key that is not there is a
        no-op here (Nova and Cinder answer 404 to it).
        """
        values = {key: str(value) for key, value in values.items() if current.get(key) != str(value)}
        remove = tuple(sorted(key for key in remove if key in current and key not in values))
        if values or remove:
            self.apply(resource_id, values, remove)

    def apply(self, resource_id: str, values: dict, remove: tuple) -> None:
        raise NotImplementedError


class MetadataAdapter(Adapter):
    """Kinds with a metadata API: set merges the keys given, delete removes keys."""

    service = ""
    set_metadata = ""
    delete_metadata = ""

    def apply(self, resource_id, values, remove):
        proxy = getattr(self.conn, self.service)
        if values:
            getattr(proxy, self.set_metadata)(resource_id, **values)
        if remove:
            getattr(proxy, self.delete_metadata)(resource_id, list(remove))


class Servers(MetadataAdapter):
    kind = "server"
    service, set_metadata, delete_metadata = "compute", "set_server_metadata", "delete_server_metadata"

    def records(self, all_projects: bool = True):
        for server in self.conn.compute.servers(details=True, all_projects=all_projects):
            yield self.record(
                server, server.project_id, server.user_id, server.metadata,
                addresses=_addresses(server), image_id=(server.image or {}).get("id"),
                volume_ids=[attachment.get("id") for attachment in server.attached_volumes or []],
            )


class Images(Adapter):
    kind = "image"

    def records(self, all_projects: bool = True):
        for image in self.conn.image.images():
            properties = image.properties or {}
            # images made by Nova snapshots name their user; others have only a project
            yield self.record(image, image.owner_id, properties.get("user_id"), properties,
                              visibility=image.visibility, size=image.size)

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

    def records(self, all_projects: bool = True):
        for volume in self.conn.block_storage.volumes(details=True, all_projects=all_projects):
            yield self.record(volume, volume.project_id, volume.user_id, volume.metadata,
                              attached_to=[attachment.get("server_id") for attachment in volume.attachments or []])


class Snapshots(MetadataAdapter):
    kind = "snapshot"
    service, set_metadata, delete_metadata = "block_storage", "set_snapshot_metadata", "delete_snapshot_metadata"

    def records(self, all_projects: bool = True):
        for snapshot in self.conn.block_storage.snapshots(details=True, all_projects=all_projects):
            yield self.record(snapshot, snapshot.project_id, getattr(snapshot, "user_id", None), snapshot.metadata,
                              volume_id=snapshot.volume_id)


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
