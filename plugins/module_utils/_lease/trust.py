# Copyright: osops.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Which lease to believe (pure): the seal's, a migrated one, or one rebuilt from the resource's age.

Owners can write every key of their resources. What decisions rest on is therefore:

- ``sealed``: the seal verifies; its expiry, notice and extension count are the
  lease, whatever the readable keys say. Readable keys that differ are reported as
  tampering and written back; an owner override or exemption the seal does not
  cover is dropped.
- ``adopted`` (migration, before ``seal_enforced_from``): no seal yet, so the
  readable keys written by an earlier version are taken over, within the policy,
  and sealed. Unsealed owner overrides and exemptions are never taken over.
- ``new``: no lease at all; enrolled as usual (from ``seal_enforced_from`` on, from
  its creation time with the short floor below).
- ``tampered``: from ``seal_enforced_from`` on, lease keys without a valid seal, or
  at any time a seal that does not verify. The lease is rebuilt from the
  resource's creation time, never earlier than ``now + last milestone + grace`` (the
  owner is still told once), with no extensions left: deleting or forging keys
  never buys time.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Mapping

from .keys import LeaseKeys, LeaseRecord, format_time, lease_metadata, shorten
from .policy import Policy
from .seal import Keyring, SealedState, extras_match, open_seal, seal_lease

SEALED = "sealed"
ADOPTED = "adopted"
NEW = "new"
TAMPERED = "tampered"
# A notice "sent" later than this after now is forged (clocks of runners may differ a little).
CLOCK_SKEW = timedelta(minutes=10)


@dataclass(frozen=True)
class Change:
    """A lease key someone other than the collection changed."""

    key: str
    found: str | None
    sealed: str | None

    def as_dict(self) -> dict:
        return {"key": self.key, "found": self.found, "sealed": self.sealed}

    def __str__(self) -> str:
        return "%s: %s (sealed: %s)" % (self.key, "removed" if self.found is None else shorten(self.found),
                                        "none" if self.sealed is None else self.sealed)


@dataclass(frozen=True)
class TrustedLease:
    lease: LeaseRecord                 # what decisions rest on
    seal: str                          # sealed, adopted, new or tampered
    changes: tuple[Change, ...] = ()   # tampering found (reported; restored by the next write)
    note: str | None = None            # why a seal was not accepted
    seal_found: bool = False           # a seal was stored (valid or not)

    @property
    def tampered(self) -> bool:
        return bool(self.changes) or self.seal == TAMPERED


@dataclass(frozen=True)
class SealContext:
    """What trusting leases needs besides the resource: the keys, the policy, the time, enforcement."""

    keyring: Keyring
    keys: LeaseKeys
    policy: Policy
    now: datetime
    enforced_from: datetime | None = None

    @property
    def enforced(self) -> bool:
        return self.enforced_from is not None and self.now >= self.enforced_from


def readable_values(keys: LeaseKeys, lease: LeaseRecord) -> dict[str, str]:
    """The human-readable keys of a lease as the collection writes them (absent parts are absent keys)."""
    values = lease_metadata(keys, lease.expires, lease.notice, lease.extensions or None, lease.owner or None)
    if lease.exempt:
        values[keys.exempt] = lease.exempt
    return values


def sealed_values(context: SealContext, kind: str, resource_id: str, lease: LeaseRecord) -> dict[str, str]:
    """Every lease key the collection stores for ``lease``, the seal included (no expiry: nothing to seal)."""
    values = readable_values(context.keys, lease)
    if lease.expires is not None:
        values[context.keys.seal] = seal_lease(
            context.keyring, context.keys.prefix, kind, resource_id,
            SealedState(lease.expires, lease.notice, lease.extensions), lease.owner, lease.exempt)
    return values


def trust_lease(context: SealContext, kind: str, resource_id: str, metadata: dict, stored: LeaseRecord,
                created: datetime | None) -> TrustedLease:
    """The lease to believe for one resource. Total: any metadata gives a TrustedLease."""
    keys, policy, now = context.keys, context.policy, context.now
    metadata = metadata if isinstance(metadata, Mapping) else {}
    request = dict(extend_request_days=stored.extend_request_days, has_extend_request=stored.has_extend_request)
    check = open_seal(context.keyring, keys.prefix, kind, resource_id, stored.seal)
    if check.valid:
        state = check.state
        lease = LeaseRecord(state.expires, state.notice, state.extensions, **request)
        changes = []
        for key, wanted in ((keys.expires, format_time(state.expires)),
                            (keys.notice, state.notice.format() if state.notice else None),
                            (keys.extensions, str(state.extensions) if state.extensions else None)):
            found = _raw(metadata, key)
            if found != wanted:
                changes.append(Change(key, found, wanted))
        owner_raw, exempt_raw = _raw(metadata, keys.owner), _raw(metadata, keys.exempt)
        if extras_match(context.keyring, check, keys.prefix, kind, resource_id, owner_raw, exempt_raw):
            lease = replace(lease, owner=stored.owner, exempt=stored.exempt)
        else:
            changes.extend(_unsealed_extras(keys, owner_raw, exempt_raw, "a different or no value", sealed_some=True))
        return TrustedLease(lease, TAMPERED if changes else SEALED, tuple(changes), seal_found=True)

    present = [key for key in keys.written() if key in metadata]
    if stored.seal is None and not present and not context.enforced:
        return TrustedLease(LeaseRecord(**request), NEW)
    if stored.seal is None and not present and created is not None and created >= context.enforced_from:
        # made after sealing began and not yet seen: its lease counts from its creation
        return TrustedLease(_rebuilt(policy, now, created, request, max_out=False), NEW)
    if stored.seal is None and not context.enforced:
        # migration: a lease written before seals existed is taken over, within the policy
        lease = replace(stored, owner=None, exempt=None, seal=None)
        problems = dict(stored.problems)
        if stored.notice is not None and (stored.notice.sent > now + CLOCK_SKEW
                                          or stored.notice.milestone_days > max(policy.milestones_days)):
            problems[keys.notice] = "a notice that cannot have been sent: %s" % shorten(stored.notice.format())
            lease = replace(lease, notice=None)
        if stored.extensions > policy.max_extensions:
            lease = replace(lease, extensions=policy.max_extensions)
        problems.pop(keys.owner, None)
        lease = replace(lease, problems=problems)
        changes = _unsealed_extras(keys, _raw(metadata, keys.owner), _raw(metadata, keys.exempt), "none (not sealed)",
                                   sealed_some=False)
        return TrustedLease(lease, ADOPTED, tuple(changes))

    # from here on: tampering. Nothing that was stored is believed.
    note = check.problem if stored.seal is not None else "lease keys without a seal" if present else \
        "every lease key removed"
    changes = tuple(Change(key, _raw(metadata, key), None) for key in present)
    if not changes:
        changes = (Change(keys.seal, None, "(removed)"),)
    return TrustedLease(_rebuilt(policy, now, created, request, max_out=True), TAMPERED, changes, note,
                        seal_found=stored.seal is not None)


# With this many seals found and not one verifying, a run stops before writing anything.
WRONG_KEY_EVIDENCE = 3


def wrong_key(leases: list[TrustedLease], keyring: Keyring) -> str | None:
    """Why the key file is probably the wrong one (None if not): seals exist and not one verifies.

    Otherwise a wrong key would rebuild every lease of the cloud as tampered. Owners cannot
    trigger this for a whole cloud: they cannot make other projects' seals fail.
    """
    found = sum(1 for lease in leases if lease.seal_found)
    verified = sum(1 for lease in leases if lease.seal_found and lease.note is None)
    if found >= WRONG_KEY_EVIDENCE and not verified:
        return ("%d resources carry a seal and not one verifies with the key file (key ids %s): is it the wrong key "
                "file? Nothing was written or removed." % (found, ", ".join(keyring.ids)))
    return None


def _rebuilt(policy: Policy, now: datetime, created: datetime | None, request: dict, max_out: bool) -> LeaseRecord:
    """A lease from the resource's creation time, with the shortest floor that still tells the owner once."""
    return LeaseRecord(policy.rebuilt_expiry(created, now), None, policy.max_extensions if max_out else 0, **request)


def _unsealed_extras(keys: LeaseKeys, owner: str | None, exempt: str | None, sealed: str,
                     sealed_some: bool) -> list[Change]:
    """Owner override and exemption the seal does not cover; ``sealed_some``: the seal covered other values."""
    changes = [Change(key, value, sealed) for key, value in ((keys.owner, owner), (keys.exempt, exempt))
               if value is not None]
    if not changes and sealed_some:
        # both keys are gone while the seal says one of them was set
        changes.append(Change("%s/%s" % (keys.owner, keys.exempt), None, "a sealed value, removed"))
    return changes


def _raw(metadata: dict, key: str) -> str | None:
    if key not in metadata:
        return None
    value = metadata[key]
    return value if isinstance(value, str) else str(value)
