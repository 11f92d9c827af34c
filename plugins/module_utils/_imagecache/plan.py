# Copyright: osops.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Decide what to do with each image and cache entry (pure: no I/O).

The observe step (observe.py) looks at files through verified descriptors
(FileFacts, Header, hash results); these functions turn observations into
decisions; the act step (act.py) carries them out. Every rule an operator may
argue about (when an image may be linked, what counts as already linked, whose
file may become a base file, what may be pruned) lives here, and so does every
skip reason.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import NamedTuple

from .inspect import Header, content_matches, unsafe_reason
from .naming import cache_name

# Decision actions for an image.
LINK = "link"
ALREADY = "already_linked"
SKIP = "skip"
REFUSE = "refuse"  # hostile or unexpected filesystem state: reported in ``refused``

# Largest size we believe (qcow2 caps virtual disks far below; a file cannot be larger).
MAX_SIZE = 1 << 62
TEXT_FIELDS = ("status", "disk_format", "os_hash_algo", "os_hash_value")
IN_USE = "backing file of an instance disk"


class Image(NamedTuple):
    """The fields of a Glance image that matter here (a tuple: made for every image of every run)."""

    id: str
    status: str
    size: int | None
    disk_format: str | None
    os_hash_algo: str | None = None
    os_hash_value: str | None = None

    @classmethod
    def from_glance(cls, data: object) -> "Image":
        """An image from one entry of the images option; ValueError says what is wrong with it."""
        if not isinstance(data, dict):
            raise ValueError("invalid image entry: not a dict")
        image_id = data.get("id")
        if not isinstance(image_id, str) or not image_id:
            raise ValueError("invalid image entry: id must be a non-empty string")
        size = data.get("size")
        if size is not None and (isinstance(size, bool) or not isinstance(size, int)):
            if not (isinstance(size, str) and size.isdigit()):
                raise ValueError("invalid image entry %s: size must be a whole number of bytes" % image_id)
            size = int(size)
        if size is not None and not 0 <= size <= MAX_SIZE:
            raise ValueError("invalid image entry %s: size must be a whole number of bytes" % image_id)
        texts = (data.get("status"), data.get("disk_format"), data.get("os_hash_algo"), data.get("os_hash_value"))
        for value in texts:
            if value is not None and not isinstance(value, str):
                key = TEXT_FIELDS[texts.index(value)]
                raise ValueError("invalid image entry %s: %s must be a string" % (image_id, key))
        return cls(image_id, texts[0] or "", size, texts[1], texts[2], texts[3])


class FileFacts(NamedTuple):
    """What stat() says of a file (a tuple: made ten thousand times per run)."""

    dev: int
    ino: int
    size: int
    mtime: float
    uid: int
    gid: int
    mode: int  # permission bits only
    nlink: int = 1

    def same_file(self, other: "FileFacts | None") -> bool:
        return other is not None and (self.dev, self.ino) == (other.dev, other.ino)


def facts_of(st: os.stat_result) -> FileFacts:
    return FileFacts(st.st_dev, st.st_ino, st.st_size, st.st_mtime, st.st_uid, st.st_gid, st.st_mode & 0o7777, st.st_nlink)


@dataclass(frozen=True)
class Wanted:
    """Ownership, mode and freshness every cache entry should have."""

    uid: int | None
    gid: int | None
    mode: int
    touch: bool
    touch_interval: float
    formats: frozenset[str]
    verify_hash: bool


class Decision(NamedTuple):
    image_id: str
    base_name: str
    action: str
    reason: str = ""
    # attribute changes for a present or new entry: chown, chmod, touch
    fixes: tuple[str, ...] = ()


def source_refusal(source: FileFacts, store_uid: int) -> str | None:
    """Why a Glance file must not become a base file whatever Glance says, or None.

    A base file shares its inode with the Glance file, and we chown and chmod that
    inode. Glance writes its files as the store's owner (and our earlier runs may
    have given them the base files' owner): a root-owned file in a store root does
    not own was put there by someone else, for example as a hard link of one of
    root's files (NFS servers do not apply protected_hardlinks), and must never be
    handed to the base files' owner or made readable.
    """
    if source.uid == 0 and store_uid != 0:
        return "the Glance file is owned by root in a store that uid %d owns" % store_uid
    return None


def invalid_id(image_id: str) -> bool:
    """The id becomes a name in source_dir: it must never name anything outside it."""
    return not image_id or "/" in image_id or image_id.startswith(".") or "\0" in image_id


def in_scope(image_id: object, scope: frozenset[str] | None) -> bool:
    """Whether a run limited to ``scope`` (image ids; None: the whole list) covers this id."""
    return scope is None or (isinstance(image_id, str) and image_id in scope)


def scope_names(scope: frozenset[str] | None) -> frozenset[str] | None:
    """The base file names a scoped run may look at (None: all)."""
    return None if scope is None else frozenset(cache_name(image_id) for image_id in scope)


def preselect(image: Image, wanted: Wanted) -> str | None:
    """Reason to skip an image from Glance's metadata alone, or None."""
    if invalid_id(image.id):
        return "invalid image id"
    if image.status != "active":
        # queued/saving/importing: partial or absent file; others: not for booting
        return "status is %s, not active" % (image.status or "unknown")
    if not image.disk_format:
        return "Glance has no disk_format for it"
    if image.disk_format not in wanted.formats:
        return "disk_format %s is not in formats (%s)" % (image.disk_format, ", ".join(sorted(wanted.formats)))
    if image.size is None:
        return "Glance has no size for it"
    if wanted.verify_hash and not (image.os_hash_algo and image.os_hash_value):
        return "verify=hash but Glance has no os_hash_value for it"
    return None


def attribute_fixes(entry: FileFacts, wanted: Wanted, now: float) -> tuple[str, ...]:
    """Which attributes of an existing entry differ from what is wanted."""
    fixes = []
    if (wanted.uid is not None and entry.uid != wanted.uid) or (wanted.gid is not None and entry.gid != wanted.gid):
        fixes.append("chown")
    if entry.mode != wanted.mode:
        fixes.append("chmod")
    if wanted.touch and now - entry.mtime >= wanted.touch_interval:
        fixes.append("touch")
    return tuple(fixes)


def needs_hash(image: Image, wanted: Wanted, source: FileFacts, header: Header) -> bool:
    """Hash the file? Only when asked to and nothing cheaper already rules the file out (hashing is the slow part)."""
    return (wanted.verify_hash and source.size == image.size and content_matches(image.disk_format or "", header)
            and not unsafe_reason(header))


def decide(
    image: Image,
    base_name: str,
    wanted: Wanted,
    now: float,
    source: FileFacts | None,
    entry: FileFacts | None,
    recorded_copy: bool = False,
    header: Header | None = None,
    hash_ok: bool | None = None,
    store_uid: int | None = None,
) -> Decision:
    """The decision for one image that passed preselect().

    ``recorded_copy``: our state says ``entry`` is a reflink/copy we made of this
    image (a different inode from the Glance file, yet ours). ``header`` and
    ``hash_ok`` are only needed when a new entry would be made. ``store_uid``: the
    owner of Glance's store, for source_refusal() (None: not checked).
    """
    if source is None:
        return Decision(image.id, base_name, SKIP, "Glance file is missing")
    if store_uid is not None and source.uid == 0:
        refusal = source_refusal(source, store_uid)
        if refusal:
            return Decision(image.id, base_name, REFUSE, refusal)
    if source.size != image.size:
        return Decision(image.id, base_name, SKIP, "size mismatch: file has %d bytes, Glance says %d" % (source.size, image.size))
    if entry is not None:
        # a copy of ours has one name only: a second name is someone's hard link of another file
        if (entry.ino == source.ino and entry.dev == source.dev) or (recorded_copy and entry.nlink == 1):
            return Decision(image.id, base_name, ALREADY, "", attribute_fixes(entry, wanted, now))
        # Nova's own download (maybe converted to raw) or someone else's file:
        # instances may use it, so it is never replaced.
        return Decision(image.id, base_name, SKIP, "a different base file already exists; left alone")
    unsafe = unsafe_reason(header) if header is not None else None
    if header is None:
        reason = "header not read"
    elif not content_matches(image.disk_format or "", header):
        reason = "content is %s but Glance says %s" % (header.format, image.disk_format)
    elif unsafe:
        reason = unsafe
    elif wanted.verify_hash and hash_ok is not True:
        reason = ("content hash differs from Glance's %s" % image.os_hash_algo if hash_ok is False
                  else "content hash not checked")
    else:
        reason = ""
    if reason:
        return Decision(image.id, base_name, SKIP, reason)
    return Decision(image.id, base_name, LINK, fixes=("chown", "chmod", "touch") if wanted.touch else ("chown", "chmod"))


class Recorded(NamedTuple):
    """An entry our state says we created: which image, which file."""

    image_id: str
    dev: int
    ino: int


def scoped_records(recorded: dict[str, Recorded], names: frozenset[str] | None) -> dict[str, Recorded]:
    """The state's records a prune may judge (and forget): all, or those of the scope's base files only.

    A scoped run knows nothing of the other images (a partial list), so their
    records and files are not its to judge.
    """
    if names is None:
        return recorded
    return {base_name: record for base_name, record in recorded.items() if base_name in names}


@dataclass
class PrunePlan:
    prune: list[str] = field(default_factory=list)
    # base name -> why it stays
    kept: dict[str, str] = field(default_factory=dict)
    # base names to drop from our state (gone, or no longer our file)
    forget: list[str] = field(default_factory=list)


def plan_prune(
    recorded: dict[str, Recorded],
    linked_sources: dict[str, FileFacts],
    active_ids: set[str],
    entries: dict[str, FileFacts],
    in_use: set[str],
    unjudged: tuple[str, ...] = (),
) -> PrunePlan:
    """Entries to remove: ours, of images no longer active, used by no instance.

    ``recorded``: base name -> what our state says we created.
    ``linked_sources``: base name -> Glance file of a listed but inactive image
    whose cache entry is a hard link of it (made by us or by an older tool).
    ``entries``: base name -> facts of what is in the cache now.
    ``in_use``: base names that instance disks name as their backing file.
    ``unjudged``: instance disks whose header does not say which base file they
    use (paths with reasons): while there is one, nothing is pruned.
    """
    plan = PrunePlan()
    candidates: dict[str, str] = {}
    for base_name, record in recorded.items():
        entry = entries.get(base_name)
        if entry is None:
            plan.forget.append(base_name)
        elif (entry.dev, entry.ino) != (record.dev, record.ino):
            plan.forget.append(base_name)  # replaced since: not ours any more
        elif record.image_id not in active_ids:
            candidates[base_name] = record.image_id
    for base_name, source in linked_sources.items():
        if source.same_file(entries.get(base_name)):
            candidates.setdefault(base_name, "")
    for base_name in sorted(candidates):
        if base_name in in_use:
            plan.kept[base_name] = IN_USE
        elif unjudged:
            plan.kept[base_name] = "instance disk %s%s: not ours to judge, so every base file stays" % (
                unjudged[0], " (and %d more)" % (len(unjudged) - 1) if len(unjudged) > 1 else "")
        else:
            plan.prune.append(base_name)
    return plan
