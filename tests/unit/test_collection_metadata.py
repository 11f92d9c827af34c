# SPDX-License-Identifier: GPL-3.0-or-later
"""Collection metadata that users rely on stays true as modules are added."""

from __future__ import annotations

import os

import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def load(path):
    with open(os.path.join(REPO, path)) as handle:
        return yaml.safe_load(handle)


def cloud_module_names():
    """Modules that take the OpenStack auth options (they use that doc fragment)."""
    folder = os.path.join(REPO, "plugins", "modules")
    names = set()
    for name in os.listdir(folder):
        if name.endswith(".py") and not name.startswith("_"):
            with open(os.path.join(folder, name)) as handle:
                if "openstack.cloud.openstack" in handle.read():
                    names.add(name[:-3])
    return names


def test_action_group_lists_every_cloud_module_and_extends_openstack_cloud():
    # Modules without cloud auth (imagecache_link) stay out: group defaults
    # such as "cloud:" would make them fail on unsupported parameters.
    group = load("meta/runtime.yml")["action_groups"]["lifecycle"]
    listed = {entry for entry in group if isinstance(entry, str)}
    metadata = [entry["metadata"] for entry in group if isinstance(entry, dict)]

    assert listed == cloud_module_names()
    assert metadata and "openstack.cloud.openstack" in metadata[0]["extend_group"]


def test_galaxy_dependencies_and_license():
    galaxy = load("galaxy.yml")
    assert (galaxy["namespace"], galaxy["name"]) == ("osops", "lifecycle")
    assert galaxy["license"] == ["GPL-3.0-or-later"]
    assert galaxy["dependencies"] == {"openstack.cloud": ">=2.0.0", "community.general": ">=9.0.0"}


def test_execution_environment_names_requirement_files_that_exist():
    ee = load("meta/execution-environment.yml")
    for kind in ("python", "system"):
        assert os.path.isfile(os.path.join(REPO, ee["dependencies"][kind])), kind
    with open(os.path.join(REPO, ee["dependencies"]["python"])) as handle:
        wanted = {line.split(">")[0].split("=")[0].strip() for line in handle if line.strip() and not line.startswith("#")}
    assert {"openstacksdk", "jmespath", "netaddr"} <= wanted
