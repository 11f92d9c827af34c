# SPDX-License-Identifier: GPL-3.0-or-later
"""Exemptions are always respected, and a bad exemption option is a clear error."""

from __future__ import annotations

import pytest

from ansible_collections.osops.lifecycle.plugins.module_utils._lease.exempt import (
    CompiledExemptions,
    ExemptionError,
    Exemptions,
)

SERVER = {
    "kind": "server", "id": "5e7c", "name": "ci-runner-07", "project_id": "p-123", "project_name": "ci",
    "user_id": "u-9", "user_name": "ana", "metadata": {"team": "infra", "lease_expires": "2026-12-01"},
    "addresses": ["10.20.0.15", "2001:db8::15"], "flavor": {"name": "m1.large"},
}


def reason(resource, **options):
    return CompiledExemptions(Exemptions(**options)).reason(resource)


@pytest.mark.parametrize(
    "options, expected",
    [
        (dict(users=frozenset({"ana"})), "user ana is exempt"),
        (dict(users=frozenset({"u-9"})), "user u-9 is exempt"),
        (dict(projects=frozenset({"ci"})), "project ci is exempt"),
        (dict(projects=frozenset({"p-123"})), "project p-123 is exempt"),
        (dict(resource_ids=frozenset({"5e7c"})), "resource id is exempt"),
        (dict(name_globs=("ci-runner-*",)), "name matches ci-runner-*"),
        (dict(metadata=(("team", "infra"),)), "metadata team=infra"),
        (dict(metadata=(("team", "*"),)), "metadata team=infra"),
        (dict(cidrs=("10.20.0.0/24",)), "address 10.20.0.15 in 10.20.0.0/24"),
        (dict(cidrs=("2001:db8::/64",)), "address 2001:db8::15 in 2001:db8::/64"),
        (dict(jmespath="flavor.name == 'm1.large'"), "matches flavor.name == 'm1.large'"),
    ],
)
def test_each_rule_exempts(options, expected):
    assert reason(SERVER, **options) == expected


@pytest.mark.parametrize(
    "options",
    [
        dict(users=frozenset({"bob"})),
        dict(name_globs=("CI-*",)),  # case matters
        dict(metadata=(("team", "web"),)),
        dict(cidrs=("10.21.0.0/24",)),
        dict(jmespath="flavor.name == 'm1.small'"),
        dict(),
    ],
)
def test_no_rule_no_exemption(options):
    assert reason(SERVER, **options) is None


def test_public_and_community_images_are_exempt_by_default():
    for visibility, exempt in (("public", True), ("community", True), ("shared", False), ("private", False)):
        image = {"kind": "image", "id": "i", "name": "debian", "visibility": visibility}
        assert (reason(image) is not None) is exempt


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(cidrs=("10.0.0.0/33",)), "CIDR"),
        (dict(cidrs=("not-a-net",)), "CIDR"),
        (dict(jmespath="flavor.[name"), "JMESPath"),
    ],
)
def test_bad_options_are_clear_errors(options, message):
    with pytest.raises(ExemptionError, match=message):
        CompiledExemptions(Exemptions(**options))
