# Copyright: osops.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The resource record: what the scan read about one resource, typed and frozen (stdlib only).

Built once by an adapter (``kinds.py``), given its project and user names in one step
(``scan.named``), read everywhere else and never changed. It also reads as a mapping
(``record["id"]``, ``record.get("addresses")``) because exemption rules, JMESPath
expressions and results name its fields; a kind's own fields (``image_id``, ``attached_to``,
``visibility``, ...) live in ``details`` and read the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any, Iterator, Mapping

from .kind_table import KIND


@dataclass(frozen=True, order=True)
class Key:
    """A resource's identity across kinds."""

    kind: str
    id: str

    def __str__(self) -> str:
        return "%s %s" % (self.kind, self.id)


@dataclass(frozen=True, eq=False)
class ResourceRecord(Mapping):
    kind: str
    id: str
    name: str | None = None
    status: str | None = None
    project_id: str | None = None
    user_id: str | None = None
    created_at: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    details: Mapping[str, Any] = field(default_factory=dict)  # the kind's own fields
    project_name: str | None = None
    user_name: str | None = None
    record_error: str | None = None  # the adapter could not read it: reported, never acted on

    def __post_init__(self):
        # metadata an adapter could not read as a mapping counts as none; lists become tuples: nothing changes it later
        metadata = self.metadata if isinstance(self.metadata, Mapping) else {}
        object.__setattr__(self, "metadata", MappingProxyType(dict(metadata)))
        object.__setattr__(self, "details", MappingProxyType(
            {key: tuple(value) if isinstance(value, list) else value for key, value in dict(self.details).items()}))

    @classmethod
    def of(cls, data: Mapping) -> "ResourceRecord":
        """A record from plain data (tests, event payloads): known fields by name, the rest as details."""
        if isinstance(data, ResourceRecord):
            return data
        known = {name: data[name] for name in FIELDS if name in data}
        return cls(details={key: value for key, value in data.items() if key not in FIELDS}, **known)

    @property
    def key(self) -> Key:
        return Key(self.kind, self.id)

    def identity(self) -> dict:
        """The fields that name a resource in results and audit records."""
        return {"kind": self.kind, "id": self.id, "name": self.name, "project_id": self.project_id,
                "project_name": self.project_name}

    def edges(self) -> Iterator[tuple[Key, Key]]:
        """(user, used) pairs this record names, by the kind table's refs."""
        spec = KIND.get(self.kind)
        for ref in spec.refs if spec else ():
            value = self.details.get(ref.field)
            for other in value if isinstance(value, (list, tuple)) else (value,):
                if other and isinstance(other, str):
                    yield (self.key, Key(ref.kind, other)) if ref.uses else (Key(ref.kind, other), self.key)

    def plain(self) -> dict:
        """A plain dict copy (JMESPath, JSON)."""
        return {key: _plain(value) for key, value in self.items()}

    def __getitem__(self, key: str):
        if key in FIELDS:
            return getattr(self, key)
        return self.details[key]

    def __iter__(self):
        yield from FIELDS
        yield from (key for key in self.details if key not in FIELDS)

    def __len__(self) -> int:
        return len(FIELDS) + sum(1 for key in self.details if key not in FIELDS)


def _plain(value):
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, tuple):
        return [_plain(item) for item in value]
    return value


FIELDS = tuple(f.name for f in fields(ResourceRecord) if f.name != "details")
