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
``<prefix>exempt``      an operator's exemption (its reason), set with ``resource_lease``
``<prefix>seal``        the collection's seal: the true expiry, notice and extension count,
                        and a MAC over them and the owner override and exemption (``seal.py``)

Everything but ``<prefix>extend`` is written by the collection only; owners can
write every key, so values are read as hostile input. Reading is total: what cannot
be parsed is reported in ``LeaseRecord.problems``, never raised. Whether a value
is *trusted* is decided by the seal (``trust.py``), not here.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Mapping

from .kind_table import KIND

DEFAULT_PREFIX = "lease_"
# Prefixes end up in metadata keys of four services; keep them to what all accept.
_PREFIX = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,62}$")
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
_NOTICE = re.compile(r"^([0-9]{1,4})d sent (\S{1,40}) for (\S{1,40})$", re.ASCII)
_COUNT = re.compile(r"^[0-9]{1,6}$", re.ASCII)
_REQUEST = re.compile(r"^([0-9]{1,6}) ?d?$", re.ASCII | re.IGNORECASE)
# One RFC 5322 addr-spec with a dot-atom local part and a DNS domain: no display
# names, no lists, no quoting, no comments, no IP literals.
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_EMAIL = re.compile(r"^%s(?:\.%s)*@%s(?:\.%s)+$" % (_ATOM, _ATOM, _LABEL, _LABEL), re.ASCII)
# Longer stored values than this are not ours (we write at most ~200 characters).
MAX_VALUE = 255
# Requests and policies beyond a century are refused rather than computed.
MAX_DAYS = 36500


class LeaseValueError(ValueError):
    """A stored lease value that cannot be understood."""


def valid_email(text) -> bool:
    """Exactly one plain address (``local@domain.tld``), at most 254 characters: safe to put in ``To:``."""
    return isinstance(text, str) and len(text) <= 254 and bool(_EMAIL.match(text))


def readable_time(moment: datetime) -> str:
    """A lease time (UTC) as people read it, in reasons and on the portal: 2026-12-19 08:57 UTC."""
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def format_time(moment: datetime) -> str:
    """ISO 8601 UTC with a Z, to the second: the one form we write."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime: lease times are always UTC")
    return moment.astimezone(timezone.utc).strftime(_TIME_FORMAT)


def parse_time(text) -> datetime:
    """Parse an ISO 8601 time; without a zone it is taken as UTC. Raises LeaseValueError, nothing else.

    Every input is answered: times that cannot be represented in UTC (year 1 with a
    positive offset, year 9999 with a negative one) are errors, not OverflowErrors.
    """
    value = str(text).strip()
    if len(value) > 40:
        raise LeaseValueError("not an ISO 8601 time (too long): %s" % shorten(value))
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(value)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        return moment.astimezone(timezone.utc)
    except (ValueError, OverflowError, TypeError):
        raise LeaseValueError("not an ISO 8601 time in UTC range: %s" % shorten(text)) from None


def shorten(value, limit: int = 60) -> str:
    """A stored value as reports show it: repr, cut to ``limit`` characters (values are hostile and may be long)."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


@dataclass(frozen=True)
class LeaseKeys:
    """The metadata keys of a lease, for one prefix."""

    prefix: str = DEFAULT_PREFIX

    def __post_init__(self):
        if not isinstance(self.prefix, str) or not _PREFIX.match(self.prefix):
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

    @property
    def seal(self) -> str:
        return self.prefix + "seal"

    @property
    def exempt(self) -> str:
        return self.prefix + "exempt"

    def all(self) -> tuple[str, ...]:
        return (self.expires, self.notice, self.extensions, self.owner, self.extend_request, self.seal, self.exempt)

    def written(self) -> tuple[str, ...]:
        """The keys only the collection writes (everything but the owner's request)."""
        return (self.expires, self.notice, self.extensions, self.owner, self.seal, self.exempt)

    def extend_command(self, kind: str, resource_id: str, days: int) -> str:
        """The command an owner runs to ask for an extension (granted by the next scan, within the caps)."""
        return "openstack %s set --property %s=%s %s" % (KIND[kind].cli_noun, self.extend_request, days, resource_id)


@dataclass(frozen=True)
class Notice:
    """A notice sent to the owner: at which milestone, when, for which expiry."""

    milestone_days: int
    sent: datetime
    for_expiry: datetime

    def format(self) -> str:
        return "%dd sent %s for %s" % (self.milestone_days, format_time(self.sent), format_time(self.for_expiry))

    @classmethod
    def parse(cls, text) -> "Notice":
        match = _NOTICE.match(str(text).strip())
        if not match:
            raise LeaseValueError("not a notice record (like '7d sent <time> for <expiry>'): %s" % shorten(text))
        return cls(int(match.group(1)), parse_time(match.group(2)), parse_time(match.group(3)))


@dataclass(frozen=True)
class LeaseRecord:
    """A lease: as read from a resource's metadata (None where a key is absent or unreadable), or as trusted."""

    expires: datetime | None = None
    notice: Notice | None = None
    extensions: int = 0
    owner: str | None = None
    extend_request_days: int | None = None
    # key -> what is wrong with its value; such values are never trusted
    problems: dict[str, str] = field(default_factory=dict)
    # the request key is present (valid or not), so handling it means removing it
    has_extend_request: bool = False
    exempt: str | None = None          # an operator's sealed exemption: its reason
    seal: str | None = None            # the seal as stored (checked in seal.py, not here)

    @property
    def present(self) -> bool:
        """Does the resource carry a lease at all (even a broken one)?"""
        return self.expires is not None or bool(self.problems) or self.notice is not None or self.seal is not None


def _text(value) -> str:
    """A stored value as text. Glance properties may be any JSON; Nova and Cinder's are strings."""
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)


def read_lease(metadata, keys: LeaseKeys) -> LeaseRecord:
    """The lease in a resource's metadata. Total: never raises; bad values go to ``problems``."""
    metadata = metadata if isinstance(metadata, Mapping) else {}
    problems: dict[str, str] = {}
    values: dict[str, str] = {}
    for key in keys.all():
        if key in metadata:
            text = _text(metadata[key])
            if len(text) > MAX_VALUE:
                problems[key] = "value of %d characters, longer than any lease value" % len(text)
            else:
                values[key] = text
    expires = notice = owner = request = exempt = None
    extensions = 0
    if keys.expires in values:
        try:
            expires = parse_time(values[keys.expires])
        except LeaseValueError as error:
            problems[keys.expires] = str(error)
    if keys.notice in values:
        try:
            notice = Notice.parse(values[keys.notice])
        except LeaseValueError as error:
            problems[keys.notice] = str(error)
    if keys.extensions in values:
        raw = values[keys.extensions].strip()
        if _COUNT.match(raw):
            extensions = int(raw)
        else:
            problems[keys.extensions] = "not a count of extensions: %s" % shorten(raw)
    if keys.owner in values:
        if valid_email(values[keys.owner].strip()):
            owner = values[keys.owner].strip()
        else:
            problems[keys.owner] = "not one plain e-mail address: %s" % shorten(values[keys.owner])
    if keys.exempt in values:
        exempt = values[keys.exempt]
    match = _REQUEST.match(values.get(keys.extend_request, "").strip())
    if match and int(match.group(1)) > 0:
        request = int(match.group(1))
    # an unreadable request is refused when handled, not a broken lease
    return LeaseRecord(expires, notice, extensions, owner, request, problems, keys.extend_request in metadata,
                       exempt, values.get(keys.seal))


def lease_metadata(keys: LeaseKeys, expires: datetime | None = None, notice: Notice | None = None,
                   extensions: int | None = None, owner: str | None = None) -> dict[str, str]:
    """The readable metadata values for the given parts (only the keys given); the seal is added by trust.sealed_values."""
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


def effective_change(current: dict, values: dict, remove) -> tuple[dict, tuple]:
    """What really changes: values that differ, keys that are there and not being set.

    Removing a key that is not there is dropped here, because Nova and Cinder
    answer 404 to it.
    """
    values = {key: str(value) for key, value in values.items() if current.get(key) != str(value)}
    remove = tuple(sorted(key for key in remove if key in current and key not in values))
    return values, remove
