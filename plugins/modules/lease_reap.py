#!/usr/bin/python
# Copyright: osops.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: lease_reap
short_description: Scan the leases of servers, images, volumes and snapshots, and remove what expired after notice
version_added: 0.1.0
description:
  - Lists the chosen kinds across all projects (or the given ones) with paginated calls (or reads just the resources
    of O(resource_ids), by id), reads each resource's
    lease from its metadata, finds its owner, and decides its status - V(active), V(expiring) (a milestone notice
    is due), V(expired), V(exempt), V(enrolled) (had no lease, gets one now), V(invalid) (unreadable, or later than
    the policy allows; repaired, never removed this run) or V(in_use) (expired but still used by servers,
    attachments or snapshots that stay).
  - Returns every decision and a per-owner digest for mail (RV(digest)); recording that a notice was sent is
    M(osops.lifecycle.resource_lease)'s job, once the mail has gone.
  - Writes leases on resources that have none (never expiring before the first milestone plus grace), repairs
    unreadable ones, and handles owners' extension requests (C(<prefix>extend=<days>) set on the resource with
    C(openstack server|image|volume|volume snapshot set --property)), granted within the caps or refused, and the
    request key removed either way (RV(requests)).
  - With O(reap), removes expired resources whose owner was sent the last milestone's notice at least
    O(grace_days) ago - servers first, then snapshots, then volumes, then images - concurrently within a kind,
    waiting for each removal to finish. A resource is re-read just before removal and left alone if its lease
    changed since the scan. One failure is reported and the others go on.
  - Fails (after doing everything else) when a removal or lease write failed; RV(removed) and RV(lease_writes)
    say which and why. A re-run picks up where it failed.
  - Never removes an exempt resource, one whose owner was not told, or one whose lease was read as invalid.
  - Leases are sealed (O(seal_key_file)); the seal, not the readable keys, is the lease. A lease that its owner
    edited is reported in RV(tampered) and its sealed values are written back; one whose seal was removed or
    forged is rebuilt from the resource's creation time (see O(seal_enforced_from)). Each resource is decided on
    its own; one that cannot be decided is V(invalid), never removed, and the run goes on for the others.
  - Before an image is removed, every project's servers are checked for it, whatever O(kinds) and O(projects)
    this run scans.
    If more than O(max_remove) resources (or O(max_remove_percent) of those scanned) would go, the run fails
    before changing anything.
  - In check mode (C(--check --diff)) it reports exactly what would be written and removed, and changes nothing.
    So does a run with O(as_of) in the future.
  - Owner of a resource - the lease's owner override, else the resource's user's e-mail in Keystone, else the
    project's contact address (O(owner_project_attribute)), else O(owner_fallback). A resource none of them
    reaches is reported in RV(unowned) and is never removed.
options:
  reap:
    description: Remove expired resources (otherwise only scan, decide and write leases).
    type: bool
    default: false
  server_action:
    description:
      - What removing an expired server means. V(shelve) and V(stop) are softer steps that keep the server
        and its disks; such a server stays a user of its volumes and image.
    type: str
    choices: [delete, shelve, stop]
    default: delete
  lock_servers:
    description:
      - "After stopping or shelving a server (O(server_action)), lock it with the reason
        C(osops.lifecycle: lease expired ...). Its owner can then neither start nor unshelve it, nor change
        its metadata (so not ask for an extension by metadata either) until the lease is extended by the portal or an
        operator (M(osops.lifecycle.resource_lease))."
      - A server locked this way is unlocked as soon as its lease runs again, by M(osops.lifecycle.resource_lease)
        or the portal when they extend it, or by the next run of this module (needs O(write_leases)).
        Locks with any other reason are never lifted.
      - Without it the owner can start a stopped server or unshelve a shelved one at any time; the next run stops
        or shelves it again while the lease is expired. An offloaded server (C(SHELVED_OFFLOADED)) takes no metadata,
        so its owner must unshelve it before asking for an extension by metadata.
    type: bool
    default: false
  image_action:
    description: What removing an expired image means; a deactivated image can be reactivated by an admin.
    type: str
    choices: [deactivate, delete]
    default: deactivate
  handle_requests:
    description: Grant or refuse owners' extension requests (C(<prefix>extend)) found on resources.
    type: bool
    default: true
  write_leases:
    description: Write enrolments, repairs and handled requests. V(false) makes a read-only scan.
    type: bool
    default: true
  max_remove:
    description: The most resources one run may remove; a run that would remove more removes nothing and fails.
    type: int
    default: 50
  max_remove_percent:
    description: The largest share (percent) of scanned resources one run may remove, checked like O(max_remove).
    type: float
    default: 10
  workers:
    description:
      - Removals and lease writes run concurrently, at most this many at once. Each removal waits for the cloud
        to finish it, so more workers keep more deletes in flight (see docs/performance.md for the figures).
    type: int
    default: 16
  wait_timeout:
    description: Seconds to wait for one removal (or softer step) to finish before reporting it failed.
    type: int
    default: 600
  owner_fallback:
    description: Address told about resources whose user and project have no e-mail address.
    type: str
  owner_project_attribute:
    description: The Keystone project attribute that holds the project's contact address.
    type: str
    default: contact_email
  audit_log:
    description:
      - File (on the host the module runs on) to append one JSON line per lease write and per removal
        (before and after it). The same records are returned in RV(audit). Not written in check mode.
    type: path
  extend_command_days:
    description:
      - The number of days the extension command of each RV(digest) resource asks for
        (C(openstack server set --property <prefix>extend=30 ...)). The lease role passes C(lease_mail_extend_days).
    type: int
    default: 30
extends_documentation_fragment:
  - osops.lifecycle.lease_policy
  - osops.lifecycle.lease_exemptions
  - osops.lifecycle.lease_scope
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
  - module: osops.lifecycle.resource_lease
notes:
  - The policy maths and key names are described in C(docs/leases.md) in the collection.
author:
  - osops.lifecycle contributors (@osops)
"""

EXAMPLES = r"""
- name: What expires by Friday (nothing is changed)
  osops.lifecycle.lease_reap:
    cloud: admin
    as_of: "2026-11-27T18:00:00Z"
  register: friday

- name: Daily scan - enrol, repair, handle extension requests, build the mail digest
  osops.lifecycle.lease_reap:
    cloud: admin
    milestones_days: [14, 7, 1]
    exempt_projects: [service, admin]
    owner_fallback: cloud-ops@example.org
  register: scan

- name: Reap what expired after notice, softly for servers, with an audit trail
  osops.lifecycle.lease_reap:
    cloud: admin
    reap: true
    server_action: shelve
    max_remove: 100
    max_remove_percent: 5
    audit_log: /var/log/osops/lease-audit.jsonl
"""

RETURN = r"""
decisions:
  description: One entry per resource scanned, in dependency order.
  returned: always
  type: list
  elements: dict
  contains:
    # what names a resource in every entry below (merged there with <<)
    <<: &rv_identity
      kind: &rv_kind
        description: "server, snapshot, volume or image."
        type: str
      id: &rv_id
        description: "Resource id."
        type: str
      name: &rv_name
        description: "Resource name."
        type: str
      project_id:
        description: "Owning project."
        type: str
      project_name:
        description: "Its name (if it could be read)."
        type: str
    user_id:
      description: "The user who made the resource (Nova's or Cinder's C(user_id); none for images)."
      type: str
    user_name:
      description: "That user's name (if it could be read)."
      type: str
    owner:
      description: "Address the owner is told at; null if nobody could be found."
      type: str
    owner_source:
      description: "Where the address came from (lease owner override, user, project contact, fallback address)."
      type: str
    owner_note:
      description: "Why the owner lookup went past the user (user not found, no e-mail, disabled, ...), or null."
      type: str
    status:
      description: "active, expiring, expired, exempt, enrolled, invalid or in_use."
      type: str
    action:
      description: "none, write_lease, notify or remove."
      type: str
    removal:
      description: "With action remove - delete, shelve, stop or deactivate."
      type: str
    reason:
      description: "Why, in words."
      type: str
    expires:
      description: "The expiry in force (ISO 8601 UTC)."
      type: str
    days_left:
      description: "Whole days to expiry (negative once past)."
      type: int
    milestone_days:
      description: "With action notify - the milestone whose notice is due."
      type: int
    lease_problems:
      description: "Lease keys that could not be read, each with the problem (empty if none)."
      type: dict
    request:
      description: "An extension request handled this run (requested, granted, reason, expires)."
      type: dict
    writes:
      description: "The lease keys this run writes (C(set)) and removes (C(remove)) on the resource, or null."
      type: dict
    region:
      description: "Region of the connection."
      type: str
    seal:
      description: "sealed, adopted (an unsealed lease taken over), new or tampered."
      type: str
    tampered:
      description: "What was changed by someone other than the collection (empty if nothing)."
      type: list
      elements: str
  sample:
    - {kind: server, id: 2d1c..., name: web-1, project_name: lab-alpha, owner: alice@example.org, owner_source: user,
       status: expiring, action: notify, milestone_days: 7, expires: "2026-12-01T00:00:00Z", days_left: 7}
digest:
  description: One entry per owner address with every resource of theirs whose notice is due now, across kinds and projects.
  returned: always
  type: list
  elements: dict
  contains:
    owner:
      description: "Address."
      type: str
    milestone_days:
      description: "The most urgent milestone among the resources."
      type: int
    resources:
      description: "The owner's resources, the soonest to expire first."
      type: list
      elements: dict
      contains:
        kind: *rv_kind
        id: *rv_id
        name: *rv_name
        project:
          description: "Project name (or id)."
          type: str
        region:
          description: "Region of the connection."
          type: str
        expires:
          description: "The expiry (ISO 8601 UTC)."
          type: str
        days_left:
          description: "Whole days to expiry."
          type: int
        milestone_days:
          description: "The milestone whose notice is due."
          type: int
        extend_command:
          description: "The C(openstack) command with which the owner asks for an extension of O(extend_command_days) days (C(<prefix>extend=N))."
          type: str
        action:
          description:
            - "What is done to it once its lease has run out, the verb configured for its kind: C(delete), C(stop) or
              C(shelve) for servers (O(server_action)), C(deactivate) or C(delete) for images (O(image_action)), C(delete)
              for volumes and snapshots."
          type: str
        action_on:
          description:
            - "The earliest that is done (ISO 8601 UTC), assuming this notice is sent now: never before the expiry, never
              before the last milestone's notice plus O(grace_days). A later run, an extension or a resource in use
              moves it later, never earlier."
          type: str
        last_notice_on:
          description:
            - "When the owner gets the last milestone's notice before that (ISO 8601 UTC): its day, or now when that day
              has passed (this notice is then the last one)."
          type: str
        overdue:
          description: "The resource expired before this notice: its owner was not told in time, so it is acted on only from C(action_on)."
          type: bool
counts:
  description: Counts of this run's decisions.
  returned: always
  type: dict
  contains:
    scanned:
      description: "Resources scanned."
      type: int
    by_status:
      description: "Status -> count."
      type: dict
    by_kind:
      description: "Kind -> status -> count."
      type: dict
    by_seal:
      description: "Seal (sealed, adopted, new, tampered) -> count."
      type: dict
    tampered:
      description: "Resources whose lease someone else changed."
      type: int
requests:
  description: Owners' extension requests handled (or, in check mode, that would be).
  returned: always
  type: list
  elements: dict
  contains:
    kind: *rv_kind
    id: *rv_id
    name: *rv_name
    owner:
      description: "The owner's address."
      type: str
    requested:
      description: "Days asked for."
      type: raw
    granted:
      description: "Whether the extension was granted."
      type: bool
    reason:
      description: "Why granted or refused, in words."
      type: str
    expires:
      description: "The expiry after the request (ISO 8601 UTC)."
      type: str
tampered:
  description:
    - Resources whose lease someone other than the collection changed. Their sealed values are written
      back (O(write_leases)); tampering never buys time and never makes anything removable earlier.
  returned: always
  type: list
  elements: dict
  contains:
    <<: *rv_identity
    owner:
      description: "The owner's address."
      type: str
    changes:
      description: "Each changed key - C(key), the value C(found), the C(sealed) one."
      type: list
      elements: dict
    note:
      description: "What the seal check found, in words (a removed or forged seal), or null."
      type: str
    reason:
      description: "The reason of the decision."
      type: str
unowned:
  description: Decisions that needed an owner and found none (never notified, never removed); the same keys as RV(decisions).
  returned: always
  type: list
  elements: dict
lease_writes:
  description: Lease keys written (audit records with C(event) C(lease)).
  returned: always
  type: list
  elements: dict
  contains: &audit_record
    time:
      description: "When (ISO 8601 UTC)."
      type: str
    run_id:
      description: "Id of this run."
      type: str
    event:
      description: "What the record is about."
      type: str
    check_mode:
      description: "Whether it was only a check (nothing changed)."
      type: bool
    <<: *rv_identity
    owner:
      description: "The owner's address (removals)."
      type: str
    status:
      description: "The decision's status (lease writes)."
      type: str
    seal:
      description: "The seal as found (lease writes)."
      type: str
    tampered:
      description: "Tampered keys restored (lease writes)."
      type: list
      elements: str
    set:
      description: "Lease keys written, with their values (lease writes)."
      type: dict
    remove:
      description: "Lease keys removed (lease writes)."
      type: list
      elements: str
    action:
      description: "delete, shelve, stop or deactivate (removals)."
      type: str
    expires:
      description: "The expiry that ran out (removals)."
      type: str
    reason:
      description: "Why (removals)."
      type: str
    outcome:
      description:
        - "Lease writes: written, failed or would_write. Removals: removed, failed, skipped, gone or would_remove.
          Unlocks: unlocked, failed or would_unlock."
      type: str
    done:
      description: "What was done (C(deleted), C(stopped), C(shelved and locked), ...; removals)."
      type: str
    error:
      description: "Why it failed (outcome failed)."
      type: str
    seconds:
      description: "How long the removal took."
      type: float
removed:
  description:
    - One record per removal (audit records with C(event) C(remove)) with its C(outcome) - removed, failed (with
      C(error)), skipped, gone or would_remove.
    - C(done) says what was done (C(deleted), C(stopped), C(shelved and locked), ...).
  returned: always
  type: list
  elements: dict
  contains: *audit_record
unlocked:
  description:
    - Servers the reaper had locked (O(lock_servers)) whose lease runs again, with C(outcome) unlocked, failed or
      would_unlock (audit records).
  returned: always
  type: list
  elements: dict
  contains: *audit_record
cap:
  description: Why this run may not remove anything (the cap), or null.
  returned: always
  type: str
audit:
  description: Every audit record of this run (also appended to O(audit_log)), in the shape of RV(removed) and RV(lease_writes).
  returned: always
  type: list
  elements: dict
stats:
  description: What the run cost.
  returned: always
  type: dict
  contains:
    scanned:
      description: "Resources scanned."
      type: int
    api_calls:
      description: "Calls made to the cloud's APIs."
      type: int
    seconds:
      description: "Run time."
      type: float
    user_lookups:
      description: "Keystone user lookups (the owner lookup)."
      type: int
now:
  description: The time the policy was evaluated at (O(as_of) if given).
  returned: always
  type: str
look_ahead:
  description: Whether O(as_of) lies in the future (a preview that changes nothing).
  returned: always
  type: bool
region:
  description: Region of the connection.
  returned: always
  type: str
run_id:
  description: Id of this run in the audit records (null when the run stopped before acting).
  returned: always
  type: str
not_found:
  description:
    - The ids of O(resource_ids) that no kind of O(kinds) has (within O(projects) if given), for example a
      resource deleted since the event that named it. Not an error. Empty without O(resource_ids).
  returned: always
  type: list
  elements: str
"""

import math

from ansible_collections.osops.lifecycle.plugins.module_utils._base import LifecycleModule
from ansible_collections.osops.lifecycle.plugins.module_utils._lease.audit import AuditError
from ansible_collections.osops.lifecycle.plugins.module_utils._lease.decide import ReapOptions
from ansible_collections.osops.lifecycle.plugins.module_utils._lease.keys import MAX_DAYS
from ansible_collections.osops.lifecycle.plugins.module_utils._lease.engine import (
    CapExceeded, LeaseRun, RunSettings, SealKeyMismatch,
)
from ansible_collections.osops.lifecycle.plugins.module_utils._lease.run_result import diff_lines
from ansible_collections.osops.lifecycle.plugins.module_utils._lease.options import (
    EXEMPTIONS_ARGUMENT_SPEC, POLICY_ARGUMENT_SPEC, SCOPE_ARGUMENT_SPEC, OptionError, exemptions_from_params,
    keys_from_params, now_from_params, policy_from_params, seals_from_params,
)
from ansible_collections.osops.lifecycle.plugins.module_utils._lease.kind_table import KIND, KIND_ORDER


class LeaseReapModule(LifecycleModule):
    argument_spec = dict(
        POLICY_ARGUMENT_SPEC,
        **EXEMPTIONS_ARGUMENT_SPEC,
        **SCOPE_ARGUMENT_SPEC,
        reap=dict(type="bool", default=False),
        server_action=dict(type="str", choices=list(KIND["server"].verbs), default=KIND["server"].verbs[0]),
        lock_servers=dict(type="bool", default=False),
        image_action=dict(type="str", choices=list(KIND["image"].verbs), default=KIND["image"].verbs[0]),
        handle_requests=dict(type="bool", default=True),
        write_leases=dict(type="bool", default=True),
        max_remove=dict(type="int", default=50),
        max_remove_percent=dict(type="float", default=10),
        workers=dict(type="int", default=16),
        wait_timeout=dict(type="int", default=600),
        owner_fallback=dict(type="str"),
        owner_project_attribute=dict(type="str", default="contact_email"),
        audit_log=dict(type="path"),
        extend_command_days=dict(type="int", default=30),
    )

    def settings(self) -> RunSettings:
        p = self.params
        for name, low, high in (("max_remove", 0, None), ("max_remove_percent", 0, 100), ("workers", 1, 256),
                                ("wait_timeout", 1, None), ("extend_command_days", 1, MAX_DAYS)):
            value = p[name]
            if math.isnan(value) or value < low or (high is not None and value > high):
                raise OptionError("%s must be %s, not %r" % (name, "from %s to %s" % (low, high) if high is not None
                                                             else "at least %s" % low, value))
        now, look_ahead = now_from_params(p)
        policy, keys = policy_from_params(p), keys_from_params(p)
        seals = seals_from_params(p, policy, keys, now)
        return RunSettings(
            policy=policy, keys=keys, exemptions=exemptions_from_params(p),
            keyring=seals.keyring, enforced_from=seals.enforced_from,
            now=now, look_ahead=look_ahead, kinds=tuple(k for k in KIND_ORDER if k in p["kinds"]),
            projects=p["projects"], all_projects=p["all_projects"], resource_ids=p["resource_ids"], reap=p["reap"],
            options=ReapOptions(p["server_action"], p["image_action"], p["handle_requests"], p["lock_servers"]),
            write_leases=p["write_leases"], max_remove=p["max_remove"], max_remove_percent=p["max_remove_percent"],
            workers=p["workers"], timeout=p["wait_timeout"], owner_fallback=p["owner_fallback"],
            contact_attribute=p["owner_project_attribute"], audit_path=p["audit_log"], check_mode=self.check_mode,
            extend_days=p["extend_command_days"],
        )

    def run(self):
        try:
            settings = self.settings()
            result = LeaseRun(self.conn, settings).run()
        except (OptionError, ValueError, AuditError, SealKeyMismatch) as error:
            self.fail_json(msg=str(error))
        except CapExceeded as error:
            self.fail_json(msg=str(error), **error.result)
        if self.ansible._diff:
            result["diff"] = {"prepared": diff_lines(result)}
        failed = [r for r in result["removed"] + result["lease_writes"] + result["unlocked"] if r["outcome"] == "failed"]
        if failed:
            # the others were carried out; the job must still show red
            self.fail_json(msg="%d change(s) failed, the rest were made: %s" % (len(failed), "; ".join(
                "%s %s (%s): %s" % (r["kind"], r["name"], r["id"], r["error"]) for r in failed[:5])), **result)
        return result


def main():
    LeaseReapModule()()


if __name__ == "__main__":
    main()
