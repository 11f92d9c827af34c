# Copyright: osops.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Carrying out removals: kind by kind in dependency order, concurrently within a kind.

Each kind is listed again just before its removals start, and a resource goes
only if its sealed lease is still the one the decision was made on (an owner may
extend between scan and removal) and nothing anywhere in the cloud uses it now. Each removal is written to the audit log
before and after, and waits until the cloud has finished; waiting workers share
one light listing per project per second instead of polling one by one, so the
cloud spends its time deleting, not answering. One failure never stops the others; resources that depend
on a failed one (a volume whose snapshot could not go) are skipped with the
reason.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

from .._errors import describe_sdk_error
from .audit import AuditLog
from .decide import Outcome
from .in_use import blocking_user
from .keys import LeaseKeys, format_time
from .kinds import Presence
from .kind_table import KIND_ORDER
from .record import Key, ResourceRecord

REMOVED = "removed"
FAILED = "failed"
SKIPPED = "skipped"
GONE = "gone"
WOULD = "would_remove"


class Reaper:
    def __init__(self, adapters: dict, keys: LeaseKeys, audit: AuditLog, workers: int = 8, timeout: float = 600,
                 lock_servers: bool = False):
        self.adapters = adapters
        self.lock_servers = lock_servers  # lock a server after stopping or shelving it
        self.keys = keys
        self.audit = audit
        self.workers = max(1, workers)
        self.timeout = timeout

    def _fields(self, outcome: Outcome) -> dict:
        return {**outcome.record.identity(), "owner": outcome.owner.email, "action": outcome.verb,
                "expires": format_time(outcome.decision.expires) if outcome.decision.expires else None,
                "reason": outcome.decision.reason}

    def preview(self, outcomes: list[Outcome]) -> list[dict]:
        """Check mode: what would be removed, in the order it would be."""
        ordered = sorted(outcomes, key=lambda o: KIND_ORDER.index(o.record.kind))
        return [self.audit.write("remove", outcome=WOULD, **self._fields(o)) for o in ordered]

    def run(self, outcomes: list[Outcome]) -> list[dict]:
        results: list[dict] = []
        not_removed: set[Key] = set()
        for kind in KIND_ORDER:
            batch = [o for o in outcomes if o.record.kind == kind]
            if not batch:
                continue
            blocked = frozenset(not_removed)  # only earlier kinds block; fixed while the batch runs
            adapter = self.adapters[kind]
            try:
                current = self._relist(adapter, batch)
            except Exception as error:  # pylint: disable=broad-except
                batch_results = [self.audit.write("remove", outcome=FAILED, error="listing %ss again: %s" % (
                    kind, describe_sdk_error(error)), **self._fields(o)) for o in batch]
            else:
                presence = Presence(adapter)
                with ThreadPoolExecutor(max_workers=min(self.workers, len(batch))) as pool:
                    batch_results = list(pool.map(lambda o: self._remove(o, blocked, current, presence), batch))
            for result in batch_results:
                if result["outcome"] not in (REMOVED, GONE) or result["action"] != "delete":
                    not_removed.add(Key(result["kind"], result["id"]))
            results.extend(batch_results)
        return results

    @staticmethod
    def _relist(adapter, batch: list[Outcome]) -> dict:
        """The batch's resources as they are now: one listing per project, not one read each."""
        current = {}
        for project_id in sorted({o.record.project_id or "" for o in batch}):
            for record in adapter.records(True, project_id or None):
                current[record["id"]] = ResourceRecord.of(record)
        return current

    def _remove(self, outcome: Outcome, not_removed: frozenset[Key], current: dict, presence: Presence) -> dict:
        fields = self._fields(outcome)
        blocking = blocking_user(outcome.users, not_removed)
        if blocking:
            return self.audit.write("remove", outcome=SKIPPED, error="%s was not removed" % blocking, **fields)
        adapter = self.adapters[outcome.record.kind]
        now = current.get(outcome.record.id)
        if now is None:
            return self.audit.write("remove", outcome=GONE, error="already gone", **fields)
        # the seal is the lease: another seal means an operator, the portal or a request changed it since the scan
        if now.metadata.get(self.keys.seal) != outcome.seal_after:
            return self.audit.write("remove", outcome=SKIPPED, error="lease changed since the scan", **fields)
        try:
            users = adapter.in_use_now(now)
        except Exception as error:  # pylint: disable=broad-except
            return self.audit.write("remove", outcome=FAILED, error="checking who uses it: %s" % describe_sdk_error(
                error), **fields)
        if users:
            return self.audit.write("remove", outcome=SKIPPED, error=users, **fields)
        started = time.monotonic()
        self.audit.write("remove", outcome="started", **fields)
        try:
            done = adapter.remove(now, outcome.verb, self.timeout, presence.gone)
        except Exception as error:  # pylint: disable=broad-except
            # one resource's failure (in use, has dependents, API error, timeout) never stops the others
            return self.audit.write("remove", outcome=FAILED, error=describe_sdk_error(error),
                                    seconds=round(time.monotonic() - started, 2), **fields)
        # every server verb but delete keeps the server: lock it (lock_servers)
        if self.lock_servers and outcome.record.kind == "server" and outcome.verb != "delete":
            try:
                adapter.lock(now, fields["expires"])
            except Exception as error:  # pylint: disable=broad-except
                return self.audit.write("remove", outcome=FAILED, done=done, error="%s, but locking it failed: %s" % (
                    done, describe_sdk_error(error)), seconds=round(time.monotonic() - started, 2), **fields)
            done += " and locked"
        return self.audit.write("remove", outcome=REMOVED, done=done, seconds=round(time.monotonic() - started, 2),
                                **fields)
