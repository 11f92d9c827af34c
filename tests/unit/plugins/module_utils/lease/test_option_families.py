# SPDX-License-Identifier: GPL-3.0-or-later
"""Each option family of the lease modules is declared once (options.py) and agrees everywhere else.

Families: policy, exemptions, scope. For each, the doc fragment documents exactly its argument spec;
the modules take it from there (and only the families they use); the dataclasses that hold the
options have the same defaults; the lease role's argument specs declare the same types and defaults
for the variables that carry them (the ``lease_policy`` dict, or a ``lease_<option>`` variable).
"""

from __future__ import annotations

import inspect
import os
from dataclasses import fields

import pytest
import yaml

from ansible.parsing.utils.yaml import from_yaml

from ansible_collections.osops.lifecycle.plugins.doc_fragments import lease_exemptions, lease_policy, lease_scope
from ansible_collections.osops.lifecycle.plugins.module_utils._lease.exempt import CompiledExemptions, Exemptions
from ansible_collections.osops.lifecycle.plugins.module_utils._lease.keys import LeaseKeys
from ansible_collections.osops.lifecycle.plugins.module_utils._lease.options import (
    EXEMPTIONS_ARGUMENT_SPEC, POLICY_ARGUMENT_SPEC, SCOPE_ARGUMENT_SPEC,
)
from ansible_collections.osops.lifecycle.plugins.module_utils._lease.policy import Policy
from ansible_collections.osops.lifecycle.plugins.modules import lease_reap, resource_lease

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", "..", ".."))

# family -> (its argument spec, its doc fragment)
FAMILIES = {
    "lease_policy": (POLICY_ARGUMENT_SPEC, lease_policy.ModuleDocFragment),
    "lease_exemptions": (EXEMPTIONS_ARGUMENT_SPEC, lease_exemptions.ModuleDocFragment),
    "lease_scope": (SCOPE_ARGUMENT_SPEC, lease_scope.ModuleDocFragment),
}
# module -> the families it takes whole, and single options it takes from other families
MODULES = {
    "lease_reap": (lease_reap.LeaseReapModule, lease_reap.DOCUMENTATION,
                   ("lease_policy", "lease_exemptions", "lease_scope"), ()),
    "resource_lease": (resource_lease.ResourceLeaseModule, resource_lease.DOCUMENTATION,
                       ("lease_policy",), ("all_projects",)),
}
# the attributes that describe an option in both an argument spec and a doc fragment
ATTRIBUTES = ("type", "default", "elements", "choices")

# option -> (dataclass, field) that holds it; every field of these dataclasses is someone's option
HOLDERS = {
    "key_prefix": (LeaseKeys, "prefix"),
    "lifetime_days": (Policy, "lifetime_days"),
    "milestones_days": (Policy, "milestones_days"),
    "grace_days": (Policy, "grace_days"),
    "max_lease_days": (Policy, "max_lease_days"),
    "max_extensions": (Policy, "max_extensions"),
    "exempt_users": (Exemptions, "users"),
    "exempt_projects": (Exemptions, "projects"),
    "exempt_ids": (Exemptions, "resource_ids"),
    "exempt_names": (Exemptions, "name_globs"),
    "exempt_metadata": (Exemptions, "metadata"),
    "exempt_cidrs": (Exemptions, "cidrs"),
    "exempt_jmespath": (Exemptions, "jmespath"),
    "exempt_image_visibilities": (Exemptions, "image_visibilities"),
}

# options the lease role carries in a variable of their own; all other policy and exemption
# options are keys of its lease_policy dict
ROLE_VARIABLES = {
    "seal_key_file": "lease_seal_key_file",
    "seal_enforced_from": "lease_seal_enforced_from",
    "as_of": "lease_as_of",
    "sealed_exemptions_only": "lease_sealed_exemptions_only",
    "kinds": "lease_kinds",
    "projects": "lease_projects",
    "all_projects": "lease_all_projects",
    "resource_ids": "lease_resource_ids",
}


def described(option: dict) -> dict:
    return {attribute: option.get(attribute) for attribute in ATTRIBUTES}


def load(*path):
    with open(os.path.join(REPO, *path)) as handle:
        return from_yaml(handle.read())


def role_entry_points():
    """The entry points of the lease role that take the lease policy, with their options."""
    specs = load("roles", "lease", "meta", "argument_specs.yml")["argument_specs"]
    found = {name: entry["options"] for name, entry in specs.items() if "lease_policy" in (entry.get("options") or {})}
    assert found, "no entry point of the lease role takes lease_policy"
    return found


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_each_fragment_documents_exactly_its_family(family):
    spec, fragment = FAMILIES[family]
    documented = yaml.safe_load(fragment.DOCUMENTATION)["options"]
    assert sorted(documented) == sorted(spec)
    for name, option in spec.items():
        assert described(documented[name]) == described(option), name


def test_the_families_do_not_overlap():
    names = [name for spec, _fragment in FAMILIES.values() for name in spec]
    assert len(names) == len(set(names))


@pytest.mark.parametrize("module", sorted(MODULES))
def test_modules_take_their_families_from_the_one_source_and_document_them_by_fragment(module):
    module_class, documentation, families, singles = MODULES[module]
    doc = yaml.safe_load(documentation)
    spec = module_class.argument_spec
    for family in families:
        assert "osops.lifecycle." + family in doc["extends_documentation_fragment"]
        for name, option in FAMILIES[family][0].items():
            assert spec[name] is option, name  # taken from the family, not declared again
            assert name not in doc["options"], "%s: documented by the fragment %s" % (name, family)
    others = [family for family in FAMILIES if family not in families]
    for family in others:
        assert "osops.lifecycle." + family not in doc["extends_documentation_fragment"]
        for name, option in FAMILIES[family][0].items():
            if name in singles:
                assert spec[name] is option, name
                assert described(doc["options"][name]) == described(option), name
            else:
                assert name not in spec, "%s does not use %s" % (module, name)


def test_resource_lease_takes_no_exemptions():
    # it changes the resources it is named, exempt or not; its own option "exempt" seals an exemption
    assert not [name for name in resource_lease.ResourceLeaseModule.argument_spec if name.startswith("exempt_")]


def _as_field(value, example):
    """An option's value as the dataclass field holds it (lists become tuples or sets, dicts sorted pairs)."""
    if isinstance(value, dict):
        return tuple(sorted((str(k), str(v)) for k, v in value.items()))
    if isinstance(value, list):
        return type(example)(value) if isinstance(example, (tuple, frozenset)) else value
    return value


def test_dataclass_defaults_are_the_option_defaults():
    every_option = dict(POLICY_ARGUMENT_SPEC, **EXEMPTIONS_ARGUMENT_SPEC)
    for option, (holder, name) in HOLDERS.items():
        default = getattr(holder(), name)
        assert _as_field(every_option[option].get("default"), default) == default, (option, holder.__name__, name)
    for holder in {holder for holder, _name in HOLDERS.values()}:
        held = {name for owner, name in HOLDERS.values() if owner is holder}
        assert {f.name for f in fields(holder)} == held, "%s: a field without an option" % holder.__name__
    sealed_only = inspect.signature(CompiledExemptions).parameters["sealed_only"].default
    assert EXEMPTIONS_ARGUMENT_SPEC["sealed_exemptions_only"]["default"] is sealed_only


def _role_default(option: dict):
    """The role's default as a module default: the role says "" for "not set", the modules None."""
    default = option.get("default")
    return None if default == "" else default


@pytest.mark.parametrize("entry_point", sorted(role_entry_points()))
def test_the_lease_role_declares_the_same_types_and_defaults(entry_point):
    options = role_entry_points()[entry_point]
    policy = options["lease_policy"]
    assert policy["type"] == "dict" and policy.get("default") == {}
    in_policy = policy["options"]
    carried = dict(POLICY_ARGUMENT_SPEC, **EXEMPTIONS_ARGUMENT_SPEC)
    # every policy and exemption option reaches the modules: a key of lease_policy or a variable of its own
    assert sorted(in_policy) == sorted(name for name in carried if name not in ROLE_VARIABLES)
    for name, suboption in in_policy.items():
        assert described(suboption) == described(carried[name]), "lease_policy.%s" % name
    every_option = dict(carried, **SCOPE_ARGUMENT_SPEC)
    for name, variable in ROLE_VARIABLES.items():
        if variable in options:
            role_option = options[variable]
            assert dict(described(role_option), default=_role_default(role_option)) == described(every_option[name]), \
                variable


def test_every_option_with_a_role_variable_has_it_declared():
    declared = {variable for options in role_entry_points().values() for variable in options}
    assert sorted(set(ROLE_VARIABLES.values()) - declared) == []


def test_the_role_defaults_are_its_specs_defaults():
    defaults = load("roles", "lease", "defaults", "main.yml")
    for entry_point, options in role_entry_points().items():
        for variable in ("lease_policy",) + tuple(ROLE_VARIABLES.values()):
            if variable in options:
                assert defaults[variable] == options[variable].get("default"), (entry_point, variable)
