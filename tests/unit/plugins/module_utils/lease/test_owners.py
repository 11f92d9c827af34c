# SPDX-License-Identifier: GPL-3.0-or-later
"""Owner resolution: override, user, project contact, fallback; never silently unowned."""

from __future__ import annotations

import pytest

from ansible_collections.osops.lifecycle.plugins.module_utils._lease.owners import (
    FALLBACK,
    OVERRIDE,
    PROJECT,
    USER,
    CachedLookup,
    Person,
    resolve_owner,
)

USERS = {
    "u-ana": Person("u-ana", "ana", "ana@example.org"),
    "u-noemail": Person("u-noemail", "nomail", None),
    "u-gone": Person("u-gone", "gone", "gone@example.org", enabled=False),
}
PROJECTS = {
    "p-ci": Person("p-ci", "ci", "ci-team@example.org"),
    "p-lab": Person("p-lab", "lab", None),
}


def resolve(resource, lease_owner=None, fallback=None):
    return resolve_owner(resource, lease_owner, USERS.get, PROJECTS.get, fallback)


@pytest.mark.parametrize(
    "resource, lease_owner, fallback, email, source, note",
    [
        ({"user_id": "u-ana", "project_id": "p-lab"}, None, None, "ana@example.org", USER, None),
        ({"user_id": "u-ana", "project_id": "p-lab"}, "boss@example.org", None, "boss@example.org", OVERRIDE, None),
        ({"user_id": "u-noemail", "project_id": "p-ci"}, None, None, "ci-team@example.org", PROJECT, "user nomail has no e-mail"),
        ({"project_id": "p-ci"}, None, None, "ci-team@example.org", PROJECT, "no user recorded"),  # an image
        ({"user_id": "u-deleted", "project_id": "p-ci"}, None, None, "ci-team@example.org", PROJECT, "user u-deleted not found"),
        ({"user_id": "u-gone", "project_id": "p-ci"}, None, None, "gone@example.org", USER, "user gone is disabled"),
        ({"user_id": "u-noemail", "project_id": "p-lab"}, None, "ops@example.org", "ops@example.org", FALLBACK,
         "user nomail has no e-mail; project lab has no contact"),
    ],
)
def test_resolution_chain(resource, lease_owner, fallback, email, source, note):
    owner = resolve(resource, lease_owner, fallback)
    assert (owner.email, owner.source, owner.note) == (email, source, note)


def test_nobody_found_is_reported_as_unowned():
    owner = resolve({"user_id": "u-noemail", "project_id": "p-lab"})
    assert not owner.known and owner.note == "unowned: user nomail has no e-mail; project lab has no contact"


def test_lookups_are_cached_per_run():
    calls = []
    users = CachedLookup(lambda key: calls.append(key) or USERS.get(key))
    for _resource in range(50):
        resolve_owner({"user_id": "u-ana", "project_id": "p-ci"}, None, users, PROJECTS.get)
    assert calls == ["u-ana"] and users.calls == 1
