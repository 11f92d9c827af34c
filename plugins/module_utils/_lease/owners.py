# Copyright: osops.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Who owns a resource, and at which address they are told (pure; lookups injected: keystone.py reads Keystone).

The chain, first hit wins:
1. the lease's owner override (``<prefix>owner``), only when the collection sealed it;
2. the resource's user as the service records it (Nova's and Cinder's ``user_id``;
   never an image property, which owners write) -> that Keystone user's e-mail;
3. the project's contact address (a project attribute, ``contact_email`` by default);
4. a configured fallback address (the operators' list).
A resource none of these reaches is reported as unowned: it is never notified
and so never removed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from .keys import valid_email

OVERRIDE = "lease owner override"
USER = "user"
PROJECT = "project contact"
FALLBACK = "fallback address"


@dataclass(frozen=True)
class Person:
    """What Keystone says of a user or project, as far as mail is concerned."""

    id: str
    name: str | None = None
    email: str | None = None
    enabled: bool = True


@dataclass(frozen=True)
class Owner:
    email: str | None
    source: str | None
    user_id: str | None = None
    user_name: str | None = None
    # why the chain went past the user, or why nobody was found
    note: str | None = None

    @property
    def known(self) -> bool:
        return bool(self.email)


class CachedLookup:
    """Look each id up once per run (a user owns many resources)."""

    def __init__(self, lookup: Callable[[str], Person | None]):
        self.lookup = lookup
        self.cache: dict[str, Person | None] = {}
        self.calls = 0

    def __call__(self, key: str) -> Person | None:
        if key not in self.cache:
            self.calls += 1
            self.cache[key] = self.lookup(key)
        return self.cache[key]


def resolve_owner(
    resource: dict,
    lease_owner: str | None,
    users: Callable[[str], Person | None],
    projects: Callable[[str], Person | None],
    fallback: str | None = None,
) -> Owner:
    """The owner to notify about ``resource`` (dict with ``user_id``, ``project_id``)."""
    user_id = resource.get("user_id")
    user = users(user_id) if user_id else None
    user_name = user.name if user else None
    if lease_owner:
        return Owner(lease_owner, OVERRIDE, user_id, user_name)
    notes = []
    if user_id and user is None:
        notes.append("user %s not found" % user_id)
    elif user is not None and not user.email:
        notes.append("user %s has no e-mail" % (user.name or user.id))
    elif user is not None and not valid_email(user.email):
        notes.append("user %s has no plain e-mail address" % (user.name or user.id))
    elif user is not None:
        note = None if user.enabled else "user %s is disabled" % (user.name or user.id)
        return Owner(user.email, USER, user_id, user_name, note)
    else:
        notes.append("no user recorded")
    project_id = resource.get("project_id")
    project = projects(project_id) if project_id else None
    if project is not None and project.email and valid_email(project.email):
        return Owner(project.email, PROJECT, user_id, user_name, "; ".join(notes))
    notes.append("project %s has no contact" % (project.name or project.id) if project else "project unknown")
    if fallback:
        return Owner(fallback, FALLBACK, user_id, user_name, "; ".join(notes))
    return Owner(None, None, user_id, user_name, "unowned: " + "; ".join(notes))
