# SPDX-License-Identifier: GPL-3.0-or-later
"""An in-memory cloud that answers exactly the SDK calls the lease adapters and the owner lookup make.

The fast seam for the I/O half (LeaseRun, the reaper, owner lookup): unit tests in seconds. The
integration targets stay the proof against the real services; where this fake copies a service's
behaviour it copies what those targets saw (Nova refuses metadata of shelved servers and actions of
locked ones for non-admins; Cinder refuses to delete an attached volume or one with snapshots).
"""

from __future__ import annotations

import uuid
from types import SimpleNamespace

from openstack import exceptions

CREATED = "2026-01-01T00:00:00Z"


def _new_id() -> str:
    return str(uuid.uuid4())


class Response:
    def __init__(self, body: dict, status_code: int = 200):
        self.status_code = status_code
        self._body = body
        self.text = str(body)
        self.headers: dict = {}

    def json(self) -> dict:
        return self._body


class _Service:
    def __init__(self, cloud: "MemoryCloud"):
        self.cloud = cloud

    def _get(self, table: dict, resource_id: str):
        self.cloud.calls.append((type(self).__name__.lower(), "get", resource_id))
        try:
            return table[resource_id]
        except KeyError:
            raise exceptions.NotFoundException("no such resource %s" % resource_id) from None

    @staticmethod
    def _list(table: dict, all_projects: bool, project_id: str | None, **match) -> list:
        found = [r for r in table.values() if project_id is None or r.project_id == project_id]
        return [r for r in found if all(getattr(r, key) == value for key, value in match.items())]

    @staticmethod
    def _find(table: dict, name_or_id: str):
        if name_or_id in table:
            return table[name_or_id]
        named = [r for r in table.values() if r.name == name_or_id]
        return named[0] if len(named) == 1 else None


class Compute(_Service):
    def servers(self, details=True, all_projects=False, project_id=None, image=None):
        servers = self._list(self.cloud.servers, all_projects, project_id)
        return [s for s in servers if image is None or (s.image or {}).get("id") == image]

    def find_server(self, name_or_id, ignore_missing=True, all_projects=False):
        return self._find(self.cloud.servers, name_or_id)

    def get_server(self, server_id):
        return self._get(self.cloud.servers, server_id)

    def _metadata(self, server_id):
        server = self._get(self.cloud.servers, server_id)
        if server.status in ("SHELVED", "SHELVED_OFFLOADED"):
            raise exceptions.ConflictException("Cannot 'update metadata' while it is in vm_state shelved_offloaded")
        return server

    def set_server_metadata(self, server_id, **values):
        self._metadata(server_id).metadata.update(values)
        self.cloud.calls.append(("compute", "set_metadata", server_id))

    def delete_server_metadata(self, server_id, keys):
        server = self._metadata(server_id)
        for key in keys:
            server.metadata.pop(key, None)

    def delete_server(self, server_id):
        server = self.cloud.servers.pop(server_id)
        for volume in self.cloud.volumes.values():
            volume.attachments = [a for a in volume.attachments if a["server_id"] != server.id]
        self.cloud.calls.append(("compute", "delete", server_id))

    def _act(self, server_id, action, status):
        self._get(self.cloud.servers, server_id).status = status
        self.cloud.calls.append(("compute", action, server_id))

    def stop_server(self, server_id):
        self._act(server_id, "stop", "SHUTOFF")

    def shelve_server(self, server_id):
        self._act(server_id, "shelve", "SHELVED_OFFLOADED")  # Nova's default shelved_offload_time = 0

    def lock_server(self, server_id, locked_reason=None):
        server = self._get(self.cloud.servers, server_id)
        server.is_locked, server.locked_reason = True, locked_reason
        self.cloud.calls.append(("compute", "lock", server_id))

    def unlock_server(self, server_id):
        server = self._get(self.cloud.servers, server_id)
        server.is_locked, server.locked_reason = False, None
        self.cloud.calls.append(("compute", "unlock", server_id))


class BlockStorage(_Service):
    def volumes(self, details=True, all_projects=False, project_id=None):
        return self._list(self.cloud.volumes, all_projects, project_id)

    def snapshots(self, details=True, all_projects=False, project_id=None):
        return self._list(self.cloud.snapshots, all_projects, project_id)

    def find_volume(self, name_or_id, ignore_missing=True, all_projects=False):
        return self._find(self.cloud.volumes, name_or_id)

    def find_snapshot(self, name_or_id, ignore_missing=True, all_projects=False):
        return self._find(self.cloud.snapshots, name_or_id)

    def get_volume(self, volume_id):
        volume = self._get(self.cloud.volumes, volume_id)
        volume.status = "in-use" if volume.attachments else "available"
        return volume

    def get_snapshot(self, snapshot_id):
        return self._get(self.cloud.snapshots, snapshot_id)

    def set_volume_metadata(self, volume_id, **values):
        self._get(self.cloud.volumes, volume_id).metadata.update(values)

    def delete_volume_metadata(self, volume_id, keys):
        for key in keys:
            self._get(self.cloud.volumes, volume_id).metadata.pop(key, None)

    def set_snapshot_metadata(self, snapshot_id, **values):
        self._get(self.cloud.snapshots, snapshot_id).metadata.update(values)

    def delete_snapshot_metadata(self, snapshot_id, keys):
        for key in keys:
            self._get(self.cloud.snapshots, snapshot_id).metadata.pop(key, None)

    def delete_volume(self, volume_id, ignore_missing=False):
        volume = self._get(self.cloud.volumes, volume_id)
        if volume.attachments or any(s.volume_id == volume_id for s in self.cloud.snapshots.values()):
            raise exceptions.BadRequestException("Volume %s is attached or has snapshots" % volume_id)
        del self.cloud.volumes[volume_id]
        self.cloud.calls.append(("block_storage", "delete", volume_id))

    def delete_snapshot(self, snapshot_id, ignore_missing=False):
        del self.cloud.snapshots[snapshot_id]
        self.cloud.calls.append(("block_storage", "delete", snapshot_id))


class Image(_Service):
    def images(self, limit=None, visibility=None, owner=None):
        return [i for i in self.cloud.images.values() if owner is None or i.owner_id == owner]

    def find_image(self, name_or_id, ignore_missing=True):
        return self._find(self.cloud.images, name_or_id)

    def get_image(self, image_id):
        return self._get(self.cloud.images, image_id)

    def patch(self, url, json=None, headers=None):
        image = self._get(self.cloud.images, url.rsplit("/", 1)[1])
        for operation in json or []:
            key = operation["path"].lstrip("/")
            if operation["op"] == "add":
                image.properties[key] = operation["value"]
            else:
                image.properties.pop(key, None)
        return Response({})

    def deactivate_image(self, image_id):
        self._get(self.cloud.images, image_id).status = "deactivated"
        self.cloud.calls.append(("image", "deactivate", image_id))

    def delete_image(self, image_id, ignore_missing=False):
        del self.cloud.images[image_id]
        self.cloud.calls.append(("image", "delete", image_id))


class Identity(_Service):
    def get_user(self, user_id):
        return self._get(self.cloud.users, user_id)

    def find_user(self, name_or_id, ignore_missing=True):
        return self._find(self.cloud.users, name_or_id)

    def get(self, url):
        return Response({"projects": [dict(p) for p in self.cloud.projects.values()], "links": {"next": None}})


class MemoryCloud:
    """Projects, users and resources in dicts; ``calls`` records every change, in order."""

    def __init__(self):
        self.servers: dict = {}
        self.volumes: dict = {}
        self.snapshots: dict = {}
        self.images: dict = {}
        self.users: dict = {}
        self.projects: dict = {}
        self.calls: list = []
        self.compute = Compute(self)
        self.block_storage = BlockStorage(self)
        self.image = Image(self)
        self.identity = Identity(self)

    # --- what tests put in it -----------------------------------------------------------
    def add_project(self, name: str, **attributes) -> str:
        project_id = _new_id()
        self.projects[project_id] = dict(attributes, id=project_id, name=name, enabled=True)
        return project_id

    def add_user(self, name: str, email: str | None = None) -> str:
        user_id = _new_id()
        self.users[user_id] = SimpleNamespace(id=user_id, name=name, email=email, is_enabled=True)
        return user_id

    def _common(self, name, project_id, user_id, metadata, status):
        return dict(id=_new_id(), name=name, project_id=project_id, user_id=user_id, created_at=CREATED,
                    metadata=dict(metadata or {}), status=status)

    def add_server(self, name, project_id, user_id, metadata=None, status="ACTIVE", image_id=None, volume_ids=()):
        server = SimpleNamespace(**self._common(name, project_id, user_id, metadata, status), addresses={},
                                 image={"id": image_id} if image_id else {}, is_locked=False, locked_reason=None,
                                 attached_volumes=[{"id": v} for v in volume_ids])
        self.servers[server.id] = server
        for volume_id in volume_ids:
            self.volumes[volume_id].attachments.append({"server_id": server.id})
        return server.id

    def add_volume(self, name, project_id, user_id, metadata=None):
        volume = SimpleNamespace(**self._common(name, project_id, user_id, metadata, "available"), attachments=[])
        self.volumes[volume.id] = volume
        return volume.id

    def add_snapshot(self, name, volume_id, metadata=None):
        volume = self.volumes[volume_id]
        snapshot = SimpleNamespace(**self._common(name, volume.project_id, volume.user_id, metadata, "available"),
                                   volume_id=volume_id)
        self.snapshots[snapshot.id] = snapshot
        return snapshot.id

    def add_image(self, name, project_id, properties=None, visibility="private"):
        image = SimpleNamespace(**self._common(name, None, None, None, "active"), owner_id=project_id,
                                properties=dict(properties or {}), visibility=visibility, size=4096,
                                is_protected=False)
        self.images[image.id] = image
        return image.id

    def changes(self, verb: str) -> list:
        """Ids in the order a change was made to them (delete, stop, deactivate, lock, ...)."""
        return [resource_id for _service, done, resource_id in self.calls if done == verb]
