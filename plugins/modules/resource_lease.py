#!/usr/bin/python
# Copyright: osops.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: resource_lease
short_description: Set, extend, clear or record a notice on the lease of servers, images, volumes and snapshots
version_added: 0.1.0
description:
  - Changes the lease kept in a resource's own metadata (Nova server metadata, Glance image properties, Cinder
    volume and snapshot metadata), for one resource (O(kind) and O(resource)) or many (O(resources)). Only the
    lease keys are written; other metadata is never touched.
  - O(state=present) makes sure the resource has a lease - the one given by O(expires) or O(lease_days), or,
    if it has none or an unreadable one, the one the policy gives. Expiries beyond O(max_lease_days) from now
    are capped.
  - O(state=extended) extends the lease by O(extend_days) within the policy - at most O(max_extensions) times for
    owners, never beyond O(max_lease_days) from now. A refused extension fails the task with the reason (the
    other resources are still handled).
  - O(state=absent) removes every lease key (the next scan leases the resource again unless it is exempt).
  - O(state=notified) records that the owner was sent the O(milestone_days) notice for the current expiry - what
    the lifecycle roles do after a mail went out. Each item of O(resources) may carry its own C(milestone_days)
    and C(expires) (the expiry the mail was about), so the resources of a M(osops.lifecycle.lease_reap) digest
    entry can be passed as they are; a resource whose expiry changed since is skipped.
  - To read leases without changing anything, run in check mode - RV(resources) shows each lease.
options:
  kind:
    description: Kind of O(resource).
    type: str
    choices: [server, snapshot, volume, image]
  resource:
    description: Name or id of one resource. A name must be unique.
    type: str
  resources:
    description:
      - Many resources at once, each a dict with C(kind) and C(id) (or C(name)); for O(state=notified) also
        C(milestone_days) and C(expires). Other keys are ignored.
    type: list
    elements: dict
  state:
    description: What to do with the lease.
    type: str
    choices: [present, extended, absent, notified]
    default: present
  expires:
    description: With O(state=present), the expiry to set (ISO 8601; UTC if no zone is given).
    type: str
  lease_days:
    description: With O(state=present), set the expiry this many days from now.
    type: float
  extend_days:
    description: With O(state=extended), days to add to the current expiry (to now, if already past).
    type: float
  as_operator:
    description: With O(state=extended), an operator's extension, not counted against O(max_extensions).
    type: bool
    default: false
  owner:
    description:
      - With O(state=present), the owner e-mail override to store (sealed, so only an operator can set it; one plain
        address); an empty string removes it.
    type: str
  milestone_days:
    description: With O(state=notified), the milestone (days before expiry) whose notice was sent.
    type: int
  only_owner:
    description:
      - Act only on resources owned by this e-mail address; any other resource is refused (the task fails and
        nothing of it changes). For self-service front ends, such as an AWX job template that passes the
        launching user's address.
      - The owner is found as M(osops.lifecycle.lease_reap) finds it - the lease's owner override, else the
        Keystone user's e-mail, else the project's contact address (O(owner_project_attribute)). Letter case is
        ignored.
    type: str
  only_owner_user:
    description:
      - Act only on resources of this Keystone user (name or id) - those the user made (Nova's or Cinder's
        C(user_id)) or whose owner address is the user's Keystone e-mail; any other resource is refused.
      - For AWX job templates, pass the launching AWX user's name (C(awx_user_name)), which AWX users cannot edit
        themselves, never C(awx_user_email), which they can.
    type: str
  exempt:
    description:
      - With O(state=present), seal an operator's exemption with this reason (the resource is never touched, even
        with O(osops.lifecycle.lease_reap#module:sealed_exemptions_only)); an empty string removes it.
    type: str
  owner_project_attribute:
    description: Keystone project attribute holding the project's contact address (with O(only_owner)).
    type: str
    default: contact_email
  missing:
    description: What a resource that does not exist (any more) means.
    type: str
    choices: [fail, ignore]
    default: fail
  all_projects:
    description: Look names up across all projects (admin).
    type: bool
    default: true
  audit_log:
    description: File to append one JSON line per lease written (not in check mode).
    type: path
extends_documentation_fragment:
  - osops.lifecycle.lease_policy
  - openstack.cloud.openstack
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
  platform:
    platforms: all
seealso:
  - module: osops.lifecycle.lease_reap
author:
  - osops.lifecycle contributors (@osops)
"""

EXAMPLES = r"""
- name: Give a server until the end of the year
  osops.lifecycle.resource_lease:
    cloud: admin
    kind: server
    resource: build-runner-7
    expires: "2026-12-31T23:59:59Z"

- name: An operator extends a volume by 30 days (not counted against the owner's extensions)
  osops.lifecycle.resource_lease:
    cloud: admin
    kind: volume
    resource: 0d4f5c0e-3c1b-4a54-9a3e-2f6ec7c8c0b1
    state: extended
    extend_days: 30
    as_operator: true

- name: Record the notice sent to one owner on every resource the mail listed
  osops.lifecycle.resource_lease:
    cloud: admin
    state: notified
    resources: "{{ digest_entry.resources }}"
    missing: ignore

- name: Read a lease
  osops.lifecycle.resource_lease:
    cloud: admin
    kind: image
    resource: golden-2026
  check_mode: true
  register: lease
"""

RETURN = r"""
resources:
  description: One entry per resource asked for, in the order given.
  returned: always
  type: list
  elements: dict
  contains:
    kind:
      description: "Resource kind."
      type: str
    id:
      description: "Resource id."
      type: str
    name:
      description: "Resource name."
      type: str
    project_id:
      description: "Owning project (once the resource was found)."
      type: str
    outcome:
      description:
        - set, extended, refused, cleared, recorded, unchanged, skipped, missing, frozen or failed.
        - V(frozen) - a shelved server, whose metadata Nova refuses to change (even an admin's); nothing was written.
          A lock of M(osops.lifecycle.lease_reap) is lifted (see RV(resources[].unlock)) so that the owner can unshelve it
          and then have the lease extended.
      type: str
    reason:
      description: "Why, in words."
      type: str
    owner:
      description: The resource's owner address (only with O(only_owner) or O(only_owner_user), and not for a refused resource).
      type: str
    seal:
      description: "How the lease was found - sealed, adopted (unsealed, taken over), new or tampered."
      type: str
    tampered:
      description: "Lease keys someone other than the collection changed; their sealed values are written back."
      type: list
      elements: str
    changed:
      description: "Whether the lease was (or in check mode would be) written."
      type: bool
    unlock:
      description:
        - Present when the resource is a server that M(osops.lifecycle.lease_reap) locked (O(osops.lifecycle.lease_reap#module:lock_servers))
          and its lease now runs again - unlocked, would_unlock (check mode) or failed.
      type: str
    before:
      description: The lease before - expires, days_left, notice (milestone_days, sent, for_expiry), extensions, owner, exempt, extend_request_days, problems.
      type: dict
    after:
      description: "The lease after, in the same shape."
      type: dict
  sample:
    - {kind: server, id: 7c3e..., name: web-1, outcome: extended, reason: "extended to 2027-01-30 00:00 UTC", changed: true,
       before: {expires: "2026-12-31T00:00:00Z", extensions: 0}, after: {expires: "2027-01-30T00:00:00Z", extensions: 1}}
"""

import json

from ansible_collections.osops.lifecycle.plugins.module_utils._base import LifecycleModule
from ansible_collections.osops.lifecycle.plugins.module_utils._lease.audit import AuditError
from ansible_collections.osops.lifecycle.plugins.module_utils._lease.edit import EditError, EditRequest
from ansible_collections.osops.lifecycle.plugins.module_utils._lease.editor import LeaseEditor
from ansible_collections.osops.lifecycle.plugins.module_utils._lease.options import (
    POLICY_ARGUMENT_SPEC, SCOPE_ARGUMENT_SPEC, OptionError, keys_from_params, now_from_params, policy_from_params,
    seals_from_params,
)
from ansible_collections.osops.lifecycle.plugins.module_utils._lease.kind_table import KIND_ORDER


class ResourceLeaseModule(LifecycleModule):
    argument_spec = dict(
        POLICY_ARGUMENT_SPEC,
        kind=dict(type="str", choices=list(KIND_ORDER)),
        resource=dict(type="str"),
        only_owner=dict(type="str"),
        only_owner_user=dict(type="str"),
        exempt=dict(type="str"),
        owner_project_attribute=dict(type="str", default="contact_email"),
        resources=dict(type="list", elements="dict"),
        state=dict(type="str", choices=["present", "extended", "absent", "notified"], default="present"),
        expires=dict(type="str"),
        lease_days=dict(type="float"),
        extend_days=dict(type="float"),
        as_operator=dict(type="bool", default=False),
        owner=dict(type="str"),
        milestone_days=dict(type="int"),
        missing=dict(type="str", choices=["fail", "ignore"], default="fail"),
        all_projects=SCOPE_ARGUMENT_SPEC["all_projects"],
        audit_log=dict(type="path"),
    )
    module_kwargs = dict(
        LifecycleModule.module_kwargs,
        required_one_of=[("resource", "resources")],
        mutually_exclusive=[("resource", "resources"), ("expires", "lease_days")],
        required_together=[("kind", "resource")],
        required_if=[("state", "extended", ("extend_days",))],
    )

    def targets(self) -> list[dict]:
        p = self.params
        if p["resource"]:
            return [{"kind": p["kind"], "id": None, "name": p["resource"]}]
        targets = []
        for index, item in enumerate(p["resources"]):
            if item.get("kind") not in KIND_ORDER or not (item.get("id") or item.get("name")):
                raise OptionError("resources[%d]: needs kind (one of %s) and id or name, got %s"
                                  % (index, ", ".join(KIND_ORDER), json.dumps(item, sort_keys=True, default=str)))
            targets.append(item)
        return targets

    def request_for(self, target: dict) -> EditRequest:
        p = self.params
        notified = p["state"] == "notified"
        return EditRequest(
            state=p["state"], expires=p["expires"], lease_days=p["lease_days"], extend_days=p["extend_days"],
            as_operator=p["as_operator"], owner=p["owner"], exempt=p["exempt"],
            milestone_days=target.get("milestone_days", p["milestone_days"]) if notified else p["milestone_days"],
            for_expiry=target.get("expires") if notified else None,
        )

    def run(self):
        p = self.params
        try:
            now, look_ahead = now_from_params(p)
            requests = [(target, self.request_for(target)) for target in self.targets()]
            policy, keys = policy_from_params(p), keys_from_params(p)
            editor = LeaseEditor(self.conn, seals_from_params(p, policy, keys, now), look_ahead, self.check_mode,
                                 p["all_projects"], p["audit_log"], p["only_owner"], p["only_owner_user"],
                                 p["owner_project_attribute"])
        except (OptionError, EditError, AuditError, ValueError) as error:
            self.fail_json(msg=str(error))
        try:
            results = [editor.edit(target, request) for target, request in requests]
        finally:
            editor.audit.close()
        result = {"changed": any(r["changed"] for r in results), "resources": results}
        if self.ansible._diff:
            result["diff"] = [{"before_header": "%s %s" % (r["kind"], r.get("name") or r.get("id")),
                               "after_header": "%s %s" % (r["kind"], r.get("name") or r.get("id")),
                               "before": json.dumps(r["before"], indent=2, sort_keys=True) + "\n",
                               "after": json.dumps(r["after"], indent=2, sort_keys=True) + "\n"}
                              for r in results if r["changed"]]
        problems = [r for r in results if r["outcome"] in ("failed", "refused")
                    or (r["outcome"] == "missing" and p["missing"] == "fail")]
        if problems:
            lines = ["%s %s: %s (%s)" % (r["kind"], r.get("name") or r.get("id"), r["outcome"], r["reason"])
                     for r in problems]
            self.fail_json(msg="; ".join(lines), **result)
        return result


def main():
    ResourceLeaseModule()()


if __name__ == "__main__":
    main()
