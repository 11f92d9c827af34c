# SPDX-License-Identifier: GPL-3.0-or-later
"""Every lease module call of the lease role and the playbooks gets only options the module takes.

The role hands its policy to the modules through ``module_defaults`` (the action group
``osops.lifecycle.lifecycle`` and per module); a module given an option it does not take fails
with "Unsupported parameters". The facts the role's ``policy`` tasks set are rendered here with a
``lease_policy`` that sets every key, and each call's options (group defaults, module defaults,
its own) are checked against the module's argument spec.
"""

from __future__ import annotations

import glob
import os

import pytest
import yaml
from ansible.parsing.dataloader import DataLoader
from ansible.parsing.utils.yaml import from_yaml
from ansible.template import Templar, trust_as_template

from ansible_collections.openstack.cloud.plugins.module_utils.openstack import openstack_full_argument_spec
from ansible_collections.osops.lifecycle.plugins.module_utils._lease.options import (
    EXEMPTIONS_ARGUMENT_SPEC, POLICY_ARGUMENT_SPEC, SCOPE_ARGUMENT_SPEC,
)
from ansible_collections.osops.lifecycle.plugins.modules import lease_reap, resource_lease

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), *[os.pardir] * 4))
ROLE = os.path.join(REPO, "roles", "lease")
MODULES = {"osops.lifecycle.lease_reap": lease_reap.LeaseReapModule,
           "osops.lifecycle.resource_lease": resource_lease.ResourceLeaseModule}
GROUP = "group/osops.lifecycle.lifecycle"


def load(path):
    with open(path) as handle:
        return from_yaml(handle.read())  # playbooks carry !unsafe


def accepted(module_class) -> set:
    spec = openstack_full_argument_spec(**module_class.argument_spec)
    return set(spec) | {alias for option in spec.values() for alias in option.get("aliases", ())}


def group_members() -> set:
    group = load(os.path.join(REPO, "meta", "runtime.yml"))["action_groups"]["lifecycle"]
    return {"osops.lifecycle." + member for member in group if isinstance(member, str)}


def a_full_policy() -> dict:
    """lease_policy with every key the role's argument specs allow, each at its default."""
    specs = load(os.path.join(ROLE, "meta", "argument_specs.yml"))["argument_specs"]
    keys = {}
    for entry in specs.values():
        keys.update((entry.get("options") or {}).get("lease_policy", {}).get("options") or {})
    assert keys
    return {name: option.get("default") if option.get("default") is not None else "x" for name, option in keys.items()}


def role_facts() -> dict:
    """The facts the role's policy tasks set, with every policy key and every optional setting given."""
    with open(os.path.join(ROLE, "defaults", "main.yml")) as handle:
        variables = yaml.safe_load(handle)
    variables.update(lease_policy=a_full_policy(), lease_cloud="lab", lease_region_name="RegionOne",
                     lease_seal_key_file="/etc/osops/seal.keys", lease_seal_enforced_from="2026-01-01T00:00:00Z",
                     lease_as_of="2030-01-01T00:00:00Z", lease_owner_fallback="ops@example.org",
                     lease_audit_log="/var/log/osops/audit.jsonl", lease_resource_ids=["7c3e0c7a"])
    templar = Templar(loader=DataLoader(), variables=variables)
    facts = {}
    for task in load(os.path.join(ROLE, "tasks", "policy.yml")):
        for name, value in (task.get("ansible.builtin.set_fact") or task.get("set_fact") or {}).items():
            facts[name] = templar.template(trust_as_template(value)) if isinstance(value, str) else value
            templar.available_variables = dict(variables, **facts)
    assert "lease_module_defaults" in facts
    return facts


def module_calls():
    """(file, task name, module, options) of every lease module call in the role's tasks and the playbooks."""
    facts = role_facts()
    templar = Templar(loader=DataLoader(), variables=facts)
    members = group_members()

    def defaults_of(node, inherited):
        given = node.get("module_defaults") or {}
        merged = {key: dict(value) for key, value in inherited.items()}
        for action, value in given.items():
            if action != GROUP and action not in MODULES:
                continue  # another module's defaults (mail)
            value = templar.template(trust_as_template(value)) if isinstance(value, str) else value
            merged.setdefault(action, {}).update(value)
        return merged

    def walk(tasks, inherited, path):
        for task in tasks or []:
            defaults = defaults_of(task, inherited)
            for key in ("block", "rescue", "always"):
                if key in task:
                    yield from walk(task[key], defaults, path)
            for module in MODULES:
                if module in task:
                    options = dict(defaults.get(GROUP, {})) if module in members else {}
                    options.update(defaults.get(module, {}))
                    options.update(task[module] or {})
                    yield os.path.relpath(path, REPO), task.get("name"), module, options

    paths = sorted(glob.glob(os.path.join(ROLE, "tasks", "*.yml")))
    for path in paths:
        yield from walk(load(path), {}, path)
    for path in sorted(glob.glob(os.path.join(REPO, "playbooks", "*.yml"))):
        for play in load(path):
            yield from walk(play.get("tasks"), defaults_of(play, {}), path)


CALLS = list(module_calls())


def test_the_role_and_playbooks_call_both_lease_modules():
    assert {module for _path, _name, module, _options in CALLS} == set(MODULES)


def call_id(call) -> str:
    return "%s: %s" % (call[0], call[1])


@pytest.mark.parametrize("path, name, module, options", CALLS, ids=[call_id(call) for call in CALLS])
def test_every_call_gets_only_options_its_module_takes(path, name, module, options):
    assert sorted(set(options) - accepted(MODULES[module])) == []


@pytest.mark.parametrize("path, name, module, options", CALLS, ids=[call_id(call) for call in CALLS])
def test_every_call_gets_the_whole_policy_its_module_takes(path, name, module, options):
    # the policy reaches every module; the exemptions reach lease_reap (the only module that takes them)
    wanted = set(a_full_policy()) & accepted(MODULES[module])
    wanted |= {"seal_key_file", "seal_enforced_from"}
    if module == "osops.lifecycle.lease_reap":
        wanted |= {"as_of", "sealed_exemptions_only"} | set(SCOPE_ARGUMENT_SPEC)
    assert sorted(wanted - set(options)) == []
    assert wanted <= set(POLICY_ARGUMENT_SPEC) | set(EXEMPTIONS_ARGUMENT_SPEC) | set(SCOPE_ARGUMENT_SPEC)
