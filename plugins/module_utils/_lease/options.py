# Copyright: osops.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The option families of the lease modules, each declared once, and their meaning.

- ``POLICY_ARGUMENT_SPEC``: the lease policy and its keys (both modules); doc fragment
  ``osops.lifecycle.lease_policy``.
- ``EXEMPTIONS_ARGUMENT_SPEC``: what is never touched (``lease_reap``); doc fragment
  ``osops.lifecycle.lease_exemptions``.
- ``SCOPE_ARGUMENT_SPEC``: which kinds, projects and resources a run covers (``lease_reap``; ``resource_lease``
  takes ``all_projects`` to look names up); doc fragment ``osops.lifecycle.lease_scope``.

A unit test holds each family, its doc fragment, the defaults of ``Policy`` and ``Exemptions``
and the lease role's argument specs together.
"""

from __future__ import annotations

import math
import os
from datetime import datetime, timezone

from .exempt import CompiledExemptions, Exemptions
from .keys import DEFAULT_PREFIX, LeaseKeys, LeaseValueError, parse_time
from .kind_table import KIND_ORDER
from .policy import Policy
from .seal import ENV_KEY_FILE, SealKeyError, load_keyring
from .trust import SealContext

POLICY_ARGUMENT_SPEC = dict(
    key_prefix=dict(type="str", default=DEFAULT_PREFIX, no_log=False),
    seal_key_file=dict(type="path", no_log=False),
    seal_enforced_from=dict(type="str"),
    lifetime_days=dict(type="float", default=30),
    milestones_days=dict(type="list", elements="int", default=[14, 7, 1]),
    grace_days=dict(type="float", default=1),
    max_lease_days=dict(type="float", default=90),
    max_extensions=dict(type="int", default=3),
    as_of=dict(type="str"),
)

EXEMPTIONS_ARGUMENT_SPEC = dict(
    exempt_users=dict(type="list", elements="str", default=[]),
    exempt_projects=dict(type="list", elements="str", default=[]),
    exempt_ids=dict(type="list", elements="str", default=[]),
    exempt_names=dict(type="list", elements="str", default=[]),
    exempt_metadata=dict(type="dict", default={}),
    exempt_cidrs=dict(type="list", elements="str", default=[]),
    exempt_jmespath=dict(type="str"),
    exempt_image_visibilities=dict(type="list", elements="str", default=["public", "community"]),
    sealed_exemptions_only=dict(type="bool", default=False),
)

SCOPE_ARGUMENT_SPEC = dict(
    kinds=dict(type="list", elements="str", choices=list(KIND_ORDER), default=list(KIND_ORDER)),
    projects=dict(type="list", elements="str", default=[]),
    all_projects=dict(type="bool", default=True),
    resource_ids=dict(type="list", elements="str", default=[]),
)


class OptionError(ValueError):
    """Policy options that cannot be used; the message names the option."""


def policy_from_params(params: dict) -> Policy:
    for name in ("lifetime_days", "grace_days", "max_lease_days"):
        if params[name] is not None and not math.isfinite(params[name]):
            raise OptionError("%s: a finite number of days, not %r" % (name, params[name]))
    try:
        return Policy(
            lifetime_days=params["lifetime_days"],
            milestones_days=tuple(params["milestones_days"]),
            grace_days=params["grace_days"],
            max_lease_days=params["max_lease_days"],
            max_extensions=params["max_extensions"],
        )
    except ValueError as error:
        raise OptionError("lease policy: %s" % error) from None


def keys_from_params(params: dict) -> LeaseKeys:
    try:
        return LeaseKeys(params["key_prefix"])
    except ValueError as error:
        raise OptionError("key_prefix: %s" % error) from None


def seals_from_params(params: dict, policy: Policy, keys: LeaseKeys, now: datetime) -> SealContext:
    """The seal keys and enforcement time; a missing or unusable key file is an error before anything is read."""
    try:
        keyring = load_keyring(params.get("seal_key_file") or os.environ.get(ENV_KEY_FILE))
    except SealKeyError as error:
        raise OptionError(str(error)) from None
    enforced_from = None
    if params.get("seal_enforced_from"):
        try:
            enforced_from = parse_time(params["seal_enforced_from"])
        except LeaseValueError as error:
            raise OptionError("seal_enforced_from: %s" % error) from None
    return SealContext(keyring, keys, policy, now, enforced_from)


def exemptions_from_params(params: dict) -> CompiledExemptions:
    """The exemption rules the options of ``EXEMPTIONS_ARGUMENT_SPEC`` make."""
    try:
        return CompiledExemptions(Exemptions(
            users=frozenset(params["exempt_users"]),
            projects=frozenset(params["exempt_projects"]),
            resource_ids=frozenset(params["exempt_ids"]),
            name_globs=tuple(params["exempt_names"]),
            metadata=tuple(sorted((str(k), str(v)) for k, v in params["exempt_metadata"].items())),
            cidrs=tuple(params["exempt_cidrs"]),
            jmespath=params["exempt_jmespath"],
            image_visibilities=frozenset(params["exempt_image_visibilities"]),
        ), sealed_only=params["sealed_exemptions_only"])
    except ValueError as error:
        raise OptionError("exemptions: %s" % error) from None


def now_from_params(params: dict, clock: datetime | None = None) -> tuple[datetime, bool]:
    """The moment to evaluate the policy at, and whether it is a look-ahead (``as_of``: no changes)."""
    real_now = (clock or datetime.now(timezone.utc)).replace(microsecond=0)
    if not params.get("as_of"):
        return real_now, False
    try:
        moment = parse_time(params["as_of"])
    except LeaseValueError as error:
        raise OptionError("as_of: %s" % error) from None
    if moment < real_now:
        raise OptionError("as_of %s is in the past: the policy is only evaluated now or ahead" % params["as_of"])
    return moment, True
