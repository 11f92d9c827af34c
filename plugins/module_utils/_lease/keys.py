# Copyright: osops.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The lease as stored on a resource: key names and values, in one place.

A lease lives in the resource's own metadata (Nova server metadata, Glance image
properties, Cinder volume and snapshot metadata), under keys with a common
prefix (default ``lease_``):

``<prefix>expires``     expiry, ISO 8601 UTC (``2026-12-01T00:00:00Z``)
``<prefix>notice``      last notice sent: ``7d sent 2026-11-24T06:00:00Z for 2026-12-01T00:00:00Z``
                        (milestone in days before expiry, when, and for which expiry:
                        a notice for an earlier expiry does not count after an extension)
``<prefix>extensions``  how many times the lease was extended
``<prefix>owner``       e-mail address that overrides the owner lookup
``<prefix>extend``      an owner's request for more days (self-service), removed once handled

Values are short ASCII strings (Nova allows 255 characters per value). Reading
never raises: what cannot be parsed is reported in ``LeaseRecord.problems``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timezone

DEFAULT_PREFIX = "lease_"
# Prefixes end up in metadata keys of four services; keep them to what all accept.
_PREFIX = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,62}$")
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
_NOTICE = re.compile(r"^(\d{1,4})d sent (\S+) for (\S+)$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class LeaseValueError(ValueError):
    """A stored lease value that cannot be understood."""


def valid_email(text: str) -> bool:
    """Good enough to send to: one @, a dot in the domain, no spaces."""
    return bool(_EMAIL.match(str(text).strip()))


def format_time(moment: datetime) -> str:
    """ISO 8601 UTC with a Z, to the second: the one form we write."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime: lease times are always UTC")
    return moment.astimezone(timezone.utc).strftime(_TIME_FORMAT)


def parse_time(text: str) -> datetime:
    """Parse an ISO 8601 time; without a zone it is taken as UTC. Raises LeaseValueError."""
    value = str(text).strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise LeaseValueError("not an ISO 8601 time: %r" % text) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


# The openstack CLI's name for each kind, for the commands owners are told to run.
CLI_NOUNS = {"server": "server", "image": "image", "volume": "volume", "snapshot": "volume snapshot"}


@dataclass(frozen=True)
class LeaseKeys:
    """The metadata keys of a lease, for one prefix."""

    prefix: str = DEFAULT_PREFIX

    def __post_init__(self):
        if not _PREFIX.match(self.prefix):
            raise ValueError("lease key prefix %r: use letters, digits, '_', '.', ':' or '-' (at most 63)" % self.prefix)

    @property
    def expires(self) -> str:
        return self.prefix + "expires"

    @property
    def notice(self) -> str:
        return self.prefix + "notice"

    @property
    def extensions(self) -> str:
        return self.prefix + "extensions"

    @property
    def owner(self) -> str:
        return self.prefix + "owner"

    @property
    def extend_request(self) -> str:
        return self.prefix + "extend"

    def all(self) -> tuple[str, ...]:
        return (self.expires, self.notice, self.extensions, self.owner, self.extend_request)

    def extend_command(self, kind: str, resource_id: str, days: int | str = "DAYS") -> str:
        """The command an owner runs to ask for an extension (granted by the next scan, within the caps)."""
        return "openstack %s set --property %s=%s %s" % (CLI_NOUNS[kind], self.extend_request, days, resource_id)


@dataclass(frozen=True)
class Notice:
    """A notice sent to the owner: at which milestone, when, for which expiry."""

    milestone_days: int
    sent: datetime
    for_expiry: datetime

    def format(self) -> str:
        return "%dd sent %s for %s" % (self.milestone_days, format_time(self.sent), format_time(self.for_expiry))

    @classmethod
    def parse(cls, text: str) -> "Notice":
        match = _NOTICE.match(str(text).strip())
        if not match:
            raise LeaseValueError("not a notice record (like '7d sent <time> for <expiry>'): %r" % text)
        return cls(int(match.group(1)), parse_time(match.group(2)), parse_time(match.group(3)))


@dataclass(frozen=True)
class LeaseRecord:
    """A lease as read from a resource's metadata; None where a key is absent or unreadable."""

    expires: datetime | None = None
    notice: Notice | None = None
    extensions: int = 0
    owner: str | None = None
    extend_request_days: int | None = None
    # key -> what is wrong with its value; such values are never trusted
    problems: dict[str, str] = field(default_factory=dict)
    # the request key is present (valid or not), so handling it means removing it
    has_extend_request: bool = False

    @property
    def present(self) -> bool:
        """Does the resource carry a lease at all (even a broken one)?"""
        return self.expires is not None or bool(self.problems) or self.notice is not None


def read_lease(metadata: dict | None, keys: LeaseKeys) -> LeaseRecord:
    """The lease in a resource's metadata. Never raises: bad values go to ``problems``."""
    metadata = metadata or {}
    problems: dict[str, str] = {}
    expires = notice = owner = request = None
    extensions = 0

    raw = metadata.get(keys.expires)
    if raw is not None:
        try:
            expires = parse_time(raw)
        except LeaseValueError as error:
            problems[keys.expires] = str(error)
    raw = metadata.get(keys.notice)
    if raw is not None:
        try:
            notice = Notice.parse(raw)
        except LeaseValueError as error:
            problems[keys.notice] = str(error)
    raw = metadata.get(keys.extensions)
    if raw is not None:
        if str(raw).strip().isdigit():
            extensions = int(str(raw).strip())
        else:
            problems[keys.extensions] = "not a count of extensions: %r" % raw
    raw = metadata.get(keys.owner)
    if raw is not None:
        if valid_email(raw):
            owner = str(raw).strip()
        else:
            problems[keys.owner] = "not an e-mail address: %r" % raw
    raw = metadata.get(keys.extend_request)
    if raw is not None:
        text = str(raw).strip().lower().rstrip("d")
        if text.isdigit() and int(text) > 0:
            request = int(text)
        # an unreadable request is refused when handled, not a broken lease
    return LeaseRecord(expires, notice, extensions, owner, request, problems, raw is not None)


def lease_metadata(keys: LeaseKeys, expires: datetime | None = None, notice: Notice | None = None,
                   extensions: int | None = None, owner: str | None = None) -> dict[str, str]:
    """The metadata values to write for the given parts (only the keys given)."""
    values: dict[str, str] = {}
    if expires is not None:
        values[keys.expires] = format_time(expires)
    if notice is not None:
        values[keys.notice] = notice.format()
    if extensions is not None:
        values[keys.extensions] = str(extensions)
    if owner is not None:
        values[keys.owner] = owner
    return values
