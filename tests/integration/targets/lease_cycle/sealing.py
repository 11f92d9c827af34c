# SPDX-License-Identifier: GPL-3.0-or-later
"""Time travel for sealed leases: the tests age a lease as an operator with the key could (the collection's own seal code)."""

from __future__ import annotations

import os
import sys
from datetime import timedelta

# the collection under test, wherever ansible-test put this target: the collections path, or above this file
for _root in os.environ.get("ANSIBLE_COLLECTIONS_PATH", "").split(os.pathsep) + [
        os.path.abspath(os.path.join(os.path.dirname(__file__), *[os.pardir] * 7))]:
    if _root and os.path.isdir(os.path.join(_root, "ansible_collections", "osops", "lifecycle")):
        sys.path.insert(0, _root)
        break
from ansible_collections.osops.lifecycle.plugins.module_utils._lease import keys as lease_keys  # noqa: E402
from ansible_collections.osops.lifecycle.plugins.module_utils._lease import seal  # noqa: E402

KEYS = lease_keys.LeaseKeys()


def keyring(path: str) -> seal.Keyring:
    return seal.load_keyring(path)


def aged(ring: seal.Keyring, kind: str, resource_id: str, metadata: dict, delta: timedelta) -> dict:
    """The lease keys to write so that ``delta`` has passed for this lease (sealed or not yet sealed)."""
    values = {}
    check = seal.open_seal(ring, KEYS.prefix, kind, resource_id, metadata.get(KEYS.seal))
    if check.valid:
        state = check.state
        notice = state.notice
        if notice is not None:
            notice = lease_keys.Notice(notice.milestone_days, notice.sent - delta, notice.for_expiry - delta)
        aged_state = seal.SealedState(state.expires - delta, notice, state.extensions)
        values[KEYS.seal] = seal.seal_lease(ring, KEYS.prefix, kind, resource_id, aged_state,
                                            metadata.get(KEYS.owner), metadata.get(KEYS.exempt))
        values[KEYS.expires] = lease_keys.format_time(aged_state.expires)
        if notice is not None:
            values[KEYS.notice] = notice.format()
        return values
    # not sealed yet (the first run takes it over): age the readable times
    lease = lease_keys.read_lease(metadata, KEYS)
    if lease.expires is not None:
        values[KEYS.expires] = lease_keys.format_time(lease.expires - delta)
    if lease.notice is not None:
        values[KEYS.notice] = lease_keys.Notice(lease.notice.milestone_days, lease.notice.sent - delta,
                                                lease.notice.for_expiry - delta).format()
    return values
