# Copyright: osops.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: lease_report
short_description: The operators' report of a lease cycle
version_added: 0.1.0
description:
  - Takes a dictionary of inventory host to registered M(osops.lifecycle.lease_reap) result and returns the
    summary the report templates show (counts by status, kind and project, expiries per week ahead, removals,
    owners' requests, invalid leases, unowned resources, failures and the mail outcome).
options:
  _input:
    description: Inventory host to M(osops.lifecycle.lease_reap) result.
    type: raw
    required: true
  now:
    description: The time of the report (ISO 8601); the expiries ahead are counted from it.
    type: str
    required: true
  mail:
    description: The mail outcome to include, as P(osops.lifecycle.lease_mail_delivery#filter) returns it.
    type: dict
  scans:
    description: >-
      Inventory host to the scan step's M(osops.lifecycle.lease_reap) result; adds C(scan), the counts found before
      notices and removals.
    type: dict
  weeks:
    description: How many weeks ahead to count expiries for.
    type: int
    default: 8
author:
  - osops.lifecycle contributors (@osops)
"""

EXAMPLES = r"""
- name: Summary
  ansible.builtin.set_fact:
    lease_summary: "{{ {'cloud1': reap_result} | osops.lifecycle.lease_report(now=reap_result.now) }}"
"""

RETURN = r"""
_value:
  description: >-
    C(generated), C(hosts), C(hosts_without_result), C(totals), C(by_kind), C(by_project), C(expiries),
    C(removals), C(requests), C(invalid), C(unowned), C(failures), C(mail) and C(scan).
  type: raw
"""

from collections.abc import Mapping

from ansible.errors import AnsibleFilterError
from ansible_collections.osops.lifecycle.plugins.module_utils._lease.report import build_report


def lease_report(results, now, mail=None, weeks=8, scans=None):
    if not isinstance(results, Mapping):
        raise AnsibleFilterError("lease_report expects a dict of inventory host to lease_reap result, got %s" % type(results).__name__)
    try:
        return build_report(results, now, mail=mail, weeks=weeks, scans=scans)
    except (KeyError, TypeError, ValueError) as error:
        raise AnsibleFilterError("lease_report: %s" % error) from error


class FilterModule:
    def filters(self):
        return {"lease_report": lease_report}
