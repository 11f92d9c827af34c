# Copyright: osops.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The lease portal refuses bad links and forged posts before it ever talks to the cloud.

(Extending for real, and replays, are tested end to end against the local cloud in a
real browser: tests/integration/targets/lease_portal.)
"""

from __future__ import annotations

import os
import sys
import time

import pytest

from ansible_collections.osops.lifecycle.plugins.module_utils._lease.token import sign

pytest.importorskip("flask_wtf", reason="the portal's dependencies are in hack/requirements-dev.txt")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), *[os.pardir] * 4, "roles", "lease_portal", "files"))
from osops_lease_portal import create_app  # noqa: E402  pylint: disable=wrong-import-position

KEY = "k" * 40


def no_cloud():
    raise AssertionError("a refused request must not reach the cloud")


@pytest.fixture()
def client(tmp_path):
    seal_key = tmp_path / "seal.key"
    seal_key.write_text("t1 " + "s" * 40 + "\n")
    seal_key.chmod(0o600)
    app = create_app({"keys": [KEY], "state_dir": str(tmp_path), "secure_cookies": False,
                      "policy": {"seal_key_file": str(seal_key)}}, connect=no_cloud)
    return app.test_client()


def link(owner="ann@example.org", resources=(("server", "7c3e"),), ttl=3600, key=KEY, issued=None):
    return sign(key, owner, resources, int(issued if issued is not None else time.time()), ttl)


@pytest.mark.parametrize("token, status, says", [
    ("not-a-token", 403, "This is not a valid link"),
    (link(key="x" * 40), 403, "This link was changed"),
    (link(issued=time.time() - 7200), 410, "This link has expired"),
])
def test_bad_links_get_a_refusal_page(client, token, status, says):
    response = client.get("/l/" + token)
    assert response.status_code == status
    assert says in response.get_data(as_text=True)


def test_a_tampered_link_is_refused(client):
    token = link()
    body, signature = token.split(".")
    response = client.get("/l/%s.%s" % (body[:-2] + ("AA" if body[-2:] != "AA" else "BB"), signature))
    assert response.status_code == 403


def test_a_post_without_the_pages_csrf_token_is_refused(client):
    response = client.post("/l/%s/extend" % link(), data={"kind": "server", "id": "7c3e", "days": "30"})
    assert response.status_code == 400
    assert "did not work" in response.get_data(as_text=True)


def test_pages_are_hardened(client):
    response = client.get("/l/not-a-token")
    assert response.headers["Referrer-Policy"] == "same-origin"  # the token never leaves as a referrer
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert "script-src" not in response.headers["Content-Security-Policy"]  # default-src 'none': no scripts at all
    assert response.headers["Cache-Control"] == "no-store"


def test_a_link_extends_each_resource_once_and_a_failed_try_does_not_use_it_up(tmp_path):
    from osops_lease_portal import UsedLinks  # pylint: disable=import-outside-toplevel

    used = UsedLinks(str(tmp_path / "used.sqlite"))
    later = int(time.time()) + 3600
    assert used.claim("nonce-1", "server", "7c3e", later)
    assert not used.claim("nonce-1", "server", "7c3e", later)      # the replay
    assert used.claim("nonce-1", "volume", "9f00", later)          # another resource of the same mail
    assert used.claim("nonce-2", "server", "7c3e", later)          # the next mail's link
    used.release("nonce-1", "volume", "9f00")                      # the cloud refused: try again later
    assert used.claim("nonce-1", "volume", "9f00", later)
    assert used.used("nonce-1") == {("server", "7c3e"), ("volume", "9f00")}
    # a fresh process (another gunicorn worker) sees the same record
    assert not UsedLinks(str(tmp_path / "used.sqlite")).claim("nonce-1", "server", "7c3e", later)
