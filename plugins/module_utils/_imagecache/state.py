# Copyright: osops.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What we created in one cache and which hashes we verified, kept between runs.

The state file lives outside ``_base`` (Nova never sees it) in a directory of
root's (the operator's choice, /var/lib/osops-lifecycle by default); it is
written atomically.
"""

from __future__ import annotations

import json
import os

from .plan import Recorded

STATE_VERSION = 1


class State:
    """Base name -> the image and inode we created it as; image id -> the hash verified for an inode."""

    def __init__(self, path: str):
        self.path = path
        self.links: dict[str, Recorded] = {}
        self.hashes: dict[str, dict] = {}
        self.dirty = False

    def load(self) -> "State":
        try:
            with open(self.path) as handle:
                data = json.load(handle)
            if data.get("version") != STATE_VERSION:
                return self
            self.links = {name: Recorded(**rec) for name, rec in data.get("links", {}).items()}
            self.hashes = dict(data.get("hashes", {}))
        except FileNotFoundError:
            pass
        except (OSError, ValueError, TypeError, AttributeError):
            # An unreadable state costs re-hashing, and prune forgets the copies we
            # made; it must never stop the run.
            self.links, self.hashes = {}, {}
        return self

    def remember(self, base_name: str, image_id: str, dev: int, ino: int) -> None:
        record = Recorded(image_id, dev, ino)
        if self.links.get(base_name) != record:
            self.links[base_name] = record
            self.dirty = True

    def forget(self, base_name: str) -> None:
        if self.links.pop(base_name, None) is not None:
            self.dirty = True

    def save(self) -> None:
        if not self.dirty:
            return
        os.makedirs(os.path.dirname(self.path), mode=0o755, exist_ok=True)
        tmp = "%s.tmp-%d" % (self.path, os.getpid())
        with open(tmp, "w") as handle:
            # one line, through json's C encoder (indenting 10,000 links takes it off that path)
            handle.write(json.dumps({
                "version": STATE_VERSION,
                "links": {name: rec._asdict() for name, rec in self.links.items()},
                "hashes": self.hashes,
            }, sort_keys=True, separators=(",", ":")))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.path)
        self.dirty = False
