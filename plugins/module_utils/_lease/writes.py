# Copyright: osops.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Acting on a lease: writing its keys and lifting the reaper's lock, each audited (shared by LeaseRun and LeaseEditor)."""

from __future__ import annotations

from datetime import datetime

from .._errors import describe_sdk_error
from .audit import AuditLog
from .record import ResourceRecord


def write_lease_keys(adapter, record: ResourceRecord, values: dict, remove: tuple, audit: AuditLog, allowed: bool,
                     **fields) -> dict:
    """Write an effective lease change (see ``effective_change``), or say it would be written; audit either way."""
    fields = dict(ResourceRecord.of(record).identity(), set=dict(values), remove=list(remove), **fields)
    if not allowed:
        return audit.write("lease", outcome="would_write", **fields)
    try:
        adapter.apply(record.id, values, remove)
    except Exception as error:  # pylint: disable=broad-except
        return audit.write("lease", outcome="failed", error=describe_sdk_error(error), **fields)
    return audit.write("lease", outcome="written", **fields)


def unlock_extended(adapter, record: ResourceRecord, lease, now: datetime, audit: AuditLog, allowed: bool) -> dict | None:
    """Unlock a server the reaper locked once its lease runs again (extended by the portal, an operator or a
    request), so that its owner can start or unshelve it; None when there is nothing to unlock."""
    if lease is None or lease.expires is None or lease.expires <= now or not adapter.locked_by_reaper(record):
        return None
    return release_lock(adapter, record, audit, allowed)


def release_lock(adapter, record: ResourceRecord, audit: AuditLog, allowed: bool) -> dict:
    """Lift the reaper's lock on a server (or say it would be lifted); audited."""
    named = ResourceRecord.of(record).identity()
    if not allowed:
        return audit.write("unlock", outcome="would_unlock", **named)
    try:
        adapter.unlock(record)
    except Exception as error:  # pylint: disable=broad-except
        return audit.write("unlock", outcome="failed", error=describe_sdk_error(error), **named)
    return audit.write("unlock", outcome="unlocked", **named)
