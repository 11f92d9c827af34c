# Copyright: osops.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The lease role's mail and report templates: what an owner and an operator read, and no injected markup."""

from __future__ import annotations

import os
import time

import jinja2
import pytest
import yaml
from ansible.plugins.filter.core import FilterModule as CoreFilters

from ansible_collections.osops.lifecycle.plugins.filter.lease_portal_link import lease_portal_link
from ansible_collections.osops.lifecycle.plugins.module_utils._lease.report import build_report, removal_digest
from ansible_collections.osops.lifecycle.plugins.module_utils._lease.token import verify

ROLE = os.path.join(os.path.dirname(__file__), *[os.pardir] * 4, "roles", "lease")
EVIL = '<script>alert("x")</script>'


def render(name: str, **context) -> str:
    with open(os.path.join(ROLE, "defaults", "main.yml")) as handle:
        defaults = yaml.safe_load(handle)
    # the role's defaults that are Jinja themselves are not needed by the templates
    defaults = {k: v for k, v in defaults.items() if not (isinstance(v, str) and "{{" in v)}
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(os.path.join(ROLE, "templates")),
                             undefined=jinja2.StrictUndefined, trim_blocks=True)
    env.filters["bool"] = CoreFilters().filters()["bool"]  # the one Ansible filter the templates use
    env.filters["osops.lifecycle.lease_portal_link"] = lease_portal_link
    return env.get_template(name).render(**dict(defaults, **context))


def owner_entry() -> dict:
    return {"owner": "ann@example.org", "milestone_days": 7, "resources": [
        {"kind": "server", "id": "7c3e-id", "name": EVIL, "project": "alpha", "region": "RegionOne",
         "expires": "2026-11-28T12:00:00Z", "days_left": 7, "milestone_days": 7, "host": "lab",
         "extend_command": "openstack server set --property lease_extend=30 7c3e-id"},
        {"kind": "snapshot", "id": "9f00-id", "name": "", "project": "beta", "region": "RegionTwo",
         "expires": "2026-11-22T00:00:00Z", "days_left": 1, "milestone_days": 1, "host": "lab",
         "extend_command": "openstack volume snapshot set --property lease_extend=30 9f00-id"},
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
