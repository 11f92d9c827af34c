# Copyright: osops.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""One summary of a rollout over many nodes (pure)."""

from __future__ import annotations

# Counts shown per node, in this order, with the names operators read.
COLUMNS = (
    ("linked", "linked"),
    ("already_linked", "already linked"),
    ("updated", "updated"),
    ("skipped_images", "skipped"),
    ("pruned", "pruned"),
    ("kept", "kept"),
    ("errors", "errors"),
)


def summarise(results: dict) -> dict:
    """Per-node counts, totals and printable lines from {host: imagecache_link result}.

    A host without a result (unreachable, failed before the module) is listed
    under ``missing`` so the summary never hides it.
    """
    nodes: dict[str, dict] = {}
    missing: list[str] = []
    for host in sorted(results):
        counts = (results[host] or {}).get("counts")
        if not isinstance(counts, dict):
            missing.append(host)
            continue
        nodes[host] = {key: int(counts.get(key, 0)) for key, _label in COLUMNS}
    totals = {key: sum(node[key] for node in nodes.values()) for key, _label in COLUMNS}

    def line(counts: dict) -> str:
        return ", ".join("%s %d" % (label, counts[key]) for key, label in COLUMNS)

    lines = ["%s: %s" % (host, line(counts)) for host, counts in nodes.items()]
    lines.extend("%s: no result (unreachable or failed)" % host for host in missing)
    lines.append("TOTAL (%d node%s): %s" % (len(nodes), "" if len(nodes) == 1 else "s", line(totals)))
    return {"nodes": nodes, "totals": totals, "missing": missing, "lines": lines}
