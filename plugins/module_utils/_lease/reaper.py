# Copyright: osops.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Carrying out removals: kind by kind in dependency order, concurrently within a kind.

Each removal re-reads its resource first and goes ahead only if the lease is
the one the decision was made on (an owner may extend between scan and
removal), is written to the audit log before and after, and waits until the
cloud has finished. One failure never stops the others; resources that depend
on a failed one (a volume whose snapshot could not go) are skipped with the
reason.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

from .._errors import describe_sdk_error
from .audit import AuditLog
from .decide import Outcome
from .keys import LeaseKeys, format_time
from .reap import KIND_ORDER, Key

REMOVED = "removed"
FAILED = "failed"
SKIPPED = "skipped"
GONE = "gone"
WOULD = "would_remove"


def lease_values(metadata: dict | None, keys: LeaseKeys) -> dict:
    """The lease keys of a resource's metadata: what must not have changed since the scan."""
    metadata = metadata or {}
    return {key: metadata[key] for key in (keys.expires, keys.notice) if key in metadata}


class Reaper:
    def __init__(self, adapters: dict, keys: LeaseKeys, audit: AuditLog, workers: int = 8, timeout: float = 600):
        self.adapters = adapters
        self.keys = keys
        self.audit = audit
        self.workers = max(1, workers)
        self.timeout = timeout

    def _fields(self, outcome: Outcome) -> dict:
        record = outcome.record
        return {"kind": record["kind"], "id": record["id"], "name": record.get("name"),
                "project_id": record.get("project_id"), "project_name": record.get("project_name"),
                "owner": outcome.owner.email, "action": outcome.verb,
                "expires": format_time(outcome.decision.expires) if outcome.decision.expires else None,
                "reason": outcome.decision.reason}

    def preview(self, outcomes: list[Outcome]) -> list[dict]:
        """Check mode: what would be removed, in the order it would be."""
        ordered = sorted(outcomes, key=lambda o: KIND_ORDER.index(o.record["kind"]))
        return [self.audit.write("remove", outcome=WOULD, **self._fields(o)) for o in ordered]

    def run(self, outcomes: list[Outcome]) -> list[dict]:
        results: list[dict] = []
        not_removed: set[Key] = set()
        for kind in KIND_ORDER:
            batch = [o for o in outcomes if o.record["kind"] == kind]
            if not batch:
                continue
            blocked = frozenset(not_removed)  # only earlier kinds block; fixed while the batch runs
            with ThreadPoolExecutor(max_workers=min(self.workers, len(batch))) as pool:
                batch_results = list(pool.map(lambda o: self._remove(o, blocked), batch))
            for result in batch_results:
                if result["outcome"] not in (REMOVED, GONE) or result["action"] != "delete":
                    not_removed.add(Key(result["kind"], result["id"]))
            results.extend(batch_results)
        return results

    def _remove(self, outcome: Outcome, not_removed: frozenset[Key]) -> dict:
        fields = self._fields(outcome)
        blocking = sorted(outcome.users & not_removed)
        if blocking:
            return self.audit.write("remove", outcome=SKIPPED, error="%s was not removed" % blocking[0], **fields)
        adapter = self.adapters[outcome.record["kind"]]
        started = time.monotonic()
        try:
            current = adapter.find(outcome.record["id"])
            if current is None:
                return self.audit.write("remove", outcome=GONE, error="already gone", **fields)
            if lease_values(current["metadata"], self.keys) != lease_values(outcome.record["metadata"], self.keys):
                return self.audit.write("remove", outcome=SKIPPED, error="lease changed since the scan", **fields)
            self.audit.write("remove", outcome="started", **fields)
            done = adapter.remove(outcome.record["id"], outcome.verb, self.timeout)
        except Exception as error:  # pylint: disable=broad-except
            # one resource's failure (in use, has dependents, API error, timeout) never stops the others
            return self.audit.write("remove", outcome=FAILED, error=describe_sdk_error(error),
                                    seconds=round(time.monotonic() - started, 2), **fields)
        return self.audit.write("remove", outcome=REMOVED, done=done, seconds=round(time.monotonic() - started, 2),
                                **fields)
