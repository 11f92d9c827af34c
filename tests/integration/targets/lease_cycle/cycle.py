# SPDX-License-Identifier: GPL-3.0-or-later
"""The estate of the lease_cycle target on the local cloud, a clock that moves it through time, and the checks.

  cycle.py setup STATE          users, projects, servers and volumes with leases; writes STATE (JSON) and the
                                playbook's inventory and variables next to it
  cycle.py shift STATE DAYS     time passes: every lease time of this estate moves DAYS into the past
  cycle.py expect STATE STEP    assert what an owner and an operator would see after STEP (mails, leases, removals)
  cycle.py cleanup STATE

Time passes by rewriting the lease times on the resources (expiry and the time a notice was
sent, as a real day would age them); the collection's code runs unchanged with the real clock.
"""

from __future__ import annotations

import glob
import json
import os
import re
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone

import openstack

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sealing  # noqa: E402  (next to this file)

UTC = timezone.utc
ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")
HERE = os.path.dirname(os.path.abspath(__file__))
CONFIG = json.load(open(os.path.join(HERE, "..", "..", "integration_config.yml")))
MAILSINK = CONFIG["mailsink"]


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def admin():
    return openstack.connect(cloud="admin")


def as_user(conn, user: str, password: str, project: str):
    auth = dict(conn.config.config["auth"], username=user, password=password, project_name=project,
                user_domain_name="Default", project_domain_name="Default")
    auth.pop("project_id", None)
    auth.pop("user_domain_id", None)
    auth.pop("project_domain_id", None)
    return openstack.connect(auth=auth, region_name=conn.config.region_name, auth_type="password")


def setup(path: str) -> None:
    conn = admin()
    tag = "lc%s" % os.urandom(3).hex()
    password = tag + "-pw"
    state = {"tag": tag, "users": {}, "projects": {}, "resources": {}}
    projects = {"main": tag + "-contact@example.org", "side": None, "nocontact": None}
    for short, contact in projects.items():
        body = {"name": "%s-%s" % (tag, short), "domain_id": "default", "description": "lease_cycle target"}
        if contact:
            body["contact_email"] = contact
        project = conn.identity.post("/projects", json={"project": body}).json()["project"]
        state["projects"][short] = {"id": project["id"], "name": project["name"], "contact": contact}
    member = conn.identity.find_role("member")
    for short, address in (("ann", tag + "-ann@example.org"), ("rex", tag + "-rex@example.org"), ("nomail", None)):
        user = conn.identity.create_user(name="%s-%s" % (tag, short), password=password, domain_id="default",
                                         **({"email": address} if address else {}))
        state["users"][short] = {"id": user.id, "name": user.name, "email": address}
        for project in state["projects"].values():
            conn.identity.assign_project_role_to_user(project["id"], user.id, member.id)

    now = datetime.now(UTC)
    image = conn.image.find_image("localcloud-tiny")
    flavor = conn.compute.find_flavor("m1.nano")
    network = conn.network.find_network("localcloud-net")
    # name, kind, user, project, days until expiry, extra metadata
    estate = [
        ("s1 <i>x</i>", "server", "ann", "main", 13.5, {}),
        ("v4", "volume", "ann", "side", 13.5, {}),
        ("v1", "volume", "ann", "main", 60, {}),
        ("s2", "server", "rex", "main", 6.5, {}),
        ("v2", "volume", "nomail", "main", 0.5, {}),
        ("v3", "volume", "nomail", "nocontact", 0.5, {}),
        ("s3", "server", "ann", "main", -1, {"keep": "yes"}),
    ]
    servers = []
    for short, kind, user, project, days, extra in estate:
        owner = as_user(conn, state["users"][user]["name"], password, state["projects"][project]["name"])
        metadata = dict(extra, lease_expires=iso(now + timedelta(days=days)))
        name = "%s-%s" % (tag, short)
        if kind == "server":
            made = owner.compute.create_server(name=name, image_id=image.id, flavor_id=flavor.id,
                                               networks=[{"uuid": network.id}], metadata=metadata)
            servers.append(made)
        else:
            made = owner.block_storage.create_volume(name=name, size=1, metadata=metadata)
            owner.block_storage.wait_for_status(made, "available", failures=["error"], wait=120, interval=1)
        state["resources"][short.split()[0]] = {
            "id": made.id, "name": name, "kind": kind, "user": user, "project": project}
    for server in servers:
        conn.compute.wait_for_server(server, wait=240, interval=2)

    with open(path, "w") as handle:
        json.dump(state, handle, indent=1)
    folder = os.path.dirname(os.path.abspath(path))
    # two inventory hosts, as two clouds: one mail per owner must still cover both
    with open(os.path.join(folder, "inventory.yml"), "w") as handle:
        json.dump({"clouds": {"hosts": {
            "lab-a": {"lease_projects": [state["projects"]["main"]["name"]]},
            "lab-b": {"lease_projects": [state["projects"]["side"]["name"], state["projects"]["nocontact"]["name"]]},
        }}}, handle, indent=1)
    with open(os.path.join(folder, "cycle-vars.yml"), "w") as handle:
        json.dump({
            "lease_hosts": "clouds",
            "lease_cloud": "admin",
            "lease_policy": {"lifetime_days": 30, "milestones_days": [14, 7, 1], "grace_days": 1,
                             "max_lease_days": 90, "max_extensions": 2, "exempt_metadata": {"keep": "yes"}},
            "lease_smtp_host": "127.0.0.1", "lease_smtp_port": CONFIG["mailsink_port"], "lease_smtp_secure": "never",
            "lease_mail_from": "Cloud leases <leases@example.org>",
            "lease_mail_cloud_name": "Lab cloud",
            "lease_mail_awx_template_url": "https://awx.example.org/#/templates/job_template/42",
            "lease_report_dir": os.path.join(folder, "reports"),
            "lease_seal_key_file": CONFIG["lease_seal_key_file"],
            "lease_max_remove_percent": 100,
        }, handle, indent=1)
    print("estate %s ready" % tag)


def load(path: str) -> dict:
    with open(path) as handle:
        return json.load(handle)


def metadata_of(conn, resource: dict) -> dict | None:
    """A server's, volume's or snapshot's metadata, or None once it is gone."""
    try:
        if resource["kind"] == "server":
            return dict(conn.compute.get_server_metadata(resource["id"]).metadata or {})
        if resource["kind"] == "snapshot":
            return dict(conn.block_storage.get_snapshot(resource["id"]).metadata or {})
        return dict(conn.block_storage.get_volume(resource["id"]).metadata or {})
    except openstack.exceptions.NotFoundException:
        return None


def exists(conn, resource: dict) -> bool:
    if resource["kind"] == "server":
        server = conn.compute.find_server(resource["id"], all_projects=True)
        return server is not None and server.status != "DELETED"
    if resource["kind"] == "snapshot":
        return conn.block_storage.find_snapshot(resource["id"], all_projects=True) is not None
    return conn.block_storage.find_volume(resource["id"], all_projects=True) is not None


def shift(path: str, days: float) -> None:
    """Age every lease time of the estate by ``days``."""
    conn = admin()
    delta = timedelta(days=days)

    ring = sealing.keyring(CONFIG["lease_seal_key_file"])
    for resource in load(path)["resources"].values():
        metadata = metadata_of(conn, resource)
        if metadata is None:
            continue
        # sealed leases are aged through their seal, as only an operator with the key can
        changed = sealing.aged(ring, resource["kind"], resource["id"], metadata, delta)
        if resource["kind"] == "server":
            conn.compute.set_server_metadata(resource["id"], **changed)
        else:
            conn.block_storage.set_volume_metadata(resource["id"], **changed)
    print("estate is %s days older" % days)


def mails() -> list[dict]:
    return json.loads(subprocess.run(MAILSINK + ["dump"], check=True, capture_output=True, text=True).stdout)


def new_mails(path: str) -> list[dict]:
    """Mails received since the last check (each check moves the mark)."""
    mark_file = path + ".mails"
    seen = set(load(mark_file)) if os.path.exists(mark_file) else set()
    received = mails()
    with open(mark_file, "w") as handle:
        json.dump([m["file"] for m in received], handle)
    return [m for m in received if m["file"] not in seen]


def latest_report(path: str) -> dict:
    reports = sorted(glob.glob(os.path.join(os.path.dirname(os.path.abspath(path)), "reports", "lease-report-*.json")),
                     key=os.path.getmtime)
    assert reports, "no report written"
    with open(reports[-1]) as handle:
        return json.load(handle)


class Check:
    def __init__(self, path: str):
        self.state = load(path)
        self.conn = admin()
        self.path = path
        self.mails = new_mails(path)
        self.failures: list[str] = []

    def that(self, condition: bool, what: str) -> None:
        print(("ok    " if condition else "FAIL  ") + what)
        if not condition:
            self.failures.append(what)

    def res(self, short: str) -> dict:
        return self.state["resources"][short]

    def address(self, who: str) -> str:
        if who == "contact":
            return self.state["projects"]["main"]["contact"]
        return self.state["users"][who]["email"]

    def mails_to(self, who: str, kind: str | None = None) -> list[dict]:
        return [m for m in self.mails if self.address(who) in m["envelope_to"]
                and (kind is None or m["headers"].get("X-Osops-Lease") == kind)]

    def notice(self, short: str) -> str | None:
        return (metadata_of(self.conn, self.res(short)) or {}).get("lease_notice")

    def mail_lists(self, mail: dict, *shorts: str) -> bool:
        body = mail["html"] or mail["text"] or ""
        return all(self.res(s)["id"] in body for s in shorts)

    def expect_mails(self, expected: dict) -> None:
        """expected: who -> (kind, resources listed); nobody else gets anything."""
        self.that(len(self.mails) == len(expected), "%d mails received (got %d: %s)" % (
            len(expected), len(self.mails), [(m["envelope_to"], m["subject"]) for m in self.mails]))
        for who, (kind, shorts) in expected.items():
            got = self.mails_to(who, kind)
            self.that(len(got) == 1, "one %s mail to %s" % (kind, who))
            if got:
                self.that(self.mail_lists(got[0], *shorts), "%s's mail lists %s" % (who, ", ".join(shorts)))
                others = [s for s in self.state["resources"] if s not in shorts and self.res(s)["id"] in (
                    got[0]["html"] or got[0]["text"] or "")]
                self.that(not others, "%s's mail lists nothing else (found %s)" % (who, others))

    def present(self, *shorts: str) -> None:
        for short in shorts:
            self.that(exists(self.conn, self.res(short)), "%s still exists" % short)

    def gone(self, *shorts: str) -> None:
        for short in shorts:
            self.that(not exists(self.conn, self.res(short)), "%s was removed" % short)

    def notices(self, expected: dict) -> None:
        for short, prefix in expected.items():
            notice = self.notice(short)
            if prefix is None:
                self.that(notice is None, "no notice recorded on %s (found %r)" % (short, notice))
            else:
                self.that(bool(notice) and notice.startswith(prefix), "notice %r on %s (found %r)" % (prefix, short, notice))


def expect(path: str, step: str) -> int:
    c = Check(path)
    report = latest_report(path) if step != "extend" else None
    if step == "smtp-down":
        c.expect_mails({})
        c.notices({"s1": None, "v4": None, "s2": None, "v2": None})
        c.present("s1", "v4", "v1", "s2", "v2", "v3", "s3")
        failed = {f["owner"] for f in report["mail"]["expiry"]["failed"]}
        c.that(failed == {c.address("ann"), c.address("rex"), c.address("contact")},
               "the report names every owner not told (%s)" % sorted(failed))
    elif step == "first":
        c.expect_mails({"ann": ("expiry", ["s1", "v4"]), "contact": ("expiry", ["v2"])})
        ann = c.mails_to("ann")[0]
        c.that("1 resource" not in ann["subject"] and "2 resources expire in 14 days" in ann["subject"],
               "ann's subject counts both clouds' resources (%r)" % ann["subject"])
        c.that("openstack server set --property lease_extend=30 %s" % c.res("s1")["id"] in ann["html"],
               "ann's mail gives the extend command for s1")
        c.that("openstack volume set --property lease_extend=30 %s" % c.res("v4")["id"] in ann["html"],
               "ann's mail gives the extend command for v4")
        c.that("https://awx.example.org/#/templates/job_template/42" in ann["html"], "ann's mail links the AWX template")
        c.that("&lt;i&gt;x&lt;/i&gt;" in ann["html"] and "<i>x</i>" not in ann["html"],
               "a resource name is escaped in the HTML mail")
        c.that(c.state["projects"]["main"]["name"] in ann["html"] and "RegionOne" in ann["html"],
               "ann's mail names project and region")
        c.notices({"s1": "14d sent", "v4": "14d sent", "v2": "1d sent", "s2": None, "v3": None, "v1": None})
        c.present("s1", "v4", "v1", "s2", "v2", "v3", "s3")
        c.that([f["owner"] for f in report["mail"]["expiry"]["failed"]] == [c.address("rex")],
               "the report names rex, whose address was refused")
        c.that({u["id"] for u in report["mail"]["unowned"]} == {c.res("v3")["id"]},
               "the report lists v3 as nobody's")
        html = report_html(path)
        c.that("Removals (0)" in html and "rex" in html, "the HTML report shows no removals and the refused owner")
    elif step == "rerun":
        c.expect_mails({})
        c.notices({"s1": "14d sent", "v2": "1d sent", "s2": None})
    elif step == "preview":
        c.expect_mails({})
        would = {r["id"] for r in report["removals"] if r["outcome"] == "would_remove"}
        c.that(would == {c.res("v2")["id"]}, "a week ahead, only v2 would go (%s)" % would)
        c.present("s1", "v4", "v1", "s2", "v2", "v3", "s3")
    elif step == "dry-reap":
        c.expect_mails({})
        c.present("s1", "v4", "v1", "s2", "v2", "v3", "s3")
        would = {r["id"] for r in report["removals"] if r["outcome"] == "would_remove"}
        c.that(would == {c.res("v2")["id"]}, "the dry run's report lists v2 as would_remove (%s)" % would)
    elif step == "week1":
        c.expect_mails({"ann": ("expiry", ["s1", "v4"]), "rex": ("expiry", ["s2"]), "contact": ("removal", ["v2"])})
        c.notices({"s1": "7d sent", "v4": "7d sent", "s2": "1d sent"})
        c.gone("v2")
        c.present("s1", "v4", "v1", "s2", "v3", "s3")
        c.that(report["totals"]["removed"] == 1, "the report counts one removal")
    elif step == "week2":
        c.expect_mails({"ann": ("expiry", ["s1", "v4"]), "rex": ("removal", ["s2"])})
        c.notices({"s1": "1d sent", "v4": "1d sent"})
        c.gone("v2", "s2")
        c.present("s1", "v4", "v1", "v3", "s3")
    elif step == "expired":
        c.expect_mails({"ann": ("removal", ["s1", "v4"])})
        c.gone("s1", "v4")
        c.present("v1", "v3", "s3")
    elif step == "final":
        c.expect_mails({})
        c.present("v1", "v3", "s3")
        c.that(report["totals"]["removed"] == 0, "a re-run removes nothing")
    elif step == "extend":
        expires = (metadata_of(c.conn, c.res("v1")) or {}).get("lease_expires", "")
        extended = (metadata_of(c.conn, c.res("v1")) or {}).get("lease_extensions")
        c.that(extended == "1", "ann's own extension of v1 is counted (lease_extensions=%r)" % extended)
        c.that(bool(expires), "v1 still has its lease")
    else:
        raise SystemExit("unknown step %s" % step)
    if c.failures:
        print("%d checks failed after step %s" % (len(c.failures), step))
        return 1
    return 0


def report_html(path: str) -> str:
    reports = sorted(glob.glob(os.path.join(os.path.dirname(os.path.abspath(path)), "reports", "lease-report-*.html")),
                     key=os.path.getmtime)
    with open(reports[-1]) as handle:
        return handle.read()


def cleanup(path: str) -> None:
    if not os.path.exists(path):
        return
    conn = admin()
    state = load(path)
    for resource in state["resources"].values():
        try:
            if resource["kind"] == "server":
                conn.compute.delete_server(resource["id"], ignore_missing=True)
        except openstack.exceptions.SDKException as error:
            print("cleanup: %s" % error)
    for resource in state["resources"].values():
        if resource["kind"] == "server":
            try:
                conn.compute.wait_for_delete(conn.compute.get_server(resource["id"]), wait=120, interval=1)
            except openstack.exceptions.SDKException:
                pass
    for resource in state["resources"].values():
        if resource["kind"] == "volume":
            conn.block_storage.delete_volume(resource["id"], ignore_missing=True)
    time.sleep(2)
    for user in state["users"].values():
        conn.identity.delete_user(user["id"], ignore_missing=True)
    for project in state["projects"].values():
        conn.identity.delete_project(project["id"], ignore_missing=True)


def main() -> int:
    command, path = sys.argv[1], sys.argv[2]
    if command == "setup":
        setup(path)
    elif command == "shift":
        shift(path, float(sys.argv[3]))
    elif command == "expect":
        return expect(path, sys.argv[3])
    elif command == "cleanup":
        cleanup(path)
    else:
        raise SystemExit(__doc__)
    return 0


if __name__ == "__main__":
    sys.exit(main())
