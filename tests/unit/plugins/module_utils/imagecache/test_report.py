# SPDX-License-Identifier: GPL-3.0-or-later
"""The rollout summary an operator reads."""

from __future__ import annotations

import yaml

from ansible_collections.osops.lifecycle.plugins.module_utils._imagecache.report import CATEGORY_NAMES, Outcome, Report, summarise
from ansible_collections.osops.lifecycle.plugins.modules import imagecache_link


def result(linked=0, already=0, skipped=0, errors=0, **more):
    return {"counts": dict({"linked": linked, "already_linked": already, "updated": 0, "skipped_images": skipped,
                            "pruned": 0, "kept": 0, "errors": errors}, **more)}


def test_per_node_lines_and_totals():
    # node2's result has no "refused" count (a node on an older version): counted as 0
    summary = summarise({"node2": result(1, 9, 2), "node1": result(3, 7, 2, errors=1, refused=2)})

    assert summary["totals"]["linked"] == 4 and summary["totals"]["errors"] == 1 and summary["totals"]["refused"] == 2
    assert summary["lines"][0] == "node1: linked 3, already linked 7, updated 0, skipped 2, pruned 0, kept 0, errors 1, refused 2"
    assert summary["lines"][-1].startswith("TOTAL (2 nodes): linked 4, already linked 16")


def test_a_node_without_result_is_never_hidden():
    summary = summarise({"node1": result(1), "node2": None, "node3": {"unreachable": True}})

    assert summary["missing"] == ["node2", "node3"]
    assert "node2: no result (unreachable or failed)" in summary["lines"]
    assert summary["lines"][-1].startswith("TOTAL (1 node): linked 1")


def test_every_category_is_documented_and_returned():
    documented = yaml.safe_load(imagecache_link.RETURN)
    report = Report()
    report.add(Outcome("refused", {"path": "/x", "reason": "refused: test"}))
    result = report.result()
    for name in CATEGORY_NAMES:
        assert name in documented and name in documented["counts"]["sample"], name
        assert name in result and name in result["counts"]
    assert result["counts"]["refused"] == 1 and result["changed"] is False
