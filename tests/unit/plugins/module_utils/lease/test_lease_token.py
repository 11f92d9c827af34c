# Copyright: osops.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Signed links for the lease portal: only the key's holder makes them, nobody changes them, they expire."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given, strategies as st

from ansible_collections.osops.lifecycle.plugins.module_utils._lease.token import TokenError, sign, verify

KEY = b"k" * 32
OTHER = b"o" * 32
NOW = 1_795_000_000
RESOURCES = [("server", "7c3e"), ("volume", "9f00")]


def test_a_signed_link_names_owner_and_exactly_the_mails_resources():
    link = verify(KEY, sign(KEY, "Ann@Example.org", RESOURCES, NOW, 3600), NOW + 10)
    assert link.owner == "ann@example.org"
    assert link.covers("server", "7c3e") and link.covers("volume", "9f00")
    assert not link.covers("server", "9f00") and not link.covers("image", "7c3e")
    assert link.expires == NOW + 3600


def test_expired_link_is_refused():
    token = sign(KEY, "ann@example.org", RESOURCES, NOW, 3600)
    with pytest.raises(TokenError) as refused:
        verify(KEY, token, NOW + 3600)
    assert refused.value.reason == "expired"


def test_wrong_key_is_refused_and_rotation_keeps_old_links_working():
    token = sign(OTHER, "ann@example.org", RESOURCES, NOW, 3600)
    with pytest.raises(TokenError) as refused:
        verify(KEY, token, NOW)
    assert refused.value.reason == "tampered"
    assert verify([KEY, OTHER], token, NOW).owner == "ann@example.org"


def forge(token: str, change) -> str:
    body, sig = token.split(".")
    payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    change(payload)
    new_body = base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=").decode()
    return new_body + "." + sig


@pytest.mark.parametrize("change", [
    lambda p: p.update(o="mallory@example.org"),
    lambda p: p["r"].append(["server", "someone-elses"]),
    lambda p: p.update(exp=p["exp"] + 86400 * 365),
])
def test_any_change_to_the_payload_is_refused(change):
    token = forge(sign(KEY, "ann@example.org", RESOURCES, NOW, 3600), change)
    with pytest.raises(TokenError) as refused:
        verify(KEY, token, NOW)
    assert refused.value.reason == "tampered"


@given(st.text(max_size=200))
def test_garbage_never_passes_and_never_crashes(text):
    with pytest.raises(TokenError):
        verify(KEY, text, NOW)


@given(position=st.integers(min_value=0, max_value=400), flip=st.integers(min_value=1, max_value=255))
def test_flipping_any_byte_is_refused(position, flip):
    token = sign(KEY, "ann@example.org", RESOURCES, NOW, 3600)
    raw = bytearray(token.encode())
    index = position % len(raw)
    raw[index] = (raw[index] ^ flip) % 128 or 1
    changed = raw.decode("ascii", "replace")
    if changed == token:
        return
    with pytest.raises(TokenError):
        verify(KEY, changed, NOW)


def test_each_link_has_its_own_nonce_for_replay_protection():
    first = verify(KEY, sign(KEY, "ann@example.org", RESOURCES, NOW, 60), NOW)
    second = verify(KEY, sign(KEY, "ann@example.org", RESOURCES, NOW, 60), NOW)
    assert first.nonce != second.nonce


def test_short_keys_and_empty_links_are_errors():
    with pytest.raises(ValueError):
        sign(b"short", "ann@example.org", RESOURCES, NOW, 60)
    with pytest.raises(ValueError):
        sign(KEY, "ann@example.org", [], NOW, 60)
    with pytest.raises(ValueError):
        sign(KEY, "ann@example.org", [("network", "x")], NOW, 60)
