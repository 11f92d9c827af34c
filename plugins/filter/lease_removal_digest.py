# Copyright: osops.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: lease_removal_digest
short_description: What a reap removed, per owner across clouds
version_added: 0.1.0
description:
  - Takes a dictionary of inventory host to registered M(osops.lifecycle.lease_reap) result (of a run with
    O(osops.lifecycle.lease_reap#module:reap=true)) and lists, per owner, the resources removed or softened
    (shelved, stopped, deactivated) on every host.
options:
  _input:
    description: Inventory host to M(osops.lifecycle.lease_reap) result.
    type: raw
    required: true
author:
  - osops.lifecycle contributors (@osops)
"""

EXAMPLES = r"""
- name: Removal notices
  ansible.builtin.debug:
    msg: "{{ {'cloud1': reap_result} | osops.lifecycle.lease_removal_digest }}"
"""

RETURN = r"""
_value:
  description: >-
    C(owners) (list of C(owner) and C(resources)), C(unowned) (removed resources without an owner address) and C(hosts_without_result).
  type: raw
"""

from collections.abc import Mapping

from ansible.errors import AnsibleFilterError
from ansible_collections.osops.lifecycle.plugins.module_utils._lease.report import removal_digest


def lease_removal_digest(results):
    if not isinstance(results, Mapping):
        raise AnsibleFilterError("lease_removal_digest expects a dict of inventory host to lease_reap result, got %s" % type(results).__name__)
    try:
        return removal_digest(results)
    except (KeyError, TypeError, ValueError) as error:
        raise AnsibleFilterError("lease_removal_digest: %s" % error) from error


class FilterModule:
    def filters(self):
        return {"lease_removal_digest": lease_removal_digest}
