# Copyright: osops.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment:
    # The lease policy options of both lease modules (POLICY_ARGUMENT_SPEC in module_utils/_lease/options.py).
    DOCUMENTATION = r"""
options:
  key_prefix:
    description:
      - Prefix of the metadata keys that hold a lease on the resource (C(<prefix>expires),
        C(<prefix>notice), C(<prefix>extensions), C(<prefix>owner), C(<prefix>extend), C(<prefix>exempt),
        C(<prefix>seal)).
    type: str
    default: lease_
  seal_key_file:
    description:
      - File with the operator's seal keys, one C(<key id> <secret>) per line (secrets of 32 characters or more,
        for example from C(openssl rand -base64 48)). The first key seals every lease written; the others are
        still accepted when reading, so a key can be rotated (see C(docs/leases.md)).
      - The file must be a regular file that others cannot read (mode 0600 or 0640). Without a usable key file the
        module fails before reading or writing anything.
      - The key is read on the host the module runs on and never appears in results or logs.
      - Defaults to the environment variable E(OSOPS_LEASE_SEAL_KEY_FILE), which an AWX credential can inject.
    type: path
  seal_enforced_from:
    description:
      - From this time (ISO 8601) on, every lease in the cloud is expected to carry a valid seal. A resource with
        lease keys but no valid seal, or created before this time and found without any lease, is reported as
        tampered and its lease is rebuilt from its creation time (never earlier than the last milestone plus
        O(grace_days) from now, so its owner is still told once), with no extension left.
      - Unset, or still in the future, means migrating from an unsealed version - leases without a seal are taken
        over as they are (within the policy) and sealed. Set it to the time of your first run with a key.
      - A seal that does not verify is tampering at any time.
    type: str
  lifetime_days:
    description: Lease given to a resource seen without one, counted from its creation (the original C(keep_days)).
    type: float
    default: 30
  milestones_days:
    description:
      - Days before expiry at which the owner is told (the first is the original C(remind_days)).
      - A milestone missed by a skipped run is still sent; none is sent twice for the same expiry.
    type: list
    elements: int
    default: [14, 7, 1]
  grace_days:
    description:
      - Minimum time between the last milestone's notice and removal.
      - A resource seen without a lease is never leased to expire before the first milestone plus this grace.
    type: float
    default: 1
  max_lease_days:
    description: No expiry further than this from now is honoured; longer ones are capped and reported.
    type: float
    default: 90
  max_extensions:
    description: How many times an owner may extend a lease.
    type: int
    default: 3
  as_of:
    description:
      - Evaluate the policy at this future time (ISO 8601) instead of now, without changing anything.
    type: str
"""
