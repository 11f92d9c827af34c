# Copyright: osops.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What "in use" means, in one place (pure).

A resource is in use while a resource that uses it stays: a server uses its image and
volumes, a snapshot keeps its volume (the edges are the kind table's ``refs``). Users are
counted from the whole cloud, not only the scanned projects and kinds. The decision
(``users_of`` + ``in_use_reason``) and the reaper (``blocking_user``, between kinds of one
run) read the same edges; right before a removal the adapter asks the service once more
(``Adapter.in_use_now``) because the cloud moves between scan and removal.
"""

from __future__ import annotations

from typing import Iterable

from .record import Key, ResourceRecord


def users_of(records: Iterable[ResourceRecord]) -> dict[Key, set[Key]]:
    """Who uses what, from every record's edges."""
    users: dict[Key, set[Key]] = {}
    for record in records:
        for user, used in record.edges():
            users.setdefault(used, set()).add(user)
    return users


def in_use_reason(users: set[Key] | frozenset[Key], removing: set[Key]) -> str | None:
    """Why a resource must stay: users that are not removed in this run, or None."""
    staying = sorted(users - removing)
    if not staying:
        return None
    kinds: dict[str, int] = {}
    for user in staying:
        kinds[user.kind] = kinds.get(user.kind, 0) + 1
    listed = ", ".join("%d %s%s" % (count, kind, "" if count == 1 else "s") for kind, count in sorted(kinds.items()))
    return "still used by %s (%s)" % (listed, ", ".join(user.id for user in staying[:3]) + (", ..." if len(staying) > 3 else ""))


def blocking_user(users: frozenset[Key], not_removed: frozenset[Key]) -> Key | None:
    """During a reap: a user that an earlier kind's removal left in place (the first, in order), or None."""
    blocking = sorted(users & not_removed)
    return blocking[0] if blocking else None
