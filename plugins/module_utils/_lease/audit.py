# Copyright: osops.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The audit record: one JSON line per change a run makes, written as it happens.

A removal is written twice, before the API call (``outcome: started``) and after
(``removed``, ``failed``, ...), so a run killed in between still leaves a trace.
Each line is flushed and fsynced before the run goes on.
"""

from __future__ import annotations

import json
import os
import threading
import uuid
from datetime import datetime, timezone

from .keys import format_time


class AuditError(OSError):
    """The audit file cannot be written: the run must not change anything."""


class AuditLog:
    def __init__(self, path: str | None, check_mode: bool = False, run_id: str | None = None):
        self.path = path
        self.check_mode = check_mode
        self.run_id = run_id or uuid.uuid4().hex[:12]
        self.records: list[dict] = []
        self._lock = threading.Lock()
        self._file = None
        if path and not check_mode:
            try:
                directory = os.path.dirname(os.path.abspath(path))
                os.makedirs(directory, mode=0o750, exist_ok=True)
                descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
                self._file = os.fdopen(descriptor, "a", encoding="utf-8")
            except OSError as error:
                raise AuditError("cannot open the audit log %s: %s" % (path, error.strerror or error)) from None

    def write(self, event: str, **fields) -> dict:
        """Record one event; fields are JSON-serialisable values."""
        record = {"time": format_time(datetime.now(timezone.utc)), "run_id": self.run_id, "event": event,
                  "check_mode": self.check_mode}
        record.update(fields)
        with self._lock:
            self.records.append(record)
            if self._file is not None:
                self._file.write(json.dumps(record, sort_keys=True) + "\n")
                self._file.flush()
                os.fsync(self._file.fileno())
        return record

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None
