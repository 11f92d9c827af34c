# Copyright: osops.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: lease_scan_summary
short_description: The part of a lease scan that a sliced scan job hands on
version_added: 0.1.0
description:
  - Takes a registered M(osops.lifecycle.lease_reap) result and keeps what the mails and the operators' report of
    the next job need (the owners' digest, unowned and tampered resources, counts, region, time, stats, run id,
    and the failure message of a failed run). The decisions stay in the scanning job's output.
  - The playbook C(osops.lifecycle.lease_scan) hands this on as the C(lease_scans) artifact of an AWX workflow.
options:
  _input:
    description: A registered M(osops.lifecycle.lease_reap) result.
    type: dict
    required: true
author:
  - osops.lifecycle contributors (@osops)
"""

EXAMPLES = r"""
- name: Hand the scan over to the next workflow node
  ansible.builtin.set_stats:
    data:
      lease_scans: "{{ {inventory_hostname: lease_scan_result | osops.lifecycle.lease_scan_summary} }}"
"""

RETURN = r"""
_value:
  description: The result's keys C(digest), C(unowned), C(tampered), C(counts), C(region), C(now), C(stats), C(failed),
    C(msg) and C(run_id), where present.
  type: dict
"""

from collections.abc import Mapping

from ansible.errors import AnsibleFilterError
from ansible_collections.osops.lifecycle.plugins.module_utils._lease.run_result import scan_summary


def lease_scan_summary(result):
    if not isinstance(result, Mapping):
        raise AnsibleFilterError("lease_scan_summary expects a lease_reap result, got %s" % type(result).__name__)
    return scan_summary(result)


class FilterModule:
    def filters(self):
        return {"lease_scan_summary": lease_scan_summary}
