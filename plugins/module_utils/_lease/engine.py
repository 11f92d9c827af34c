# Copyright: osops.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""One lease run against a cloud, stage by stage (the stage map is in docs/development.md).

``scan.scan`` -> ``decide.decide_scan`` -> the cap (``reap_plan.check_cap``) -> ``act.act`` ->
``run_result.build_result``. ``LeaseRun`` is what the ``lease_reap`` module carries out; the module
only turns options into ``RunSettings`` and the result into its return value. (Editing named
resources is ``editor.LeaseEditor``.)
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import datetime

from .act import Acts, ActSettings, act
from .audit import AuditLog
from .decide import Outcome, ReapOptions, decide_scan
from .exempt import CompiledExemptions
from .keys import LeaseKeys
from .kind_table import KIND_ORDER
from .kinds import adapter_for
from .keystone import KeystoneDirectory
from .policy import REMOVE, Policy
from .reap_plan import check_cap
from .run_result import RunFacts, build_result
from .scan import ScanScope, scan
from .seal import Keyring
from .trust import SealContext, wrong_key


class SealKeyMismatch(Exception):
    """No seal in the scan verifies with the key file: the wrong key, not a cloud of tampered leases."""


class CapExceeded(Exception):
    """The run would remove more than allowed: it removes nothing."""

    def __init__(self, message: str, result: dict):
        super().__init__(message)
        self.result = result


class ApiCallCounter:
    """Counts the HTTP requests a connection makes (for the report and the benchmark)."""

    def __init__(self, conn):
        self.calls = 0
        self._lock = threading.Lock()
        session = getattr(getattr(conn, "session", None), "session", None)
        if session is not None:
            session.hooks.setdefault("response", []).append(self._count)

    def _count(self, response, *args, **kwargs):
        with self._lock:
            self.calls += 1
        return response


@dataclass
class RunSettings:
    policy: Policy
    keys: LeaseKeys
    exemptions: CompiledExemptions
    now: datetime
    look_ahead: bool                      # as_of in the future: nothing is changed
    kinds: tuple[str, ...] = KIND_ORDER
    projects: list[str] = field(default_factory=list)
    all_projects: bool = True
    resource_ids: list[str] = field(default_factory=list)  # only these resources (read by id); empty: all
    reap: bool = False
    options: ReapOptions = ReapOptions()
    write_leases: bool = True
    max_remove: int = 50
    max_remove_percent: float = 10.0
    workers: int = 8
    timeout: float = 600
    owner_fallback: str | None = None
    contact_attribute: str = "contact_email"
    audit_path: str | None = None
    check_mode: bool = True
    keyring: Keyring | None = None
    enforced_from: datetime | None = None
    extend_days: int = 30                 # what the digest's extension command asks for

    @property
    def seals(self) -> SealContext:
        return SealContext(self.keyring, self.keys, self.policy, self.now, self.enforced_from)


class LeaseRun:
    def __init__(self, conn, settings: RunSettings):
        self.conn = conn
        self.settings = settings
        self.counter = ApiCallCounter(conn)
        self.directory = KeystoneDirectory(conn, settings.contact_attribute)
        self.adapters = {kind: adapter_for(kind, conn) for kind in settings.kinds}
        self.region = getattr(getattr(conn, "config", None), "region_name", None) or ""

    @property
    def changes_allowed(self) -> bool:
        return not (self.settings.check_mode or self.settings.look_ahead)

    def adapter_of(self, kind: str):
        return self.adapters.get(kind) or adapter_for(kind, self.conn)

    def check_key(self, outcomes: list[Outcome]) -> None:
        """Refuse to go on when seals exist and none verifies: a wrong key file would rebuild every lease."""
        problem = wrong_key([o.trusted for o in outcomes if o.trusted], self.settings.keyring)
        if problem:
            raise SealKeyMismatch(problem)

    def run(self) -> dict:
        started = time.monotonic()
        settings = self.settings
        scope = ScanScope(tuple(settings.kinds), tuple(settings.projects), settings.all_projects,
                          with_users=settings.reap or settings.write_leases, resource_ids=tuple(settings.resource_ids))
        scanned = scan(self.adapter_of, self.directory, scope)
        owner_of = self.directory.owner_lookup(settings.owner_fallback)
        outcomes = decide_scan(scanned.records, settings.seals, settings.exemptions.reason, owner_of, settings.options,
                               scanned.elsewhere)
        self.check_key(outcomes)
        removals = [o for o in outcomes if o.decision.action == REMOVE and o.verb]
        cap = check_cap(len(removals), len(outcomes), settings.max_remove, settings.max_remove_percent)
        # the cap is checked before anything is written, so a refused run changes nothing at all
        if cap and settings.reap:
            raise CapExceeded(cap, build_result(outcomes, Acts(), None, cap, self.facts(started, scanned.not_found)))
        audit = AuditLog(settings.audit_path, check_mode=not self.changes_allowed)
        try:
            acts = act(outcomes, removals, self.adapters, ActSettings(
                settings.keys, settings.now, self.changes_allowed, settings.write_leases, settings.reap,
                settings.options.lock_servers, settings.workers, settings.timeout), audit)
        finally:
            audit.close()
        return build_result(outcomes, acts, audit, cap, self.facts(started, scanned.not_found))

    def facts(self, started: float, not_found: tuple[str, ...]) -> RunFacts:
        return RunFacts(self.settings.now, self.settings.keys, self.region, self.settings.look_ahead,
                        self.settings.check_mode, self.settings.extend_days,
                        {"api_calls": self.counter.calls, "seconds": round(time.monotonic() - started, 2),
                         "user_lookups": self.directory.user.calls}, not_found)
