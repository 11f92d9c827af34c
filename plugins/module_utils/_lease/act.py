# Copyright: osops.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Stage 3 of a lease run, act: write leases, lift the reaper's locks where a lease runs again, reap.

Entry: ``act()``. Reads the decided ``Outcome``s; returns ``Acts`` (one audited record per
write, unlock and removal). One resource's failure never stops the others. Writing keys and
locks is ``writes``; removing is ``reaper.Reaper``.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime

from .audit import AuditLog
from .decide import Outcome
from .keys import LeaseKeys
from .reaper import Reaper
from .writes import unlock_extended, write_lease_keys


@dataclass(frozen=True)
class ActSettings:
    keys: LeaseKeys
    now: datetime
    allowed: bool                 # changes allowed (not check mode, not a look-ahead)
    write_leases: bool = True
    reap: bool = False
    lock_servers: bool = False
    workers: int = 8
    timeout: float = 600


@dataclass
class Acts:
    writes: list[dict] = field(default_factory=list)
    unlocked: list[dict] = field(default_factory=list)
    removed: list[dict] = field(default_factory=list)


def act(outcomes: list[Outcome], removals: list[Outcome], adapters: dict, settings: ActSettings,
        audit: AuditLog) -> Acts:
    """Write, unlock, then reap ``removals`` (dependency order); in check mode say what would happen."""
    acts = Acts()
    if settings.write_leases:
        acts.writes = write_leases(outcomes, adapters, settings, audit)
        acts.unlocked = unlock(outcomes, acts.writes, adapters, settings, audit)
    if settings.reap:
        reaper = Reaper(adapters, settings.keys, audit, settings.workers, settings.timeout, settings.lock_servers)
        acts.removed = reaper.run(removals) if settings.allowed else reaper.preview(removals)
    return acts


def write_leases(outcomes: list[Outcome], adapters: dict, settings: ActSettings, audit: AuditLog) -> list[dict]:
    """Write enrolments, repairs, restored seals and handled requests, concurrently."""
    pending = [o for o in outcomes if o.writes]

    def write_one(outcome: Outcome) -> dict:
        record = outcome.record
        written = write_lease_keys(adapters[record.kind], record, outcome.set_values, outcome.remove_keys, audit,
                                   settings.allowed, status=outcome.decision.status,
                                   seal=outcome.trusted.seal if outcome.trusted else None, tampered=outcome.tampered)
        if written["outcome"] == "written":
            # the reaper must expect the seal this run wrote
            outcome.seal_after = outcome.set_values.get(settings.keys.seal, outcome.seal_after)
        return written

    if not pending:
        return []
    with ThreadPoolExecutor(max_workers=min(settings.workers, len(pending))) as pool:
        return list(pool.map(write_one, pending))


def unlock(outcomes: list[Outcome], writes: list[dict], adapters: dict, settings: ActSettings,
           audit: AuditLog) -> list[dict]:
    """Unlock the servers the reaper locked whose lease runs again (not where this run's write failed)."""
    failed = {(w["kind"], w["id"]) for w in writes if w["outcome"] == "failed"}
    unlocked = []
    for outcome in outcomes:
        record = outcome.record
        if (record.kind, record.id) not in failed:
            done = unlock_extended(adapters[record.kind], record, outcome.lease, settings.now, audit, settings.allowed)
            if done:
                unlocked.append(done)
    return unlocked
