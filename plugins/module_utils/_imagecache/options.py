# Copyright: osops.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The module's options, checked at the door (pure apart from the user and group databases).

Owner and mode land on Glance's own file (a hard link shares its inode), so a
value outside what a base file may have is an error, never clamped or masked.
"""

from __future__ import annotations

import grp
import pwd
import re

from .plan import invalid_id

MAX_ID = (1 << 32) - 2  # (uid_t)-1 means "unchanged" to chown(2)
MAX_MODE = 0o777  # no setuid, setgid or sticky bit on an image file
_OCTAL = re.compile(r"^(?:0o?)?([0-7]{1,12})$")


def parse_mode(value: object) -> int:
    """Permission bits from an octal string ("0644") or a number (YAML's 0644 is already 420)."""
    if isinstance(value, bool):
        raise ValueError("mode must be an octal string such as '0644', not a boolean")
    if isinstance(value, int):
        mode = value
    elif isinstance(value, str):
        match = _OCTAL.match(value.strip())
        if not match:
            raise ValueError("mode %r is not an octal mode such as '0644'" % value)
        mode = int(match.group(1), 8)
    else:
        raise ValueError("mode must be an octal string such as '0644'")
    if not 0 <= mode <= MAX_MODE:
        raise ValueError("mode %s is outside 0000..0777 (no setuid, setgid or sticky bit on image files)" % oct(mode))
    return mode


def parse_id(value: str | None, what: str) -> int | None:
    """A user or group id from a name that exists on this host, or a number in range; None keeps it unchanged."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        number = int(value)
        if number > MAX_ID:
            raise ValueError("%s %s is not a valid id (0..%d)" % (what, value, MAX_ID))
        return number
    try:
        return pwd.getpwnam(value).pw_uid if what == "owner" else grp.getgrnam(value).gr_gid
    except KeyError:
        raise ValueError("%s %r does not exist on this host" % (what, value)) from None


def parse_touch_interval(value: int) -> int:
    if value < 0:
        raise ValueError("touch_interval must be 0 or more seconds")
    return value


def parse_image_ids(values: list[str]) -> frozenset[str] | None:
    """The run's scope from image_ids: None (the whole list) when empty; an id that cannot be an image's is an error."""
    bad = [value for value in values if invalid_id(value)]
    if bad:
        raise ValueError("image_ids: %r is not a valid image id" % bad[0])
    return frozenset(values) or None
