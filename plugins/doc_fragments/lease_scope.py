# Copyright: osops.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment:
    # What a lease_reap run covers (SCOPE_ARGUMENT_SPEC in module_utils/_lease/options.py).
    DOCUMENTATION = r"""
options:
  kinds:
    description: Resource kinds to scan.
    type: list
    elements: str
    choices: [server, snapshot, volume, image]
    default: [server, snapshot, volume, image]
  projects:
    description:
      - Scan only these projects (ids or names). Empty means every project the credentials can see
        (all of them for an admin with O(all_projects)).
    type: list
    elements: str
    default: []
  all_projects:
    description: List resources of all projects (needs admin). Without it only the authenticated project's are seen.
    type: bool
    default: true
  resource_ids:
    description:
      - Cover only these resources (ids), for example the one an event names. Each id is read by id in each kind
        of O(kinds), never looked up by name (an owner may name a resource after another's id); with O(projects),
        only resources of those projects count. Ids that no kind has are returned in RV(not_found), not an error.
      - Everything else is as in a full scan - the policy, exemptions, seals, O(write_leases), O(handle_requests)
        and the audit; whether a resource is in use is still judged from every project's servers and snapshots.
      - Empty means every resource of O(kinds) and O(projects).
    type: list
    elements: str
    default: []
"""
