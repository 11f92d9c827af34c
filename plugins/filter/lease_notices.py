# Copyright: osops.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: lease_notices
short_description: The resources of one host whose owners were told, for resource_lease state=notified
version_added: 0.1.0
description:
  - Takes the output of P(osops.lifecycle.lease_owner_digest#filter), an inventory host and the owners whose
    mails were accepted, and returns the resources to record the notice on, as
    M(osops.lifecycle.resource_lease) O(osops.lifecycle.resource_lease#module:resources) items.
options:
  _input:
    description: The output of P(osops.lifecycle.lease_owner_digest#filter).
    type: raw
    required: true
  host:
    description: The inventory host whose resources to return.
    type: str
    required: true
  delivered:
    description: Owner addresses whose mails were accepted.
    type: list
    elements: str
    required: true
author:
  - osops.lifecycle contributors (@osops)
"""

EXAMPLES = r"""
- name: Record the notices on this cloud
  osops.lifecycle.resource_lease:
    state: notified
    resources: "{{ lease_digest | osops.lifecycle.lease_notices(inventory_hostname, lease_delivery.delivered) }}"
"""

RETURN = r"""
_value:
  description: >-
    List of C(kind), C(id), C(name), C(milestone_days) and C(expires).
  type: raw
"""

from collections.abc import Mapping

from ansible.errors import AnsibleFilterError
from ansible_collections.osops.lifecycle.plugins.module_utils._lease.report import notices_for_host


def lease_notices(digest, host, delivered):
    if not isinstance(digest, Mapping):
        raise AnsibleFilterError("lease_notices expects the output of lease_owner_digest, got %s" % type(digest).__name__)
    try:
        return notices_for_host(digest, host, delivered)
    except (KeyError, TypeError, ValueError) as error:
        raise AnsibleFilterError("lease_notices: %s" % error) from error


class FilterModule:
    def filters(self):
        return {"lease_notices": lease_notices}
