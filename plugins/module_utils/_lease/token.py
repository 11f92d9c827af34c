# Copyright: osops.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Signed, expiring links from an owner's mail to the lease portal (pure, stdlib only).

A token names the owner and exactly the resources one mail covered, when it was
issued and when it stops being valid, plus a random nonce the portal uses to
refuse a second use. It is ``base64url(payload) "." base64url(HMAC-SHA256)``
with a key that only the automation and the portal know. Anyone can read a
token; nobody without the key can make or change one.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
from dataclasses import dataclass
from typing import Iterable, Sequence

from .kind_table import KIND_ORDER

VERSION = 1
MIN_KEY_BYTES = 32
KINDS = KIND_ORDER  # the kinds a link may name


class TokenError(ValueError):
    """A link the portal must refuse; ``reason`` is what the refusal page says."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__("%s%s" % (reason, ": " + detail if detail else ""))
        self.reason = reason


@dataclass(frozen=True)
class LinkToken:
    owner: str
    resources: tuple[tuple[str, str], ...]   # (kind, id) the mail covered
    issued: int                              # Unix seconds
    expires: int
    nonce: str

    def covers(self, kind: str, resource_id: str) -> bool:
        return (kind, resource_id) in self.resources


def check_key(key: bytes | str) -> bytes:
    raw = key.encode() if isinstance(key, str) else bytes(key)
    if len(raw) < MIN_KEY_BYTES:
        raise ValueError("the link signing key must be at least %d bytes" % MIN_KEY_BYTES)
    return raw


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(key: bytes, body: str) -> bytes:
    return hmac.new(key, body.encode("ascii"), hashlib.sha256).digest()


def sign(key: bytes | str, owner: str, resources: Iterable[Sequence[str]], now: int, ttl_seconds: int,
         nonce: str | None = None) -> str:
    """A token for ``owner`` and the (kind, id) pairs of one mail, valid ``ttl_seconds`` from ``now``."""
    pairs = sorted({(str(kind), str(resource_id)) for kind, resource_id in resources})
    if not pairs:
        raise ValueError("a link must cover at least one resource")
    unknown = sorted({kind for kind, _id in pairs} - set(KINDS))
    if unknown:
        raise ValueError("unknown resource kind(s) %s" % ", ".join(unknown))
    if ttl_seconds <= 0:
        raise ValueError("a link must be valid for some time")
    payload = {"v": VERSION, "o": owner.strip().lower(), "r": [list(p) for p in pairs], "iat": int(now),
               "exp": int(now) + int(ttl_seconds), "n": nonce or _b64(os.urandom(12))}
    body = _b64(json.dumps(payload, separators=(",", ":"), sort_keys=True).encode())
    return body + "." + _b64(_mac(check_key(key), body))


def verify(keys: bytes | str | Sequence[bytes | str], token: str, now: int) -> LinkToken:
    """The token's content if one of ``keys`` signed it and it has not expired; else ``TokenError``.

    Several keys allow rotation: links signed with the previous key keep working
    until they expire.
    """
    key_list = [keys] if isinstance(keys, (bytes, str)) else list(keys)
    body, dot, signature = str(token or "").strip().partition(".")
    if not dot or not body or not signature:
        raise TokenError("malformed", "not a link token")
    try:
        given = _unb64(signature)
    except (binascii.Error, ValueError):
        raise TokenError("malformed", "bad signature encoding") from None
    if _b64(given) != signature:
        # base64's spare bits: another spelling of the same signature is not the link that was sent
        raise TokenError("tampered", "non-canonical signature")
    if not any(hmac.compare_digest(_mac(check_key(key), body), given) for key in key_list):
        raise TokenError("tampered", "the signature does not match")
    try:
        payload = json.loads(_unb64(body))
        if payload.get("v") != VERSION:
            raise TokenError("malformed", "unknown token version %r" % payload.get("v"))
        link = LinkToken(owner=str(payload["o"]), resources=tuple((str(k), str(i)) for k, i in payload["r"]),
                         issued=int(payload["iat"]), expires=int(payload["exp"]), nonce=str(payload["n"]))
    except TokenError:
        raise
    except (ValueError, KeyError, TypeError, binascii.Error) as error:
        raise TokenError("malformed", str(error)) from None
    if now >= link.expires:
        raise TokenError("expired", "the link expired")
    return link
