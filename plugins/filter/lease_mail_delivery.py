# Copyright: osops.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: lease_mail_delivery
short_description: Which owners' lease mails were accepted
version_added: 0.1.0
description:
  - Takes the registered result of a C(community.general.mail) loop over owner digest entries and says which owners were told.
  - An owner is told only when the mail task succeeded and the server did not refuse the owner's address
    (C(community.general.mail) succeeds with a warning when only some recipients are refused).
options:
  _input:
    description: The C(results) list of a registered C(community.general.mail) loop whose items are digest entries (with C(owner)).
    type: raw
    required: true
author:
  - osops.lifecycle contributors (@osops)
"""

EXAMPLES = r"""
- name: Who was told
  ansible.builtin.set_fact:
    lease_delivery: "{{ lease_mail.results | osops.lifecycle.lease_mail_delivery }}"
"""

RETURN = r"""
_value:
  description: >-
    C(delivered) (owner addresses), C(failed) (owner and reason), C(not_sent) (skipped, for example in check
    mode) and C(copies_refused) (refused cc or bcc addresses of a delivered mail).
  type: raw
"""

from ansible.errors import AnsibleFilterError
from ansible_collections.osops.lifecycle.plugins.module_utils._lease.report import mail_delivery


def lease_mail_delivery(results):
    if not isinstance(results, list):
        raise AnsibleFilterError("lease_mail_delivery expects the results list of a registered mail loop, got %s" % type(results).__name__)
    try:
        return mail_delivery(results)
    except (KeyError, TypeError, ValueError) as error:
        raise AnsibleFilterError("lease_mail_delivery: %s" % error) from error


class FilterModule:
    def filters(self):
        return {"lease_mail_delivery": lease_mail_delivery}
