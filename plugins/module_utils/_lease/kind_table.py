# Copyright: osops.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The resource kinds with leases: the one place that says what each kind is (stdlib only).

Everything else derives from ``KINDS``: the removal order, the CLI noun of an extension
command, the removal verbs and their defaults, the statuses in which a softer step is done,
the "uses" edges that decide what must go first, the statuses in which the service takes no
metadata, the modules' choices and (pinned by a unit test) the roles' argument specs.
Adding a kind is one entry here and one adapter in ``kinds.py``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Ref:
    """A record field naming resources of another kind, and which way "uses" goes."""

    field: str          # the record field: one id, or a list of ids
    kind: str           # the kind of the resources it names
    uses: bool = True   # True: this resource uses them; False: they use this resource


@dataclass(frozen=True)
class KindSpec:
    name: str
    cli_noun: str                       # openstack <noun> set --property ...
    verbs: tuple[str, ...]              # what removing it may mean; the first is the default
    done_statuses: tuple[tuple[str, tuple[str, ...]], ...] = ()  # verb -> statuses in which it is done already
    refs: tuple[Ref, ...] = ()          # the "uses" edges its records carry
    metadata_frozen: tuple[str, ...] = ()  # statuses in which the service refuses metadata changes, even an admin's

    def done_in(self, verb: str) -> tuple[str, ...]:
        return dict(self.done_statuses).get(verb, ())

    @property
    def used_by(self) -> tuple[str, ...]:
        """Kinds whose resources may use one of this kind (from every kind's refs, in removal order)."""
        users = {spec.name for spec in KINDS for ref in spec.refs if ref.uses and ref.kind == self.name}
        users.update(ref.kind for ref in self.refs if not ref.uses)
        return tuple(kind for kind in KIND_ORDER if kind in users)


_SHELVED = ("SHELVED", "SHELVED_OFFLOADED")

# In removal order: a kind comes before the kinds it uses (servers before their images and volumes,
# snapshots before their volumes).
KINDS: tuple[KindSpec, ...] = (
    KindSpec("server", "server", ("delete", "shelve", "stop"),
             # a shelved server is more than stopped
             done_statuses=(("shelve", _SHELVED), ("stop", ("SHUTOFF",) + _SHELVED)),
             refs=(Ref("image_id", "image"), Ref("volume_ids", "volume")),
             # Nova accepts server metadata only while ACTIVE, PAUSED, SUSPENDED or stopped
             metadata_frozen=_SHELVED),
    # a snapshot keeps its volume
    KindSpec("snapshot", "volume snapshot", ("delete",), refs=(Ref("volume_id", "volume"),)),
    # Cinder names the servers a volume is attached to (they may lie outside the scan)
    KindSpec("volume", "volume", ("delete",), refs=(Ref("attached_to", "server", uses=False),)),
    KindSpec("image", "image", ("deactivate", "delete"), done_statuses=(("deactivate", ("deactivated",)),)),
)

KIND = {spec.name: spec for spec in KINDS}
KIND_ORDER = tuple(spec.name for spec in KINDS)
# kind -> the kinds that may use one of its resources
USES = {spec.name: spec.used_by for spec in KINDS if spec.used_by}
# what a verb did, in the results and mails
PAST = {"delete": "deleted", "shelve": "shelved", "stop": "stopped", "deactivate": "deactivated"}


def kind_rank(kind: str) -> int:
    """A kind's place in the removal order; ValueError for a kind that has no lease."""
    try:
        return KIND_ORDER.index(kind)
    except ValueError:
        raise ValueError("unknown resource kind %r (known: %s)" % (kind, ", ".join(KIND_ORDER))) from None
