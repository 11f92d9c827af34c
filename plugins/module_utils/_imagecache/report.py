# Copyright: osops.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What one node's run did, built from its outcomes, and one summary of a rollout (pure)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

# The result categories: the module's result lists and counts, the rollout
# summary's columns (with the names operators read) and RETURN all use these.
CATEGORIES = (
    ("linked", "linked"),
    ("already_linked", "already linked"),
    ("updated", "updated"),
    ("skipped_images", "skipped"),
    ("pruned", "pruned"),
    ("kept", "kept"),
    ("errors", "errors"),
    ("refused", "refused"),
)
CATEGORY_NAMES = tuple(name for name, _label in CATEGORIES)
# Categories that mean the cache was changed.
CHANGES = frozenset(("linked", "updated", "pruned"))


class Outcome(NamedTuple):
    """One thing a run did or decided not to do: its category, the entry shown, and its diff lines."""

    category: str
    entry: object  # a dict, or the image id for already_linked
    before: str = ""
    after: str = ""


@dataclass
class Report:
    lists: dict[str, list] = field(default_factory=lambda: {name: [] for name in CATEGORY_NAMES})
    temp_files_removed: list[str] = field(default_factory=list)
    diff_before: list[str] = field(default_factory=list)
    diff_after: list[str] = field(default_factory=list)

    def add(self, outcome: Outcome) -> None:
        self.lists[outcome.category].append(outcome.entry)
        if outcome.before or outcome.after:
            self.diff_before.append(outcome.before)
            self.diff_after.append(outcome.after)

    @property
    def changed(self) -> bool:
        return any(self.lists[name] for name in CHANGES) or bool(self.temp_files_removed)

    def result(self) -> dict:
        return dict(self.lists, changed=self.changed, temp_files_removed=self.temp_files_removed,
                    counts={name: len(entries) for name, entries in self.lists.items()})


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
        nodes[host] = {key: int(counts.get(key, 0)) for key in CATEGORY_NAMES}
    totals = {key: sum(node[key] for node in nodes.values()) for key in CATEGORY_NAMES}

    def line(counts: dict) -> str:
        return ", ".join("%s %d" % (label, counts[key]) for key, label in CATEGORIES)

    lines = ["%s: %s" % (host, line(counts)) for host, counts in nodes.items()]
    lines.extend("%s: no result (unreachable or failed)" % host for host in missing)
    lines.append("TOTAL (%d node%s): %s" % (len(nodes), "" if len(nodes) == 1 else "s", line(totals)))
    return {"nodes": nodes, "totals": totals, "missing": missing, "lines": lines}
