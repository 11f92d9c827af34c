# Copyright: osops.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Stage 1 of a lease run, scan: the records of the chosen kinds and projects, named, and their users elsewhere.

Entry: ``scan()``. Reads the cloud through the adapters (one paginated listing per kind
and project, or, for a scope of resource ids, one read by id per kind and id) and Keystone
(cached names); returns a ``Scan``. Records are built by the
adapters and get their project and user names in one step, ``named()``; nothing changes
them afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

from .kind_table import KIND_ORDER, USES
from .record import ResourceRecord


@dataclass(frozen=True)
class ScanScope:
    kinds: tuple[str, ...] = KIND_ORDER
    projects: tuple[str, ...] = ()   # names or ids; empty: every project
    all_projects: bool = True
    with_users: bool = True          # list users outside the scan (needed to write leases or reap)
    resource_ids: tuple[str, ...] = ()  # only these resources, read by id; empty: every resource

    @property
    def whole_cloud(self) -> bool:
        return not self.projects and self.all_projects and not self.resource_ids


@dataclass(frozen=True)
class Scan:
    records: list[ResourceRecord]
    # resources outside the scan (another kind, another project) that may use the scanned ones: in use means in use
    # anywhere; they are never decided
    elsewhere: list[ResourceRecord]
    not_found: tuple[str, ...] = ()  # resource ids of the scope that no kind (of its projects) has


def scan(adapter_of: Callable[[str], object], directory, scope: ScanScope) -> Scan:
    """Every resource of the scope's kinds and projects (in removal order), named; and the users elsewhere."""
    project_ids = directory.project_ids(list(scope.projects)) if scope.projects else [None]
    if scope.resource_ids:
        records, not_found = by_ids(adapter_of, scope, project_ids)
        scanned_kinds = {record.kind for record in records}
    else:
        records, not_found, scanned_kinds = listed(adapter_of, scope, project_ids), (), set(scope.kinds)
    elsewhere = users_elsewhere(adapter_of, scope, scanned_kinds) if scope.with_users else []
    return Scan(named(records, directory), elsewhere, not_found)


def listed(adapter_of: Callable[[str], object], scope: ScanScope, project_ids: list) -> list[ResourceRecord]:
    records: list[ResourceRecord] = []
    for kind in KIND_ORDER:
        if kind in scope.kinds:
            for project_id in project_ids:
                records.extend(adapter_of(kind).records(scope.all_projects, project_id))
    return records


def by_ids(adapter_of: Callable[[str], object], scope: ScanScope,
           project_ids: list) -> tuple[list[ResourceRecord], tuple[str, ...]]:
    """The scope's resources read strictly by id in each of its kinds (in removal order), and the ids none has.

    Never by name: an owner may name a resource after another's id. With ``projects``, a resource of
    another project is outside the scope and counts as not found.
    """
    wanted = tuple(dict.fromkeys(scope.resource_ids))
    records: list[ResourceRecord] = []
    for kind in KIND_ORDER:
        if kind in scope.kinds:
            found = (adapter_of(kind).by_id(resource_id) for resource_id in wanted)
            records.extend(r for r in found if r is not None and (project_ids == [None] or r.project_id in project_ids))
    seen = {record.id for record in records}
    return records, tuple(resource_id for resource_id in wanted if resource_id not in seen)


def named(records: list[ResourceRecord], directory) -> list[ResourceRecord]:
    """The one enrichment step: each record with its project's and user's names (None where unknown)."""
    enriched = []
    for record in records:
        project = directory.project(record.project_id) if record.project_id else None
        user = directory.user(record.user_id) if record.user_id else None
        enriched.append(replace(record, project_name=project.name if project else None,
                                user_name=user.name if user else None))
    return enriched


def users_elsewhere(adapter_of: Callable[[str], object], scope: ScanScope,
                    scanned_kinds: set[str]) -> list[ResourceRecord]:
    """Every kind that may use a scanned kind, across the whole cloud, unless the scan listed it in full already."""
    needed = {user for kind in scanned_kinds for user in USES.get(kind, ())}
    records: list[ResourceRecord] = []
    for kind in KIND_ORDER:
        if kind in needed and not (scope.whole_cloud and kind in scope.kinds):
            records.extend(adapter_of(kind).records(True, None))
    return records
