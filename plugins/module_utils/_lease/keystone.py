# Copyright: osops.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Keystone as the owner lookup reads it: users one by one, projects (with their contact attribute) once per run."""

from __future__ import annotations

from .owners import CachedLookup, Owner, Person, resolve_owner


class KeystoneDirectory:
    """Users and projects as Keystone has them, each read at most once per run.

    Users are read one by one (only those that own something); projects are
    listed once, from the raw API, because a project's contact address is an
    extra attribute the SDK's Project does not keep.
    """

    def __init__(self, conn, contact_attribute: str = "contact_email"):
        self.conn = conn
        self.contact_attribute = contact_attribute
        self.user = CachedLookup(self._read_user)
        self._projects: dict[str, Person] | None = None

    def _read_user(self, user_id: str) -> Person | None:
        from openstack import exceptions

        try:
            user = self.conn.identity.get_user(user_id)
        except (exceptions.NotFoundException, exceptions.ForbiddenException):
            # a deleted user, or a run without the right to read users
            return None
        return Person(user.id, user.name, getattr(user, "email", None) or None, bool(user.is_enabled))

    def find_user(self, name_or_id: str) -> Person | None:
        """A user by id or unique name (the caller of a self-service front end), or None."""
        from openstack import exceptions

        try:
            user = self.conn.identity.find_user(name_or_id, ignore_missing=True)
        except exceptions.DuplicateResource:
            raise ValueError("user name %r is used in several domains: give the user id" % name_or_id) from None
        if user is None:
            return None
        return Person(user.id, user.name, getattr(user, "email", None) or None, bool(user.is_enabled))

    def projects(self) -> dict[str, Person]:
        if self._projects is None:
            self._projects = self._list_projects()
        return self._projects

    def project(self, project_id: str) -> Person | None:
        return self.projects().get(project_id)

    def _list_projects(self) -> dict[str, Person]:
        from openstack import exceptions

        projects: dict[str, Person] = {}
        url: str | None = "/projects"
        while url:
            response = self.conn.identity.get(url)
            if response.status_code == 403:
                return projects  # projects cannot be listed with these credentials: contacts unknown
            exceptions.raise_from_response(response)
            body = response.json()
            for project in body.get("projects", ()):
                contact = project.get(self.contact_attribute)
                projects[project["id"]] = Person(project["id"], project.get("name"), str(contact) if contact else None,
                                                 bool(project.get("enabled", True)))
            url = (body.get("links") or {}).get("next")
        return projects

    def project_ids(self, names_or_ids: list[str]) -> list[str]:
        """Project ids for ids or names; a name shared by projects of several domains is an error."""
        projects = self.projects()
        ids = []
        for wanted in names_or_ids:
            if wanted in projects:
                ids.append(wanted)
                continue
            matches = [p.id for p in projects.values() if p.name == wanted]
            if len(matches) != 1:
                raise ValueError("project %r: %s" % (wanted, "no such project" if not matches
                                                     else "name used by %d projects, give the id" % len(matches)))
            ids.append(matches[0])
        return ids

    def owner_lookup(self, fallback: str | None = None):
        """``owner_of(record, lease)`` for ``decide_scan``."""
        def owner_of(record: dict, lease) -> Owner:
            return resolve_owner(record, lease.owner, self.user, self.project, fallback)
        return owner_of
