# Copyright: osops.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The lease role's mail and report templates: what an owner and an operator read, and no injected markup."""

from __future__ import annotations

import os
import re
import time

import jinja2
import pytest
import yaml
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template
from ansible.plugins.filter.core import FilterModule as CoreFilters
from ansible.plugins.test.core import TestModule as CoreTests

from ansible_collections.osops.lifecycle.plugins.filter.lease_portal_link import lease_portal_link
from ansible_collections.osops.lifecycle.plugins.module_utils._lease.report import build_report, removal_digest
from ansible_collections.osops.lifecycle.plugins.module_utils._lease.token import verify

ROLE = os.path.join(os.path.dirname(__file__), *[os.pardir] * 4, "roles", "lease")
EVIL = '<script>alert("x")</script>'


def role_vars() -> dict:
    with open(os.path.join(ROLE, "vars", "main.yml")) as handle:
        return yaml.safe_load(handle)


def render(name: str, **context) -> str:
    with open(os.path.join(ROLE, "defaults", "main.yml")) as handle:
        defaults = yaml.safe_load(handle)
    # the role's defaults that are Jinja themselves are not needed by the templates
    defaults = {k: v for k, v in defaults.items() if not (isinstance(v, str) and "{{" in v)}
    defaults.update(role_vars())
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(os.path.join(ROLE, "templates")),
                             undefined=jinja2.StrictUndefined, trim_blocks=True)
    env.filters["bool"] = CoreFilters().filters()["bool"]  # the Ansible filters and test the templates use
    env.filters["dict2items"] = CoreFilters().filters()["dict2items"]
    env.tests["search"] = CoreTests().tests()["search"]
    env.filters["osops.lifecycle.lease_portal_link"] = lease_portal_link
    return env.get_template(name).render(**dict(defaults, **context))


def owner_entry() -> dict:
    return {"owner": "ann@example.org", "milestone_days": 7, "resources": [
        {"kind": "server", "id": "7c3e-id", "name": EVIL, "project": "alpha", "region": "RegionOne",
         "expires": "2026-11-28T12:00:00Z", "days_left": 7, "milestone_days": 7, "host": "lab",
         "extend_command": "openstack server set --property lease_extend=30 7c3e-id", "action": "delete",
         "action_on": "2026-11-28T12:00:00Z", "last_notice_on": "2026-11-27T12:00:00Z", "overdue": False},
        {"kind": "snapshot", "id": "9f00-id", "name": "", "project": "beta", "region": "RegionTwo",
         "expires": "2026-11-22T00:00:00Z", "days_left": 1, "milestone_days": 1, "host": "lab",
         "extend_command": "openstack volume snapshot set --property lease_extend=30 9f00-id", "action": "delete",
         "action_on": "2026-11-22T06:00:00Z", "last_notice_on": "2026-11-21T06:00:00Z", "overdue": False},
    ]}


@pytest.mark.parametrize("template", ["expiry_mail.html.j2", "expiry_mail.txt.j2"])
def test_expiry_mail_lists_every_resource_with_its_extend_command(template):
    body = render(template, item=owner_entry(), lease_policy={"max_lease_days": 60, "max_extensions": 2},
                  lease_mail_awx_template_url="https://awx.example.org/t/42")
    for text in ("7c3e-id", "9f00-id", "alpha", "beta", "RegionTwo", "2026-11-28T12:00:00Z", "in 7 days", "in 1 day",
                 "openstack server set --property lease_extend=30 7c3e-id",
                 "openstack volume snapshot set --property lease_extend=30 9f00-id",
                 "https://awx.example.org/t/42", "60 days", "2 times"):
        assert text in body, text


def entry_of(*resources) -> dict:
    return {"owner": "ann@example.org", "milestone_days": 1, "resources": list(resources)}


def resource(kind, rid, action, expires, days_left, action_on, last_notice_on, overdue=False) -> dict:
    return {"kind": kind, "id": rid, "name": rid, "project": "alpha", "region": "RegionOne", "expires": expires,
            "days_left": days_left, "milestone_days": 1 if overdue else 14, "host": "lab", "action": action,
            "extend_command": "openstack %s set --property lease_extend=30 %s" % (kind, rid), "action_on": action_on,
            "last_notice_on": last_notice_on, "overdue": overdue}


def flat(body: str) -> str:
    """The words of a mail, without markup (HTML) and line breaks."""
    return " ".join(re.sub(r"<[^>]*>", " ", body).split())


IMAGE = resource("image", "golden", "deactivate", "2026-12-05T06:00:00Z", 14, "2026-12-05T06:00:00Z", "2026-12-04T06:00:00Z")
VOLUME = resource("volume", "data", "delete", "2026-12-05T06:00:00Z", 14, "2026-12-05T06:00:00Z", "2026-12-04T06:00:00Z")
# expired yesterday, never told: this mail is the last notice, and the server is stopped a grace later
OVERDUE = resource("server", "web-1", "stop", "2026-11-20T06:00:00Z", -1, "2026-11-22T06:00:00Z", "2026-11-21T06:00:00Z",
                   overdue=True)
SHELVED_LATER = dict(OVERDUE, id="old", name="old", action="shelve")
MAIL_CASES = {
    "an image is deactivated, not removed": ([IMAGE], [
        "1 of your OpenStack resources is about to expire", "will be deactivated on or after 2026-12-05T06:00:00Z",
        "its data stays; an operator can reactivate it"], ["removed", "deleted"]),
    "an overdue server never told gets its real date": ([OVERDUE], [
        "1 of your OpenStack resources has expired",
        "was due on 2026-11-20T06:00:00Z; will be stopped on or after 2026-11-22T06:00:00Z",
        "last notice before that: 2026-11-21T06:00:00Z (this mail)"], ["today", "removed"]),
    "a notice in time gives the action date and the last notice": ([SHELVED_LATER, VOLUME], [
        "2 of your OpenStack resources are about to expire or have expired", "in 14 days",
        "will be deleted on or after 2026-12-05T06:00:00Z", "last notice before that: 2026-12-04T06:00:00Z",
        "will be shelved on or after 2026-11-22T06:00:00Z"], ["was due on 2026-12-05", "reactivate", "removed"]),
}


@pytest.mark.parametrize("template", ["expiry_mail.html.j2", "expiry_mail.txt.j2"])
@pytest.mark.parametrize("case", sorted(MAIL_CASES))
def test_the_expiry_mail_says_what_is_done_and_when(template, case):
    resources, said, unsaid = MAIL_CASES[case]
    body = flat(render(template, item=entry_of(*resources), lease_policy={}))
    for text in said:
        assert text in body, text
    for text in unsaid:
        assert text not in body, text


def test_html_mail_escapes_names_chosen_by_users():
    body = render("expiry_mail.html.j2", item=owner_entry(), lease_policy={})
    assert EVIL not in body
    assert "&lt;script&gt;" in body


def test_the_extend_command_can_be_left_out():
    body = render("expiry_mail.txt.j2", item=owner_entry(), lease_policy={}, lease_mail_extend_command=False)
    assert "lease_extend" not in body


def test_removal_mail_says_what_happened():
    results = {"lab": {"region": "RegionOne", "decisions": [], "removed": [
        {"kind": "server", "id": "7c3e-id", "name": EVIL, "project_id": "a1", "project_name": "alpha",
         "owner": "ann@example.org", "action": "shelve", "outcome": "removed", "expires": "2026-11-20T00:00:00Z"}]}}
    entry = removal_digest(results)["owners"][0]
    html = render("removal_mail.html.j2", item=entry)
    text = render("removal_mail.txt.j2", item=entry)
    assert "shelved" in html and "shelved" in text and "RegionOne" in text
    assert EVIL not in html
    for body in (flat(html), flat(text)):
        assert "they were" not in body and "it was shelved" in body and "removed" not in body
        assert "can still be restored" in body and "cannot be restored" not in body


def test_removal_mail_says_per_resource_what_was_done():
    removed = [{"kind": kind, "id": rid, "name": rid, "project_id": "a1", "project_name": "alpha", "owner": "ann@example.org",
                "action": action, "outcome": "removed", "done": done, "expires": "2026-11-20T00:00:00Z"}
               for kind, rid, action, done in (("image", "golden", "deactivate", "deactivated"),
                                               ("volume", "data", "delete", "deleted"))]
    entry = removal_digest({"lab": {"region": "RegionOne", "decisions": [], "removed": removed}})["owners"][0]
    for template in ("removal_mail.html.j2", "removal_mail.txt.j2"):
        body = flat(render(template, item=entry))
        assert "they were deleted or deactivated" in body
        assert "removed" not in body
        assert "deactivated images can still be restored" in body and "What was deleted cannot be restored" in body


def test_report_page_shows_removals_failures_and_escapes():
    decisions = [{"kind": "server", "id": "7c3e-id", "name": EVIL, "project_name": "alpha", "status": "expired",
                  "expires": "2026-11-01T00:00:00Z", "owner": "ann@example.org", "reason": "expired"}]
    removed = [{"kind": "server", "id": "7c3e-id", "name": EVIL, "project_id": "a1", "project_name": "alpha",
                "owner": "ann@example.org", "action": "delete", "outcome": "failed", "error": "409 Conflict <b>",
                "expires": "2026-11-01T00:00:00Z"}]
    report = build_report({"lab": {"region": "RegionOne", "decisions": decisions, "removed": removed}, "dead": None},
                          "2026-11-21T00:00:00Z",
                          mail={"expiry": {"delivered": [], "failed": [{"owner": "rex@example.org", "reason": "550"}],
                                           "not_sent": []}, "removal": None, "unowned": []})
    page = render("report.html.j2", lease_report=report)
    assert "Removals (1)" in page and "Needs attention" in page
    assert "dead: no scan" in page and "rex@example.org" in page
    assert EVIL not in page and "409 Conflict &lt;b&gt;" in page
    assert "<script" not in page


@pytest.mark.parametrize("template", ["expiry_mail.html.j2", "expiry_mail.txt.j2"])
def test_with_a_portal_the_mail_links_to_exactly_its_resources_instead_of_commands(template):
    key = "s" * 40
    body = render(template, item=owner_entry(), lease_policy={}, lease_mail_portal_url="https://leases.example.org/",
                  lease_mail_portal_key=key)
    assert "openstack server set" not in body
    token = body.split("https://leases.example.org/l/", 1)[1].split('"')[0].split()[0]
    link = verify(key, token, int(time.time()))
    assert link.owner == "ann@example.org"
    assert set(link.resources) == {("server", "7c3e-id"), ("snapshot", "9f00-id")}
    assert key not in body


def subject(tasks_file: str, entry: dict) -> str:
    """The subject of the mail task in ``tasks_file``, as Ansible renders it for one owner's entry."""
    with open(os.path.join(ROLE, "tasks", tasks_file)) as handle:
        tasks = yaml.safe_load(handle)
    mail = next(task["community.general.mail"] for task in tasks if "community.general.mail" in task)
    templar = Templar(loader=DataLoader(), variables=dict(role_vars(), item=entry, lease_mail_subject_prefix="[Lab]"))
    return templar.template(trust_as_template(mail["subject"]))


def test_subjects_say_what_is_due_and_what_was_done():
    assert subject("notify.yml", entry_of(VOLUME)) == "[Lab] 1 resource expires in 14 days"
    assert subject("notify.yml", entry_of(OVERDUE, VOLUME)) == (
        "[Lab] 2 resources expired or expiring, first action on or after 2026-11-22T06:00:00Z")
    removed = [{"kind": kind, "id": kind, "action": action} for kind, action in (("image", "deactivate"), ("server", "stop"))]
    assert subject("removal_notices.yml", {"owner": "ann@example.org", "resources": removed}) == (
        "[Lab] 2 resources were deactivated or stopped after the lease expired")


def test_the_scan_that_builds_the_mail_is_told_what_the_reap_will_do():
    def reap_call(tasks_file: str) -> dict:
        with open(os.path.join(ROLE, "tasks", tasks_file)) as handle:
            tasks = yaml.safe_load(handle)
        return next(inner["osops.lifecycle.lease_reap"] for task in tasks for inner in task.get("block") or []
                    if "osops.lifecycle.lease_reap" in inner)
    scan, reap = reap_call("scan.yml"), reap_call("reap.yml")
    for option in ("server_action", "image_action"):
        assert scan[option] == reap[option], option
