# SPDX-License-Identifier: GPL-3.0-or-later
"""The owner's side of the lease portal, in a real headless browser (Debian's chromium via Selenium).

  browser.py serve UNIT_FILE PIDFILE         start the portal with the unit's own command and environment
  browser.py check STATE PORTAL_URL AUDIT SCREENSHOT...
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime, timedelta, timezone

import openstack
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import Select, WebDriverWait

HERE = os.path.dirname(os.path.abspath(__file__))
CONFIG = json.load(open(os.path.join(HERE, "..", "..", "integration_config.yml")))


def serve(unit_file: str, pidfile: str) -> None:
    """Run ExecStart= of the unit with its Environment=, as systemd would (without the sandboxing)."""
    env = dict(os.environ)
    command = None
    with open(unit_file) as handle:
        for line in handle:
            line = line.strip()
            if line.startswith("Environment="):
                name, value = line[len("Environment="):].split("=", 1)
                env[name] = value
            elif line.startswith("ExecStart="):
                command = shlex.split(line[len("ExecStart="):])
    assert command, "no ExecStart in %s" % unit_file
    log = open(pidfile + ".log", "ab")
    proc = subprocess.Popen(command, env=env, stdout=log, stderr=log, start_new_session=True)
    with open(pidfile, "w") as handle:
        handle.write(str(proc.pid))
    bind = command[command.index("--bind") + 1]
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen("http://%s/healthz" % bind, timeout=1).read()
            print("portal up on %s (pid %d)" % (bind, proc.pid))
            return
        except (urllib.error.URLError, OSError):
            if proc.poll() is not None:
                break
            time.sleep(0.2)
    raise SystemExit("the portal did not start; see %s.log" % pidfile)


class Checks:
    def __init__(self):
        self.failures = []

    def that(self, condition, what):
        print(("ok    " if condition else "FAIL  ") + what)
        if not condition:
            self.failures.append(what)


def lease_of(conn, kind: str, resource_id: str) -> dict:
    if kind == "server":
        return dict(conn.compute.get_server_metadata(resource_id).metadata or {})
    return dict(conn.block_storage.get_volume(resource_id).metadata or {})


def when(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)


def browser() -> webdriver.Chrome:
    options = Options()
    options.binary_location = "/usr/bin/chromium"
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=412,1100"):
        options.add_argument(argument)  # a phone-sized window
    return webdriver.Chrome(options=options, service=Service("/usr/bin/chromedriver"))


def post(url: str, fields: dict, cookies: dict) -> tuple[int, str]:
    request = urllib.request.Request(url, data=urllib.parse.urlencode(fields).encode(), method="POST", headers={
        "Cookie": "; ".join("%s=%s" % item for item in cookies.items()),
        "Content-Type": "application/x-www-form-urlencoded", "Referer": url})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def check(state_path: str, portal: str, audit_path: str, screenshots: list[str]) -> int:
    state = json.load(open(state_path))
    res = state["resources"]
    ann = state["users"]["ann"]["email"]
    conn = openstack.connect(cloud="admin")
    c = Checks()
    mails = json.loads(subprocess.run(CONFIG["mailsink"] + ["dump"], check=True, capture_output=True,
                                      text=True).stdout)
    to_ann = [m for m in mails if ann in m["envelope_to"] and m["headers"].get("X-Osops-Lease") == "expiry"]
    c.that(len(to_ann) == 1, "ann got one expiry mail")
    links = re.findall(re.escape(portal) + r"/l/[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+", to_ann[0]["html"])
    c.that(len(set(links)) == 1, "ann's mail has one portal link")
    c.that("openstack server set" not in to_ann[0]["html"], "with a portal, the mail links instead of giving commands")
    link = links[0]
    watched = [("server", res["s1"]["id"]), ("volume", res["v4"]["id"]), ("volume", res["v1"]["id"])]
    before = {key: lease_of(conn, *key) for key in watched}

    # A mail scanner fetches every link in every mail: nothing changes.
    for mail in mails:
        for found in set(re.findall(re.escape(portal) + r"/[^\s\"'<>]*", mail["html"] or mail["text"] or "")):
            for _attempt in ("prefetch", "again"):
                try:
                    urllib.request.urlopen(found, timeout=30).read()
                except urllib.error.HTTPError:
                    pass
    c.that({key: lease_of(conn, *key) for key in watched} == before, "GET of every link changed nothing")

    driver = browser()
    try:
        driver.get(link)
        page = driver.find_element(By.TAG_NAME, "main").text
        c.that("Your resources" in page and ann in page, "the page is ann's")
        c.that(res["s1"]["name"] in page and res["v4"]["name"] in page, "it lists s1 and v4 (both clouds of the mail)")
        c.that(res["v1"]["name"] not in page, "it lists nothing the mail did not cover")
        c.that("<i>x</i>" in page and not driver.find_elements(By.CSS_SELECTOR, "h2 i"),
               "a name with markup is shown as text")
        c.that(not driver.find_elements(By.TAG_NAME, "script"), "the page has no scripts")
        for path in screenshots:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            driver.save_screenshot(path)
        old = when(before[("server", res["s1"]["id"])]["lease_expires"])
        form = next(f for f in driver.find_elements(By.TAG_NAME, "form")
                    if f.find_element(By.NAME, "id").get_attribute("value") == res["s1"]["id"])
        Select(form.find_element(By.NAME, "days")).select_by_value("14")
        csrf = form.find_element(By.NAME, "csrf_token").get_attribute("value")
        page_before = driver.find_element(By.TAG_NAME, "main")
        form.find_element(By.TAG_NAME, "button").click()
        WebDriverWait(driver, 60).until(expected_conditions.staleness_of(page_before))
        result = driver.find_element(By.TAG_NAME, "main").text
        c.that("Extended" in result, "clicking extend says Extended (%r)" % result[:120])
        after = lease_of(conn, "server", res["s1"]["id"])
        c.that(abs((when(after["lease_expires"]) - (old + timedelta(days=14))).total_seconds()) < 2,
               "s1's lease in OpenStack moved by 14 days (%s -> %s)" % (old, after.get("lease_expires")))
        c.that(after.get("lease_extensions") == "1", "and counts as the owner's extension")
        c.that(after["lease_expires"][:10] in result, "the page shows the new expiry")
        cookies = {cookie["name"]: cookie["value"] for cookie in driver.get_cookies()}
        driver.get(link)
        c.that("Already extended with this link" in driver.find_element(By.TAG_NAME, "main").text,
               "back on the page, s1 shows as done")
    finally:
        driver.quit()

    # Replaying the same POST (same session, same CSRF token) is refused and changes nothing.
    status, body = post(link + "/extend", {"csrf_token": csrf, "kind": "server", "id": res["s1"]["id"], "days": "14"},
                        cookies)
    c.that(status == 409 and "already used" in body, "a replayed extension is refused (%d)" % status)
    # A resource the mail did not cover is refused, even with a valid session.
    status, body = post(link + "/extend", {"csrf_token": csrf, "kind": "volume", "id": res["v1"]["id"], "days": "14"},
                        cookies)
    c.that(status == 403 and "Not in this mail" in body, "a resource outside the mail is refused (%d)" % status)
    # A tampered link shows the refusal page.
    body_part, signature = link.rsplit("/", 1)[1].split(".")
    forged = "%s/l/%s.%s" % (portal, body_part[:-1] + ("A" if body_part[-1] != "A" else "B"), signature)
    try:
        urllib.request.urlopen(forged, timeout=30)
        c.that(False, "a tampered link is refused")
    except urllib.error.HTTPError as error:
        c.that(error.code == 403 and "This link was changed" in error.read().decode(), "a tampered link is refused")
    unchanged = [("volume", res["v4"]["id"]), ("volume", res["v1"]["id"])]
    c.that(all(lease_of(conn, *key) == before[key] for key in unchanged), "nothing else changed")
    c.that(lease_of(conn, "server", res["s1"]["id"]) == after, "s1 changed only once")

    with open(audit_path) as handle:
        records = [json.loads(line) for line in handle if line.strip()]
    extended = [r for r in records if r.get("id") == res["s1"]["id"] and r.get("outcome") == "written"]
    c.that(len(extended) == 1 and extended[0].get("state") == "extended",
           "the audit log has the one extension (%d records)" % len(extended))
    if c.failures:
        print("%d portal checks failed" % len(c.failures))
        return 1
    return 0


def main() -> int:
    if sys.argv[1] == "serve":
        serve(sys.argv[2], sys.argv[3])
        return 0
    return check(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:])


if __name__ == "__main__":
    sys.exit(main())
