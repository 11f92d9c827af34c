# Copyright: osops.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment:
    # The exemption options of lease_reap (EXEMPTIONS_ARGUMENT_SPEC in module_utils/_lease/options.py).
    DOCUMENTATION = r"""
options:
  exempt_users:
    description: Users (ids or names) whose resources are never touched.
    type: list
    elements: str
    default: []
  exempt_projects:
    description: Projects (ids or names) whose resources are never touched.
    type: list
    elements: str
    default: []
  exempt_ids:
    description: Resource ids that are never touched.
    type: list
    elements: str
    default: []
  exempt_names:
    description: Shell-style globs of resource names that are never touched (case-sensitive).
    type: list
    elements: str
    default: []
  exempt_metadata:
    description:
      - Metadata key/value pairs that exempt a resource; the value must be equal, or V(*) matches any value.
      - Owners can write metadata, so they can exempt their own resources this way; see
        O(sealed_exemptions_only).
    type: dict
    default: {}
  exempt_cidrs:
    description: Servers with an address in one of these networks are never touched (needs netaddr).
    type: list
    elements: str
    default: []
  exempt_jmespath:
    description: A JMESPath expression over the resource record; a true result exempts it (needs jmespath).
    type: str
  exempt_image_visibilities:
    description:
      - Image visibilities that are exempt. Image owners can make their images V(community) or V(shared)
        themselves; only V(public) needs an admin under Glance's default policy.
    type: list
    elements: str
    default: [public, community]
  sealed_exemptions_only:
    description:
      - Honour only exemptions an owner cannot make themselves - O(exempt_users), O(exempt_projects),
        O(exempt_ids), V(public) in O(exempt_image_visibilities), and exemptions an operator sealed with
        M(osops.lifecycle.resource_lease) (O(osops.lifecycle.resource_lease#module:exempt)).
      - Without it, owners can exempt their own resources by writing a name, metadata, address, image
        visibility or C(protected) flag that an exemption rule matches (see the threat model in C(docs/leases.md)).
    type: bool
    default: false
"""
