# Copyright: osops.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: lease_owner_digest
short_description: One lease notice per owner across clouds, from lease_reap results of many hosts
version_added: 0.1.0
description:
  - Takes a dictionary of inventory host (a cloud or region) to registered M(osops.lifecycle.lease_reap)
    result and merges the per-owner digests, so each owner gets one mail for everything of theirs on every
    host.
  - Each resource carries C(host), the inventory host it was found through.
options:
  _input:
    description: Inventory host to M(osops.lifecycle.lease_reap) result (null or a failed result for a host without one).
    type: raw
    required: true
author:
  - osops.lifecycle contributors (@osops)
"""

EXAMPLES = r"""
- name: One digest for all clouds of the play
  ansible.builtin.set_fact:
    lease_digest: "{{ dict(ansible_play_hosts | zip(ansible_play_hosts | map('extract', hostvars, 'lease_scan_result')))
                      | osops.lifecycle.lease_owner_digest }}"
"""

RETURN = r"""
_value:
  description: >-
    C(owners) (list of C(owner), C(milestone_days), C(resources)), C(unowned) (resources to notify that have no owner address)
    and C(hosts_without_result) (host and reason).
  type: raw
"""

from collections.abc import Mapping

from ansible.errors import AnsibleFilterError
from ansible_collections.osops.lifecycle.plugins.module_utils._lease.report import owner_digest


def lease_owner_digest(results):
    if not isinstance(results, Mapping):
        raise AnsibleFilterError("lease_owner_digest expects a dict of inventory host to lease_reap result, got %s" % type(results).__name__)
    try:
        return owner_digest(results)
    except (KeyError, TypeError, ValueError) as error:
        raise AnsibleFilterError("lease_owner_digest: %s" % error) from error


class FilterModule:
    def filters(self):
        return {"lease_owner_digest": lease_owner_digest}
