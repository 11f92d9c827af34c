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
"""
