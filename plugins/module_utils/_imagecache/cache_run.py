# Copyright: osops.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""One run over one node's image cache: observe, decide, act, per image; then prune.

observe.py looks (through verified descriptors), plan.py decides (pure),
act.py changes the cache; this file only passes each image through the three
and turns what happened into outcomes (report.py). One image's failure is
recorded and the others go on.
"""

from __future__ import annotations

import errno
import hashlib
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass

from . import act
from .fsdir import Refused, stat_at
from .naming import TEMP_MARKER, cache_name, own_temp_pid
from .observe import CacheDirs, InstanceDisks, SourceFile, entry_facts, hash_matches, open_source, source_facts
from .plan import (ALREADY, LINK, REFUSE, Decision, FileFacts, Image, Wanted, decide, in_scope, invalid_id, needs_hash,
                   plan_prune, preselect, scope_names, scoped_records)
from .report import Outcome, Report
from .state import State

DEFAULT_STATE_DIR = "/var/lib/osops-lifecycle"
STALE_TEMP_SECONDS = 3600


@dataclass
class Options:
    source_dir: str
    cache_dir: str
    instances_dir: str | None  # None: the parent of cache_dir
    state_file: str | None  # None: one per cache under DEFAULT_STATE_DIR
    wanted: Wanted
    fallback: str  # fail | reflink | copy
    prune: bool
    check_mode: bool
    create_cache_dir: bool = False  # make a missing _base inside instances_dir (never in check mode)
    # only these images (the others in the list are ignored, their base files and records untouched); None: all
    image_ids: frozenset[str] | None = None


def default_state_file(real_cache_path: str) -> str:
    return os.path.join(DEFAULT_STATE_DIR, "imagecache-%s.json" % hashlib.sha1(real_cache_path.encode("utf-8")).hexdigest()[:12])


def describe_os_error(error: OSError) -> str:
    if isinstance(error, Refused):
        return str(error)
    return "%s (errno %s)" % (error.strerror or error, errno.errorcode.get(error.errno or 0, error.errno))


def skipped(image_id: str | None, reason: str) -> Outcome:
    return Outcome("skipped_images", {"id": image_id, "reason": reason})


def refused_entry(path: str, reason: str, image_id: str | None = None) -> dict:
    """One entry of the result's ``refused`` list (the module's failure for a refused directory too)."""
    entry = {"path": path, "reason": "refused: " + reason}
    if image_id is not None:
        entry["id"] = image_id
    return entry


def refused(image_id: str | None, error: Refused) -> Outcome:
    return Outcome("refused", refused_entry(error.path, error.reason, image_id))


def failed(image_id: str | None, path: str, error: OSError) -> Outcome:
    return Outcome("errors", {"id": image_id, "path": path, "error": describe_os_error(error)})


def parse_images(entries: list, scope: frozenset[str] | None = None) -> tuple[list[Image], list[Outcome]]:
    """Images from the module's list (those in scope); a bad entry is skipped with its reason, the others go on."""
    images, outcomes = [], []
    for entry in entries:
        if scope is not None and not (isinstance(entry, dict) and in_scope(entry.get("id"), scope)):
            continue
        try:
            images.append(Image.from_glance(entry))
        except ValueError as error:
            image_id = entry.get("id") if isinstance(entry, dict) and isinstance(entry.get("id"), str) else None
            outcomes.append(skipped(image_id, str(error)))
    return images, outcomes


class CacheRun:
    """Observe, decide and act for each image of one cache directory."""

    def __init__(self, options: Options, dirs: CacheDirs):
        self.options = options
        self.wanted = options.wanted
        self.dirs = dirs
        self.state = State(options.state_file or default_state_file(dirs.real_cache_path())).load()
        self.locks = act.NovaLocks(dirs.instances, dirs.locks)
        self.now = time.time()
        self.store_uid = dirs.source.st.st_uid
        self.names = scope_names(options.image_ids)  # base names in scope; None: all

    def image(self, image: Image) -> Sequence[Outcome]:
        base_name = cache_name(image.id)
        reason = preselect(image, self.wanted)
        if reason:
            return [skipped(image.id, reason)]
        try:
            entry = entry_facts(self.dirs, base_name)
            if entry is not None:
                return self.existing(image, base_name, entry)
            return self.new(image, base_name)
        except Refused as error:
            return [refused(image.id, error)]
        except OSError as error:
            return [failed(image.id, getattr(error, "filename", None) or self.dirs.cache.path, error)]

    def existing(self, image: Image, base_name: str, entry: FileFacts) -> Sequence[Outcome]:
        """The common case on every run after the first: is the entry ours, are its attributes right?"""
        source = source_facts(self.dirs, image.id)
        recorded = self.state.links.get(base_name)
        recorded_copy = (recorded is not None and recorded.image_id == image.id and recorded.ino == entry.ino
                         and recorded.dev == entry.dev)
        decision = decide(image, base_name, self.wanted, self.now, source, entry, recorded_copy, store_uid=self.store_uid)
        if decision.action != ALREADY:
            return [self.not_linked(decision)]
        if not recorded_copy:
            # a link made by an earlier run or an older tool: remember it, so
            # prune can find it once Glance has deleted the image's file
            self.state.remember(base_name, image.id, entry.dev, entry.ino)
        if not decision.fixes:
            return (Outcome("already_linked", image.id),)
        if not self.options.check_mode:
            act.fix_entry(self.dirs.cache, base_name, entry, self.wanted, decision.fixes)
        return (Outcome("already_linked", image.id),
                Outcome("updated", {"id": image.id, "path": self.dirs.cache.join(base_name), "changes": list(decision.fixes)}))

    def new(self, image: Image, base_name: str) -> list[Outcome]:
        source = open_source(self.dirs, image)
        if source is None:
            return [self.not_linked(decide(image, base_name, self.wanted, self.now, None, None))]
        try:
            hash_ok = None
            if source.header is not None and needs_hash(image, self.wanted, source.facts, source.header):
                known = self.state.hashes.get(image.id)
                hash_ok = hash_matches(image, source, self.state.hashes)
                self.state.dirty |= self.state.hashes.get(image.id) is not known
            decision = decide(image, base_name, self.wanted, self.now, source.facts, None, False, source.header, hash_ok,
                              store_uid=self.store_uid)
            if decision.action != LINK:
                return [self.not_linked(decision)]
            return [self.link(decision, source)]
        finally:
            source.close()

    def not_linked(self, decision: Decision) -> Outcome:
        if decision.action == REFUSE:
            return refused(decision.image_id, Refused(self.dirs.source.join(decision.image_id), decision.reason))
        return skipped(decision.image_id, decision.reason)

    def link(self, decision: Decision, source: SourceFile) -> Outcome:
        method = "hard link"
        path = self.dirs.cache.join(decision.base_name)
        if self.options.check_mode:
            if self.options.fallback != "fail" and source.facts.dev != self.dirs.cache.st.st_dev:
                method = self.options.fallback
        else:
            with self.locks.hold(decision.base_name):
                try:
                    act.link_file(source.fd, self.dirs.cache, decision.base_name)
                except FileExistsError:
                    # appeared since the scan (Nova's download?): never replaced
                    return skipped(decision.image_id, "a base file appeared meanwhile; left alone")
                except OSError as error:
                    if error.errno not in (errno.EXDEV, errno.EPERM) or self.options.fallback == "fail":
                        raise self.explained(error, path) from None
                    try:
                        made = act.link_copy(source.fd, self.dirs.cache, decision.base_name, self.options.fallback,
                                             self.wanted, decision.fixes)
                    except FileExistsError:
                        return skipped(decision.image_id, "a base file appeared meanwhile; left alone")
                    method = self.options.fallback
                    self.state.remember(decision.base_name, decision.image_id, made.dev, made.ino)
                else:
                    # recorded first: if setting attributes fails (EPERM under root_squash, say), that is
                    # this image's error, and prune still knows the link is ours
                    self.state.remember(decision.base_name, decision.image_id, source.facts.dev, source.facts.ino)
                    act.apply_attributes(source.fd, self.wanted, decision.fixes)
        src = self.dirs.source.join(decision.image_id)
        return Outcome("linked", {"id": decision.image_id, "base_name": decision.base_name, "path": path, "method": method},
                       "%s  absent" % decision.base_name, "%s  %s of %s" % (decision.base_name, method, src))

    def explained(self, error: OSError, path: str) -> OSError:
        if error.errno == errno.EXDEV:
            return OSError(error.errno, "hard link impossible across mounts: %s is on %s, %s on %s (fallback=fail)"
                           % (self.dirs.source.path, self.dirs.source.mount, self.dirs.cache.path, self.dirs.cache.mount), path)
        return OSError(error.errno, error.strerror, path)

    # --- prune -----------------------------------------------------------------

    def prune(self, images: list[Image]) -> list[Outcome]:
        active = {image.id for image in images if image.status == "active"}
        recorded = scoped_records(self.state.links, self.names)
        wanted_names = set(recorded)
        inactive_sources: dict[str, FileFacts] = {}
        ids = {cache_name(image.id): image.id for image in images}
        outcomes: list[Outcome] = []
        for image in images:
            if image.id in active or invalid_id(image.id):
                continue
            try:
                source = source_facts(self.dirs, image.id)
            except Refused as error:
                outcomes.append(refused(image.id, error))
                continue
            if source is not None:
                inactive_sources[cache_name(image.id)] = source
                wanted_names.add(cache_name(image.id))
        entries = {name: facts for name in wanted_names if (facts := entry_facts(self.dirs, name)) is not None}
        disks = InstanceDisks(self.dirs.instances)
        disks.scan()
        plan = plan_prune(recorded, inactive_sources, active, entries, disks.in_use, disks.unjudged)
        for base_name in plan.forget:
            self.state.forget(base_name)
        for base_name, reason in sorted(plan.kept.items()):
            outcomes.append(Outcome("kept", {"base_name": base_name, "id": self.image_id_of(base_name, ids), "reason": reason}))
        for base_name in plan.prune:
            outcomes.append(self.prune_one(base_name, entries[base_name], self.image_id_of(base_name, ids), disks))
        outcomes.extend(Outcome("refused", refused_entry(path, reason)) for path, reason in sorted(disks.refused.items()))
        return outcomes

    def prune_one(self, base_name: str, entry: FileFacts, image_id: str | None, disks: InstanceDisks) -> Outcome:
        path = self.dirs.cache.join(base_name)
        try:
            if not self.options.check_mode:
                with self.locks.hold(base_name):
                    # re-check under the lock: an instance may have started on it (changed disks only are re-read)
                    disks.scan()
                    kept = plan_prune({}, {base_name: entry}, set(), {base_name: entry}, disks.in_use, disks.unjudged).kept
                    if kept:
                        return Outcome("kept", {"base_name": base_name, "id": image_id, "reason": kept[base_name]})
                    act.remove_entry(self.dirs.cache, base_name, entry)
                self.state.forget(base_name)
            return Outcome("pruned", {"base_name": base_name, "id": image_id, "path": path},
                           "%s  present" % base_name, "%s  absent (pruned)" % base_name)
        except Refused as error:
            return refused(image_id, error)
        except OSError as error:
            return failed(image_id, path, error)

    def image_id_of(self, base_name: str, ids: dict[str, str]) -> str | None:
        record = self.state.links.get(base_name)
        return record.image_id if record else ids.get(base_name)

    # --- housekeeping ------------------------------------------------------------

    def remove_stale_temps(self, report: Report) -> None:
        """Remove temp files of ours left by a crashed run (process gone or file old)."""
        cache = self.dirs.cache
        for name in os.listdir(cache.fd):
            pid = own_temp_pid(name)
            # a scoped run leaves other images' temp files (a concurrent full run's, maybe) to the runs that cover them
            if pid is None or (self.names is not None and name.split(TEMP_MARKER)[0] not in self.names):
                continue
            try:
                st = stat_at(cache, name)
                if st is None:
                    continue
                alive = os.path.exists("/proc/%d" % pid) and pid != os.getpid()
                if alive and self.now - st.st_mtime < STALE_TEMP_SECONDS:
                    continue
                if not self.options.check_mode:
                    os.unlink(name, dir_fd=cache.fd)
                report.temp_files_removed.append(cache.join(name))
            except FileNotFoundError:
                continue
            except OSError as error:
                report.add(failed(None, cache.join(name), error))


def run(options: Options, entries: list) -> Report:
    """One run over one cache: the module's whole job. OSError (Refused included) if a directory cannot be used."""
    report = Report()
    images, bad_entries = parse_images(entries, options.image_ids)
    for outcome in bad_entries:
        report.add(outcome)
    dirs = CacheDirs.open(options.source_dir, options.cache_dir, options.instances_dir, create_cache=options.create_cache_dir and not options.check_mode)
    try:
        cache_run = CacheRun(options, dirs)
        try:
            cache_run.remove_stale_temps(report)
            add = report.add
            for image in images:
                for outcome in cache_run.image(image):
                    add(outcome)
            if options.prune:
                for outcome in cache_run.prune(images):
                    report.add(outcome)
            if not options.check_mode:
                cache_run.state.save()
        finally:
            cache_run.locks.close()
    finally:
        dirs.close()
    return report
