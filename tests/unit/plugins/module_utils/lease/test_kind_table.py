# SPDX-License-Identifier: GPL-3.0-or-later
"""The kind table is the one source of the kinds: modules, role specs and playbooks agree with it."""

from __future__ import annotations

import os
import re

from ansible.parsing.utils.yaml import from_yaml

from ansible_collections.osops.lifecycle.plugins.module_utils._lease import kinds, token
from ansible_collections.osops.lifecycle.plugins.module_utils._lease.keys import LeaseKeys
from ansible_collections.osops.lifecycle.plugins.module_utils._lease.kind_table import KIND, KIND_ORDER, KINDS, USES
from ansible_collections.osops.lifecycle.plugins.modules import lease_reap, resource_lease

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", "..", ".."))


def load(*path):
    with open(os.path.join(REPO, *path)) as handle:
        return from_yaml(handle.read())  # playbooks carry !unsafe


def lease_role_options():
    """Every entry point's options of the lease role (anchors make them repeat)."""
    for entry in load("roles", "lease", "meta", "argument_specs.yml")["argument_specs"].values():
        yield entry.get("options") or {}


def test_every_kind_has_an_adapter_and_only_those():
    assert set(kinds.ADAPTERS) == set(KIND_ORDER)


def test_a_kind_comes_before_the_kinds_it_uses():
    for spec in KINDS:
        for user in spec.used_by:
            assert KIND_ORDER.index(user) < KIND_ORDER.index(spec.name), (user, spec.name)
    assert USES == {"image": ("server",), "volume": ("server", "snapshot")}


def test_module_choices_come_from_the_table():
    spec = lease_reap.LeaseReapModule.argument_spec
    assert spec["kinds"]["choices"] == list(KIND_ORDER) == spec["kinds"]["default"]
    for option, kind in (("server_action", "server"), ("image_action", "image")):
        assert spec[option]["choices"] == list(KIND[kind].verbs) and spec[option]["default"] == KIND[kind].verbs[0]
    assert resource_lease.ResourceLeaseModule.argument_spec["kind"]["choices"] == list(KIND_ORDER)
    assert token.KINDS == KIND_ORDER


def test_role_specs_and_defaults_agree_with_the_table():
    defaults = load("roles", "lease", "defaults", "main.yml")
    assert defaults["lease_kinds"] == list(KIND_ORDER)
    assert defaults["lease_server_action"] == KIND["server"].verbs[0]
    assert defaults["lease_image_action"] == KIND["image"].verbs[0]
    seen = 0
    for options in lease_role_options():
        if "lease_kinds" in options:
            assert options["lease_kinds"]["choices"] == list(KIND_ORDER) == options["lease_kinds"]["default"]
            seen += 1
        for option, kind in (("lease_server_action", "server"), ("lease_image_action", "image")):
            if option in options:
                assert options[option]["choices"] == list(KIND[kind].verbs)
                assert options[option]["default"] == KIND[kind].verbs[0]
                seen += 1
    assert seen >= 3


def test_playbooks_offer_exactly_the_kinds():
    found = []

    def walk(node):
        if isinstance(node, dict):
            if node.get("variable") == "lease_extend_kind":
                found.append(node)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)
    walk(load("playbooks", "awx_setup.yml"))
    assert found and all(set(question["choices"]) == set(KIND_ORDER) for question in found), found
    with open(os.path.join(REPO, "playbooks", "lease_extend.yml")) as handle:
        extend = handle.read()
    listed = re.search(r"lease_extend_kind \| default\(''\) in \[([^\]]*)\]", extend).group(1)
    assert {item.strip(" '") for item in listed.split(",")} == set(KIND_ORDER)


def test_extension_commands_use_each_kinds_cli_noun():
    keys = LeaseKeys()
    assert keys.extend_command("snapshot", "s1", 30) == "openstack volume snapshot set --property lease_extend=30 s1"
    assert {kind: keys.extend_command(kind, "x", 1).split(" set ")[0] for kind in KIND_ORDER} == {
        spec.name: "openstack " + spec.cli_noun for spec in KINDS}
