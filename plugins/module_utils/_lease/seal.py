# Copyright: osops.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The lease seal: what the collection wrote, in a form owners cannot produce (pure, stdlib only).

Owners can write every metadata key of their resources, so the readable lease
keys prove nothing. The collection therefore also writes ``<prefix>seal``::

    s1.<key id>.<expires>.<notice>.<extensions>.<extras tag>.<mac>

- ``expires``: Unix seconds; ``notice``: ``<milestone>-<sent>-<for expiry>`` in
  Unix seconds, or ``n`` for none; ``extensions``: the count.
- ``extras tag``: a MAC over the owner override and the exemption, so editing
  either is seen (they are not restorable: a forged one is dropped).
- ``mac``: HMAC-SHA256 over the kind, the resource id, the key prefix and all of
  the above, with the operator's key ``key id``.

The seal carries the values themselves, so an edited readable key is restored
from it. It is bound to the resource (kind and id): a seal copied from another
resource does not verify. Keys have ids so they can rotate: the first key of the
key file signs, the others are still accepted for reading.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import stat
from dataclasses import dataclass
from datetime import datetime, timezone

from .keys import Notice

VERSION = "s1"
_KEY_ID = re.compile(r"^[A-Za-z0-9_-]{1,16}$")
MIN_SECRET = 32
_NUMBER = re.compile(r"^-?[0-9]{1,12}$", re.ASCII)
_NOTICE = re.compile(r"^([0-9]{1,4})-(-?[0-9]{1,12})-(-?[0-9]{1,12})$", re.ASCII)
_TAG = re.compile(r"^[A-Za-z0-9_-]{16}$")
_MAC = re.compile(r"^[A-Za-z0-9_-]{43}$")
ENV_KEY_FILE = "OSOPS_LEASE_SEAL_KEY_FILE"


class SealKeyError(ValueError):
    """The key file cannot be used (missing, unreadable, readable by others, malformed, too short)."""


class Keyring:
    """The operator's seal keys: the first signs, all verify. Never printed (``repr`` shows ids only)."""

    def __init__(self, keys: list[tuple[str, bytes]]):
        if not keys:
            raise SealKeyError("no seal key")
        self.signing_id = keys[0][0]
        self._secrets = dict(keys)

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(self._secrets)

    def mac(self, key_id: str, message: bytes) -> str | None:
        secret = self._secrets.get(key_id)
        if secret is None:
            return None
        digest = hmac.new(secret, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")

    def __repr__(self) -> str:
        return "Keyring(ids=%r)" % (self.ids,)


def parse_keyring(text: str, source: str = "the seal key") -> Keyring:
    """Keys from text: one ``<id> <secret>`` per line, ``#`` comments; the first line signs."""
    keys: list[tuple[str, bytes]] = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) != 2 or not _KEY_ID.match(parts[0]):
            # never echo the line: it holds a secret
            raise SealKeyError("%s, line %d: expected '<key id> <secret>' (id: letters, digits, '_' or '-', "
                               "at most 16)" % (source, number))
        if len(parts[1]) < MIN_SECRET:
            raise SealKeyError("%s, key %s: the secret is shorter than %d characters (make one with "
                               "'openssl rand -base64 48')" % (source, parts[0], MIN_SECRET))
        if parts[0] in dict(keys):
            raise SealKeyError("%s: key id %s is given twice" % (source, parts[0]))
        keys.append((parts[0], parts[1].encode("utf-8")))
    if not keys:
        raise SealKeyError("%s holds no key" % source)
    return Keyring(keys)


def load_keyring(path: str | None) -> Keyring:
    """The key file at ``path``: a regular file, not a symlink, not readable or writable by others."""
    if not path:
        raise SealKeyError("no seal key file: set seal_key_file (or %s); leases cannot be written or trusted "
                           "without it" % ENV_KEY_FILE)
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as error:
        raise SealKeyError("seal key file %s: %s" % (path, error.strerror or error)) from None
    try:
        info = os.fstat(descriptor)
        if not stat.S_ISREG(info.st_mode):
            raise SealKeyError("seal key file %s is not a regular file" % path)
        if info.st_mode & 0o007:
            raise SealKeyError("seal key file %s is accessible to others (mode %04o): chmod o-rwx"
                               % (path, stat.S_IMODE(info.st_mode)))
        if info.st_size > 65536:
            raise SealKeyError("seal key file %s is too large to be a key file" % path)
        with os.fdopen(os.dup(descriptor), "rb") as handle:
            data = handle.read(65537)
    finally:
        os.close(descriptor)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise SealKeyError("seal key file %s is not UTF-8 text" % path) from None
    return parse_keyring(text, "seal key file %s" % path)


@dataclass(frozen=True)
class SealedState:
    """What a seal vouches for."""

    expires: datetime
    notice: Notice | None
    extensions: int


@dataclass(frozen=True)
class SealCheck:
    """The result of opening a seal: the state it vouches for, or why it vouches for nothing."""

    state: SealedState | None = None
    key_id: str | None = None
    extras_tag: str | None = None
    problem: str | None = None

    @property
    def valid(self) -> bool:
        return self.state is not None


def _epoch(moment: datetime) -> str:
    return str(int(moment.astimezone(timezone.utc).timestamp()))


def _moment(text: str) -> datetime:
    return datetime.fromtimestamp(int(text), timezone.utc)


def _message(*parts: str) -> bytes:
    # NUL cannot occur in ids, prefixes or our fields, so the parts cannot be re-split differently
    return "\0".join(parts).encode("utf-8")


def extras_tag(keyring: Keyring, key_id: str, prefix: str, kind: str, resource_id: str,
               owner: str | None, exempt: str | None) -> str | None:
    mac = keyring.mac(key_id, _message(VERSION, "extras", prefix, kind, resource_id, owner or "", exempt or ""))
    return mac[:16] if mac else None


def seal_lease(keyring: Keyring, prefix: str, kind: str, resource_id: str, state: SealedState,
               owner: str | None = None, exempt: str | None = None) -> str:
    """The seal for this resource's lease, made with the signing key."""
    key_id = keyring.signing_id
    notice = state.notice
    notice_text = "n" if notice is None else "%d-%s-%s" % (
        notice.milestone_days, _epoch(notice.sent), _epoch(notice.for_expiry))
    body = ".".join((key_id, _epoch(state.expires), notice_text, str(int(state.extensions)),
                     extras_tag(keyring, key_id, prefix, kind, resource_id, owner, exempt) or ""))
    mac = keyring.mac(key_id, _message(VERSION, "lease", prefix, kind, resource_id, body))
    return "%s.%s.%s" % (VERSION, body, mac)


def open_seal(keyring: Keyring, prefix: str, kind: str, resource_id: str, text: str | None) -> SealCheck:
    """Verify a stored seal for this resource. Total: any text gives a SealCheck."""
    if text is None:
        return SealCheck(problem="no seal")
    parts = str(text).strip().split(".")
    if len(parts) != 7 or parts[0] != VERSION:
        return SealCheck(problem="not a seal of this collection")
    key_id, expires, notice, extensions, tag, mac = parts[1:]
    if not (_KEY_ID.match(key_id) and _NUMBER.match(expires) and (notice == "n" or _NOTICE.match(notice))
            and _NUMBER.match(extensions) and not extensions.startswith("-") and _TAG.match(tag) and _MAC.match(mac)):
        return SealCheck(problem="not a seal of this collection")
    expected = keyring.mac(key_id, _message(VERSION, "lease", prefix, kind, resource_id, ".".join(parts[1:6])))
    if expected is None:
        return SealCheck(key_id=key_id, problem="sealed with key %s, which is not in the key file" % key_id)
    if not hmac.compare_digest(expected, mac):
        return SealCheck(key_id=key_id, problem="the seal does not match (edited, or copied from another resource)")
    try:
        found = _NOTICE.match(notice)
        state = SealedState(
            _moment(expires),
            None if found is None else Notice(int(found.group(1)), _moment(found.group(2)), _moment(found.group(3))),
            int(extensions))
    except (ValueError, OverflowError, OSError):
        return SealCheck(key_id=key_id, problem="the seal holds times out of range")
    return SealCheck(state, key_id, tag)


def extras_match(keyring: Keyring, check: SealCheck, prefix: str, kind: str, resource_id: str,
                 owner: str | None, exempt: str | None) -> bool:
    """Are the owner override and exemption the ones the seal was made with?"""
    if not check.valid or check.key_id is None:
        return False
    expected = extras_tag(keyring, check.key_id, prefix, kind, resource_id, owner, exempt)
    return expected is not None and hmac.compare_digest(expected, check.extras_tag or "")
