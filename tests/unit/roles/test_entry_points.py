# Copyright: osops.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Every entry point of our roles that a playbook or a role uses has an argument spec that declares
what it is given: a ``tasks_from`` names an entry point of the role's ``meta/argument_specs.yml``, and
each variable passed in the ``vars`` of an ``include_role``/``import_role`` (or a play's ``roles:``
entry) is an option of that entry point."""

from __future__ import annotations

import glob
import os

import pytest
from ansible.parsing.utils.yaml import from_yaml

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), *[os.pardir] * 3))
COLLECTION = "osops.lifecycle."
ROLE_ACTIONS = ("include_role", "import_role", "ansible.builtin.include_role", "ansible.builtin.import_role")


def load(path):
    with open(path) as handle:
        return from_yaml(handle.read())  # playbooks carry !unsafe


def our_role(name: str) -> str | None:
    """The role directory name for osops.lifecycle.<role> (or a bare name of one of our roles), else None."""
    name = name[len(COLLECTION):] if name.startswith(COLLECTION) else name
    return name if os.path.isdir(os.path.join(REPO, "roles", name)) else None


def role_uses_in_tasks(tasks, path):
    """(file, role, entry point, variables passed) of each include_role/import_role, blocks included."""
    for task in tasks or []:
        for key in ("block", "rescue", "always"):
            yield from role_uses_in_tasks(task.get(key), path)
        for action in ROLE_ACTIONS:
            if action in task:
                role = our_role(task[action]["name"])
                if role:
                    entry = os.path.splitext(task[action].get("tasks_from") or "main")[0]
                    yield path, role, entry, sorted(task.get("vars") or {})


def role_uses():
    for path in sorted(glob.glob(os.path.join(REPO, "playbooks", "*.yml"))):
        for play in load(path):
            for entry in play.get("roles") or []:
                entry = entry if isinstance(entry, dict) else {"role": entry}
                role = our_role(entry.get("role") or entry.get("name"))
                if role:
                    passed = entry.get("vars") or {k: v for k, v in entry.items() if k not in ("role", "name", "tags", "when")}
                    yield path, role, "main", sorted(passed)
            for section in ("pre_tasks", "tasks", "post_tasks", "handlers"):
                yield from role_uses_in_tasks(play.get(section), path)
    for path in sorted(glob.glob(os.path.join(REPO, "roles", "*", "*", "*.yml"))):
        if os.path.basename(os.path.dirname(path)) in ("tasks", "handlers"):
            yield from role_uses_in_tasks(load(path), path)


def specs(role: str) -> dict:
    return load(os.path.join(REPO, "roles", role, "meta", "argument_specs.yml"))["argument_specs"]


USES = list(role_uses())


def use_id(use) -> str:
    path, role, entry, _variables = use
    return "%s: %s#%s" % (os.path.relpath(path, REPO), role, entry)


def test_the_playbooks_use_our_roles_through_entry_points_and_vars():
    # the search finds what it is meant to check
    assert {(role, entry) for _path, role, entry, _variables in USES} >= {
        ("lease", "main"), ("lease", "scan"), ("lease", "reap"), ("lease", "policy"),
        ("imagecache", "main"), ("imagecache", "read_images"), ("imagecache", "summary")}
    assert any(variables for _path, _role, _entry, variables in USES)


@pytest.mark.parametrize("path, role, entry, variables", USES, ids=[use_id(use) for use in USES])
def test_each_entry_point_used_has_a_spec_that_declares_what_it_is_given(path, role, entry, variables):
    entry_points = specs(role)
    assert entry in entry_points, "%s: no argument spec for the entry point %s of %s" % (path, entry, role)
    options = entry_points[entry].get("options") or {}
    assert [name for name in variables if name not in options] == []


@pytest.mark.parametrize("role", sorted(os.listdir(os.path.join(REPO, "roles"))))
def test_each_entry_point_of_a_spec_is_a_tasks_file(role):
    for entry in specs(role):
        assert os.path.isfile(os.path.join(REPO, "roles", role, "tasks", entry + ".yml")), entry
