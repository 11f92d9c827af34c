# Copyright: osops.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: imagecache_summary
short_description: Summarise imagecache_link results of many nodes
version_added: 0.1.0
description:
  - Takes a dictionary of host name to M(osops.lifecycle.imagecache_link) result and returns
    per-node counts, totals, the hosts without a result, and printable lines.
options:
  _input:
    description: Host name to registered imagecache_link result (or null for a host without one).
    type: dict
    required: true
author:
  - osops.lifecycle contributors (@osops)
"""

EXAMPLES = r"""
- name: Show one summary of the rollout
  ansible.builtin.debug:
    msg: "{{ (dict(ansible_play_hosts_all | zip(ansible_play_hosts_all | map('extract', hostvars, 'imagecache_result'))))
             | osops.lifecycle.imagecache_summary }}"
"""

RETURN = r"""
_value:
  description: Summary with C(nodes) (host to counts), C(totals), C(missing) (hosts without a result) and C(lines).
  type: dict
"""

from ansible.errors import AnsibleFilterError
from ansible_collections.osops.lifecycle.plugins.module_utils._imagecache.report import summarise


def imagecache_summary(results):
    if not isinstance(results, dict):
        raise AnsibleFilterError("imagecache_summary expects a dict of host to result, got %s" % type(results).__name__)
    return summarise(results)


class FilterModule:
    def filters(self):
        return {"imagecache_summary": imagecache_summary}
