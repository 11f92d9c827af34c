# Copyright: osops.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The shipped rulebooks hold together: ansible-rulebook's own schema accepts them, the playbooks they run exist in
the collection, the source options they set are the plugin's, and every action runs one at a time."""

from __future__ import annotations

import glob
import json
import os

import pytest
import yaml

ROOT = os.path.join(os.path.dirname(__file__), "..", "..", "..")
RULEBOOKS = sorted(glob.glob(os.path.join(ROOT, "extensions", "eda", "rulebooks", "*.yml")))
PLUGIN = os.path.join(ROOT, "extensions", "eda", "plugins", "event_source", "openstack_notifications.py")
SOURCE = "osops.lifecycle.openstack_notifications"


def plugin_options() -> set[str]:
    text = open(PLUGIN).read()
    documentation = text.split('DOCUMENTATION = r"""', 1)[1].split('"""', 1)[0]
    return set(yaml.safe_load(documentation)["options"])


def test_both_rulebooks_ship():
    assert {os.path.basename(path) for path in RULEBOOKS} == {"imagecache.yml", "leases.yml"}


@pytest.mark.parametrize("path", RULEBOOKS, ids=os.path.basename)
def test_ansible_rulebooks_schema_accepts_it(path):
    import jsonschema
    import ansible_rulebook

    schema_path = os.path.join(os.path.dirname(ansible_rulebook.__file__), "schema", "ruleset_schema.json")
    with open(schema_path) as handle:
        jsonschema.validate(yaml.safe_load(open(path)), json.load(handle))


@pytest.mark.parametrize("path", RULEBOOKS, ids=os.path.basename)
def test_playbooks_sources_and_strategy(path):
    options = plugin_options()
    for ruleset in yaml.safe_load(open(path)):
        # two events never run two playbooks at once (two rollouts on one node, two writes of one lease)
        assert ruleset.get("execution_strategy", "sequential") == "sequential"
        for source in ruleset["sources"]:
            arguments = source[SOURCE]
            assert set(arguments) <= options, "unknown source options: %s" % (set(arguments) - options)
            # a queue of its own per rulebook: two rulebooks on one host must not split each other's events
            assert arguments["queue"].startswith("osops-lifecycle-")
        for rule in ruleset["rules"]:
            name = rule["action"]["run_playbook"]["name"]
            namespace, collection, playbook = name.split(".")
            assert (namespace, collection) == ("osops", "lifecycle")
            assert os.path.exists(os.path.join(ROOT, "playbooks", playbook + ".yml")), name


def test_the_rulebooks_queues_differ():
    queues = [source[SOURCE]["queue"] for path in RULEBOOKS for ruleset in yaml.safe_load(open(path))
              for source in ruleset["sources"]]
    assert len(queues) == len(set(queues))
