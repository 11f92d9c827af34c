# SPDX-License-Identifier: GPL-3.0-or-later
"""Policy options: defaults, conversion, and errors that name the option."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
import yaml

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.osops.lifecycle.plugins.doc_fragments.lease_policy import ModuleDocFragment
from ansible_collections.osops.lifecycle.plugins.module_utils._lease.options import (
    EXEMPTIONS_ARGUMENT_SPEC,
    POLICY_ARGUMENT_SPEC,
    OptionError,
    exemptions_from_params,
    keys_from_params,
    now_from_params,
    policy_from_params,
)

NOW = datetime(2026, 11, 21, 6, 0, 30, 123456, tzinfo=timezone.utc)


def params(**given):
    result = ArgumentSpecValidator(dict(POLICY_ARGUMENT_SPEC, **EXEMPTIONS_ARGUMENT_SPEC)).validate(given)
    assert result.error_messages == []
    return result.validated_parameters


def test_doc_fragment_documents_exactly_the_spec_with_its_defaults():
    documented = yaml.safe_load(ModuleDocFragment.DOCUMENTATION)["options"]
    assert set(documented) == set(POLICY_ARGUMENT_SPEC)
    for name, spec in POLICY_ARGUMENT_SPEC.items():
        assert documented[name]["type"] == spec["type"], name
        assert documented[name].get("default") == spec.get("default"), name
        assert documented[name].get("elements") == spec.get("elements"), name


def test_defaults_make_a_working_policy():
    p = params()
    policy = policy_from_params(p)
    assert (policy.lifetime_days, policy.milestones_days, policy.grace_days) == (30, (14, 7, 1), 1)
    assert keys_from_params(p).expires == "lease_expires"
    image = {"kind": "image", "id": "i", "name": "debian", "visibility": "public"}
    assert exemptions_from_params(p).reason(image) == "public image"


def test_exemption_options_reach_the_rules():
    p = params(exempt_metadata={"keep": "*"}, exempt_names=["prod-*"], exempt_image_visibilities=[])
    exemptions = exemptions_from_params(p)
    assert exemptions.reason({"kind": "server", "name": "prod-db", "id": "x"}) == "name matches prod-*"
    assert exemptions.reason({"kind": "server", "name": "x", "id": "x", "metadata": {"keep": "yes"}}) == "metadata keep=yes"
    assert exemptions.reason({"kind": "image", "name": "x", "id": "x", "visibility": "public"}) is None


@pytest.mark.parametrize(
    "given, convert, option",
    [
        (dict(milestones_days=[]), policy_from_params, "lease policy"),
        (dict(max_lease_days=10), policy_from_params, "lease policy"),
        (dict(key_prefix="has space"), keys_from_params, "key_prefix"),
        (dict(exempt_cidrs=["10.0.0.0/40"]), exemptions_from_params, "exemptions"),
        (dict(exempt_jmespath="a.[b"), exemptions_from_params, "exemptions"),
        # the review's values, as YAML and the command line give them: clear errors, never a traceback later
        (dict(max_lease_days=float("nan")), policy_from_params, "max_lease_days"),
        (dict(max_lease_days="inf"), policy_from_params, "max_lease_days"),
        (dict(grace_days="1e12"), policy_from_params, "grace_days"),
        (dict(lifetime_days=-5), policy_from_params, "lifetime"),
        (dict(max_extensions=-1), policy_from_params, "max_extensions"),
        (dict(milestones_days=[10 ** 8]), policy_from_params, "milestones"),
    ],
)
def test_bad_options_name_themselves(given, convert, option):
    with pytest.raises(OptionError, match=option):
        convert(params(**given))


def test_as_of_looks_ahead_and_never_back():
    assert now_from_params(params(), clock=NOW) == (NOW.replace(microsecond=0), False)
    moment, ahead = now_from_params(params(as_of="2026-11-27T17:00:00Z"), clock=NOW)
    assert ahead and moment == datetime(2026, 11, 27, 17, 0, tzinfo=timezone.utc)
    with pytest.raises(OptionError, match="in the past"):
        now_from_params(params(as_of="2026-11-01"), clock=NOW)
    with pytest.raises(OptionError, match="as_of"):
        now_from_params(params(as_of="friday"), clock=NOW)
