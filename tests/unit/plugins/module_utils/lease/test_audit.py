# SPDX-License-Identifier: GPL-3.0-or-later
"""The audit log on a real filesystem: what an operator greps after a run."""

from __future__ import annotations

import json
import os
import stat
import threading

import pytest

from ansible_collections.osops.lifecycle.plugins.module_utils._lease.audit import AuditError, AuditLog


def test_one_json_line_per_event_appended_across_runs(tmp_path):
    path = tmp_path / "audit" / "lease.jsonl"
    first = AuditLog(str(path))
    first.write("remove", kind="server", id="a", outcome="started")
    first.write("remove", kind="server", id="a", outcome="removed")
    first.close()
    second = AuditLog(str(path))
    second.write("lease", kind="volume", id="b", outcome="written")
    second.close()
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(r["event"], r["id"], r["outcome"]) for r in lines] == [
        ("remove", "a", "started"), ("remove", "a", "removed"), ("lease", "b", "written")]
    assert {r["run_id"] for r in lines[:2]} == {first.run_id} and lines[2]["run_id"] == second.run_id
    assert all(r["time"].endswith("Z") for r in lines)
    # readable by the operators' group, not by everyone
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640


def test_check_mode_writes_no_file_but_keeps_the_records(tmp_path):
    path = tmp_path / "audit.jsonl"
    audit = AuditLog(str(path), check_mode=True)
    audit.write("remove", id="a", outcome="would_remove")
    audit.close()
    assert not path.exists()
    assert audit.records[0]["check_mode"] is True


def test_an_unwritable_audit_log_stops_the_run_before_any_change(tmp_path):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    with pytest.raises(AuditError, match="cannot open the audit log"):
        AuditLog(str(blocker / "audit.jsonl"))


def test_concurrent_writers_never_interleave_lines(tmp_path):
    path = tmp_path / "audit.jsonl"
    audit = AuditLog(str(path))
    threads = [threading.Thread(target=lambda n=n: [audit.write("remove", id="%d-%d" % (n, i), pad="x" * 500)
                                                    for i in range(50)]) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    audit.close()
    lines = path.read_text().splitlines()
    assert len(lines) == 400
    assert len({json.loads(line)["id"] for line in lines}) == 400
