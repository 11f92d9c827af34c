# Copyright: osops.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The lease portal refuses bad links and forged posts before it ever talks to the cloud; its owner's page,
extensions of several resources at once and releases, against the in-memory cloud.

(The same against the local cloud, behind nginx with TLS, in a real browser: tests/integration/targets/lease_portal.)
"""

from __future__ import annotations

import json
import os
import sys
import time
from datetime import datetime, timedelta, timezone

import pytest

from ansible_collections.osops.lifecycle.plugins.module_utils._lease.token import sign
from ansible_collections.osops.lifecycle.tests.unit.plugins.module_utils.lease.memory_cloud import MemoryCloud

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


# --- the owner's page, extending several at once, releasing: against the in-memory cloud -------------------------

def lease_in(days):
    return {"lease_expires": (datetime.now(timezone.utc) + timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ")}


@pytest.fixture()
def estate(tmp_path):
    """ann has resources of every kind in two projects (one exempt, one in use); bob has one."""
    cloud = MemoryCloud()
    main = cloud.add_project("main", contact_email="main-team@example.org")
    side = cloud.add_project("side")
    ann = cloud.add_user("ann", "ann@example.org")
    bob = cloud.add_user("bob", "bob@example.org")
    ids = {
        "srv": cloud.add_server("srv <b>x</b>", main, ann, lease_in(10)),
        "vol": cloud.add_volume("vol", side, ann, lease_in(20)),
        "kept": cloud.add_server("kept", main, ann, dict(lease_in(-1), keep="yes")),
        "busy": cloud.add_volume("busy", main, ann, lease_in(40)),
        "bobs": cloud.add_server("bobs", main, bob, lease_in(10)),
        "img": cloud.add_image("img", main, lease_in(30)),   # no user: the project's contact owns it
    }
    ids["snap"] = cloud.add_snapshot("snap", ids["busy"], lease_in(40))
    seal_key = tmp_path / "seal.key"
    seal_key.write_text("t1 " + "s" * 40 + "\n")
    seal_key.chmod(0o600)
    audit = tmp_path / "audit.jsonl"
    app = create_app({"keys": [KEY], "state_dir": str(tmp_path), "secure_cookies": False, "audit_log": str(audit),
                      "policy": {"seal_key_file": str(seal_key), "max_extensions": 2, "exempt_metadata": {"keep": "yes"}}},
                     connect=lambda: cloud)
    app.config["WTF_CSRF_ENABLED"] = False  # the CSRF check itself: test_a_post_without_the_pages_csrf_token_is_refused
    return cloud, ids, app.test_client(), audit


def changes(cloud):
    return [call for call in cloud.calls if call[1] != "get"]


def audit_lines(audit, event):
    return [json.loads(line) for line in audit.read_text().splitlines() if json.loads(line)["event"] == event] \
        if audit.exists() else []


def section(page, resource_id):
    """The HTML of the page's section for one resource."""
    for part in page.split("<section")[1:]:
        if resource_id in part:
            return part.split("</section>")[0]
    return None


def test_the_owners_page_lists_everything_of_theirs_with_stage_and_extensions_left(estate):
    cloud, ids, client, _audit = estate
    response = client.get("/l/" + link(resources=(("server", ids["srv"]),)))
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    for short in ("srv", "vol", "kept", "busy", "snap"):
        assert section(page, ids[short]) is not None, short
    assert section(page, ids["bobs"]) is None and section(page, ids["img"]) is None  # bob's; main's contact's
    assert "in your mail" in section(page, ids["srv"]) and "in your mail" not in section(page, ids["vol"])
    assert "srv &lt;b&gt;x&lt;/b&gt;" in page  # names are escaped
    assert 'class="stage">exempt<' in section(page, ids["kept"])
    assert 'class="stage">in use<' in section(page, ids["busy"])
    assert 'class="left">2<' in section(page, ids["vol"])
    # release is never offered for exempt or in-use resources; extension not for exempt ones
    assert "Release" in section(page, ids["vol"]) and "Release" in section(page, ids["snap"])
    assert "Release" not in section(page, ids["kept"]) and "Release" not in section(page, ids["busy"])
    assert "<select" not in section(page, ids["kept"])
    assert not changes(cloud)  # a GET changes nothing


def test_several_resources_are_extended_in_one_post_each_counted_once(estate):
    cloud, ids, client, audit = estate
    token = link()
    before = {short: cloud.servers.get(ids[short]) or cloud.volumes.get(ids[short]) for short in ("srv", "vol")}
    old = {short: before[short].metadata["lease_expires"] for short in before}
    chosen = {"days:server:%s" % ids["srv"]: "14", "days:volume:%s" % ids["vol"]: "7",
              "days:volume:%s" % ids["busy"]: ""}
    response = client.post("/l/%s/extend" % token, data=chosen)
    assert response.status_code == 200
    assert cloud.servers[ids["srv"]].metadata["lease_extensions"] == "1"
    assert cloud.volumes[ids["vol"]].metadata["lease_extensions"] == "1"
    assert "lease_extensions" not in cloud.volumes[ids["busy"]].metadata  # "keep as it is"
    assert all(cloud.servers.get(ids[s], cloud.volumes.get(ids[s])).metadata["lease_expires"] > old[s] for s in old)
    assert {line["id"] for line in audit_lines(audit, "lease")} == {ids["srv"], ids["vol"]}
    # the same link again: a replay, nothing changes
    again = client.post("/l/%s/extend" % token, data={"days:server:%s" % ids["srv"]: "14"})
    assert again.status_code == 409 and "already used" in again.get_data(as_text=True)
    assert cloud.servers[ids["srv"]].metadata["lease_extensions"] == "1"


@pytest.mark.parametrize("form", [
    {"days:server:x": "5"},            # not a choice the page offers
    {"days:router:x": "7"},            # not a kind with a lease
    {"days:server:x": "seven"},
    {},                                # nothing chosen
])
def test_an_extension_form_the_page_does_not_make_is_refused(estate, form):
    cloud, _ids, client, _audit = estate
    assert client.post("/l/%s/extend" % link(), data=form).status_code == 400
    assert not cloud.calls


def test_someone_elses_resource_is_not_extended(estate):
    cloud, ids, client, _audit = estate
    response = client.post("/l/%s/extend" % link(), data={"days:server:%s" % ids["bobs"]: "7"})
    assert response.status_code == 403 and "Not yours" in response.get_data(as_text=True)
    assert "lease_extensions" not in cloud.servers[ids["bobs"]].metadata


def test_release_asks_first_then_deletes_with_the_reaper_and_audits(estate):
    cloud, ids, client, audit = estate
    token = link()
    confirm = client.get("/l/%s/release?kind=volume&id=%s" % (token, ids["vol"]))
    assert confirm.status_code == 200 and 'name="confirm"' in confirm.get_data(as_text=True)
    assert not changes(cloud)  # asking deletes nothing
    response = client.post("/l/%s/release" % token, data={"kind": "volume", "id": ids["vol"], "confirm": "yes"})
    assert response.status_code == 200 and "Released" in response.get_data(as_text=True)
    assert ids["vol"] not in cloud.volumes and cloud.changes("delete") == [ids["vol"]]
    released = [line for line in audit_lines(audit, "release") if line["outcome"] == "released"]
    assert len(released) == 1 and released[0]["owner"] == "ann@example.org" and released[0]["id"] == ids["vol"]
    assert [line["outcome"] for line in audit_lines(audit, "remove")] == ["started", "removed"]
    replay = client.post("/l/%s/release" % token, data={"kind": "volume", "id": ids["vol"], "confirm": "yes"})
    assert replay.status_code == 409 and "already used" in replay.get_data(as_text=True)


@pytest.mark.parametrize("short, kind, extra, status, reason", [
    ("kept", "server", {}, 409, "exempt"),
    ("busy", "volume", {}, 409, "in_use"),
    ("bobs", "server", {}, 403, "not_yours"),
    ("vol", "volume", {"confirm": ""}, 400, "not_confirmed"),
    ("vol", "volume", {"token": "expired"}, 410, "expired"),
    ("vol", "volume", {"token": "tampered"}, 403, "tampered"),
])
def test_a_refused_release_changes_nothing_and_is_audited(estate, short, kind, extra, status, reason):
    cloud, ids, client, audit = estate
    links = {"expired": link(issued=time.time() - 7200), "tampered": link(key="x" * 40)}
    token = links.get(extra.pop("token", None), link())
    response = client.post("/l/%s/release" % token, data=dict({"kind": kind, "id": ids[short], "confirm": "yes"}, **extra))
    assert response.status_code == status
    assert not changes(cloud)
    refused = audit_lines(audit, "release")
    assert [(line["outcome"], line["reason"], line["id"]) for line in refused] == [("refused", reason, ids[short])]
    if status in (403, 409) and reason != "tampered":
        # the page never offers it either
        assert client.get("/l/%s/release?kind=%s&id=%s" % (link(), kind, ids[short])).status_code == status


def test_a_release_refused_live_by_the_reaper_is_in_use(estate, monkeypatch):
    """Attached between the page and the POST: the reaper's live check (in_use_now) refuses it."""
    from ansible_collections.osops.lifecycle.plugins.module_utils._lease import kinds  # pylint: disable=import-outside-toplevel

    cloud, ids, client, audit = estate
    monkeypatch.setattr(kinds.Volumes, "in_use_now", lambda self, record: "still used by server s9 (any project)")
    response = client.post("/l/%s/release" % link(), data={"kind": "volume", "id": ids["vol"], "confirm": "yes"})
    assert response.status_code == 409 and ids["vol"] in cloud.volumes
    assert [line["reason"] for line in audit_lines(audit, "release")] == ["in_use"]


def test_releases_can_be_turned_off(tmp_path):
    seal_key = tmp_path / "seal.key"
    seal_key.write_text("t1 " + "s" * 40 + "\n")
    seal_key.chmod(0o600)
    app = create_app({"keys": [KEY], "state_dir": str(tmp_path), "secure_cookies": False, "release": False,
                      "policy": {"seal_key_file": str(seal_key)}}, connect=no_cloud)
    app.config["WTF_CSRF_ENABLED"] = False
    client = app.test_client()
    assert client.get("/l/%s/release?kind=volume&id=v" % link()).status_code == 403
    assert client.post("/l/%s/release" % link(), data={"kind": "volume", "id": "v", "confirm": "yes"}).status_code == 403
