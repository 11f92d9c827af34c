# Copyright: osops.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: lease_portal_link
short_description: The lease portal link for one owner's mail
version_added: 0.1.0
description:
  - Takes one owner's digest entry (from P(osops.lifecycle.lease_owner_digest#filter)) and returns the URL of the
    lease portal page for exactly the resources of that entry, with a signed token that expires.
  - The token is signed with HMAC-SHA256 and the key the portal shares; keep the key in a vault.
options:
  _input:
    description: One owner's digest entry, with C(owner) and C(resources) (each with C(kind) and C(id)).
    type: dict
    required: true
  base_url:
    description: The portal's public URL, for example C(https://leases.example.org).
    type: str
    required: true
  key:
    description: The signing key the portal knows (at least 32 bytes).
    type: str
    required: true
  valid_days:
    description: How long the link works.
    type: float
    default: 7
author:
  - osops.lifecycle contributors (@osops)
"""

EXAMPLES = r"""
- name: A link for each owner
  ansible.builtin.debug:
    msg: "{{ item | osops.lifecycle.lease_portal_link('https://leases.example.org', lease_portal_key) }}"
  loop: "{{ lease_digest.owners }}"
  no_log: true
"""

RETURN = r"""
_value:
  description: The link, C(<base_url>/l/<token>).
  type: str
"""

import time
from collections.abc import Mapping

from ansible.errors import AnsibleFilterError
from ansible_collections.osops.lifecycle.plugins.module_utils._lease.token import sign


def lease_portal_link(entry, base_url, key, valid_days=7):
    if not isinstance(entry, Mapping) or "owner" not in entry:
        raise AnsibleFilterError("lease_portal_link expects one owner's digest entry")
    try:
        token = sign(str(key), str(entry["owner"]), [(r["kind"], r["id"]) for r in entry.get("resources") or []],
                     int(time.time()), int(float(valid_days) * 86400))
    except (KeyError, TypeError, ValueError) as error:
        raise AnsibleFilterError("lease_portal_link: %s" % error) from error
    return "%s/l/%s" % (str(base_url).rstrip("/"), token)


class FilterModule:
    def filters(self):
        return {"lease_portal_link": lease_portal_link}
