# SPDX-License-Identifier: GPL-3.0-or-later
"""The owner's side of the lease portal, in a real headless browser (Debian's chromium via Selenium).

  browser.py serve UNIT_FILE PIDFILE         start the portal with the unit's own command and environment
  browser.py check STATE PORTAL_URL AUDIT KEYFILE CAFILE DIRECT_URL OUTPUT_DIR DOCS_IMAGES

The check goes through nginx over https (PORTAL_URL, certificate CAFILE); DIRECT_URL is the portal's own
port, used once to show that a request without the Host the documented nginx block sends is refused.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime, timedelta, timezone

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import Select, WebDriverWait

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lease_cycle"))
# lease_cycle's: the config, the admin connection, metadata and existence of resources
import cycle  # noqa: E402  pylint: disable=wrong-import-position
CONFIG = cycle.CONFIG


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


def token_module():
    """The collection's token code (to mint an expired link with the key, as only the key holder can)."""
    folder = HERE
    while os.path.basename(folder) != "ansible_collections" and folder != os.path.dirname(folder):
        folder = os.path.dirname(folder)
    sys.path.insert(0, os.path.dirname(folder))
    from ansible_collections.osops.lifecycle.plugins.module_utils._lease import token  # pylint: disable=import-outside-toplevel
    return token


def lease_of(conn, kind: str, resource_id: str) -> dict | None:
    return cycle.metadata_of(conn, {"kind": kind, "id": resource_id})


def exists(conn, kind: str, resource_id: str) -> bool:
    return cycle.exists(conn, {"kind": kind, "id": resource_id})


def when(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)


def browser() -> webdriver.Chrome:
    options = Options()
    options.binary_location = "/usr/bin/chromium"
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=412,1100"):
        options.add_argument(argument)  # a phone-sized window
    # the test's throwaway certificate: https with Secure cookies, as in production, without a CA
    options.set_capability("acceptInsecureCerts", True)
    return webdriver.Chrome(options=options, service=Service("/usr/bin/chromedriver"))


def post(url: str, fields: dict, cookies: dict, headers: dict | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, data=urllib.parse.urlencode(fields).encode(), method="POST", headers={
        "Cookie": "; ".join("%s=%s" % item for item in cookies.items()),
        "Content-Type": "application/x-www-form-urlencoded", "Referer": url, **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=120) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def section_of(driver, resource_id: str):
    """The page's section for one resource (by the id it shows)."""
    for section in driver.find_elements(By.CSS_SELECTOR, "section.resource"):
        if resource_id in section.find_element(By.CSS_SELECTOR, ".id").text:
            return section
    return None


def click_and_wait(driver, element) -> str:
    page_before = driver.find_element(By.TAG_NAME, "main")
    element.click()
    WebDriverWait(driver, 120).until(expected_conditions.staleness_of(page_before))
    return driver.find_element(By.TAG_NAME, "main").text


def shoot(driver, paths: list[str], full: bool = False) -> None:
    if full:
        height = driver.execute_script("return document.documentElement.scrollHeight")
        driver.set_window_size(412, min(int(height) + 40, 6000))
    for path in paths:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        driver.save_screenshot(path)
    if full:
        driver.set_window_size(412, 1100)


def check(state_path: str, portal: str, audit_path: str, keyfile: str, cafile: str, direct: str, output: str,
          images: str) -> int:
    # every request of this check goes through nginx with the throwaway certificate checked
    urllib.request.install_opener(urllib.request.build_opener(
        urllib.request.HTTPSHandler(context=ssl.create_default_context(cafile=cafile))))
    state = json.load(open(state_path))
    res = dict(state["resources"], **json.load(open(state_path + ".extra.json"))["resources"])
    ann = state["users"]["ann"]["email"]
    conn = cycle.admin()
    c = Checks()
    mails = json.loads(subprocess.run(CONFIG["mailsink"] + ["dump"], check=True, capture_output=True,
                                      text=True).stdout)
    to_ann = [m for m in mails if ann in m["envelope_to"] and m["headers"].get("X-Osops-Lease") == "expiry"]
    c.that(len(to_ann) == 1, "ann got one expiry mail")
    links = re.findall(re.escape(portal) + r"/l/[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+", to_ann[0]["html"])
    c.that(len(set(links)) == 1, "ann's mail has one https portal link")
    c.that("openstack server set" not in to_ann[0]["html"], "with a portal, the mail links instead of giving commands")
    link = links[0]
    watched = ["s1", "v4", "v1", "s2", "s3", "rel", "busy", "busy-snap"]
    before = {short: lease_of(conn, res[short]["kind"], res[short]["id"]) for short in watched}

    # A mail scanner fetches every link in every mail: nothing changes.
    for mail in mails:
        for found in set(re.findall(re.escape(portal) + r"/[^\s\"'<>]*", mail["html"] or mail["text"] or "")):
            for _attempt in ("prefetch", "again"):
                get(found)
    c.that({short: lease_of(conn, res[short]["kind"], res[short]["id"]) for short in watched} == before,
           "GET of every link changed nothing")

    shots = {name: [os.path.join(output, name), os.path.join(images, name)]
             for name in ("lease-portal.png", "lease-portal-owner.png", "lease-portal-release.png")}
    with open(keyfile) as handle:
        key = json.load(handle)["portal_key"]
    token = token_module()
    expired = "%s/l/%s" % (portal, token.sign(key, ann, [("volume", res["v1"]["id"])], int(time.time()) - 7200, 3600))
    del key

    started = time.monotonic()
    driver = browser()
    try:
        driver.get(link)
        page = driver.find_element(By.TAG_NAME, "main").text
        c.that("Your resources" in page and ann in page, "the page is ann's (%.1fs)" % (time.monotonic() - started))
        mine = ["s1", "v4", "v1", "s3", "rel", "busy"]
        c.that(all(section_of(driver, res[s]["id"]) is not None for s in mine),
               "it lists all of ann's resources, not only the mail's (%s)" % ", ".join(
                   s for s in mine if section_of(driver, res[s]["id"]) is None))
        c.that(state["projects"]["main"]["name"] in page and state["projects"]["side"]["name"] in page,
               "from both projects")
        c.that({h.text.split()[0] for h in driver.find_elements(By.CSS_SELECTOR, "section h2")} >= {"server", "volume"},
               "of several kinds")
        c.that(section_of(driver, res["s2"]["id"]) is None and section_of(driver, res["v2"]["id"]) is None,
               "and nobody else's (rex's s2, v2)")
        c.that("in your mail" in section_of(driver, res["s1"]["id"]).text
               and "in your mail" not in section_of(driver, res["v1"]["id"]).text, "the mail's resources are marked")
        c.that("exempt" in section_of(driver, res["s3"]["id"]).find_element(By.CSS_SELECTOR, ".stage").text,
               "s3 (keep=yes) shows as exempt")
        c.that("in use" in section_of(driver, res["busy"]["id"]).find_element(By.CSS_SELECTOR, ".stage").text,
               "busy (it has a snapshot) shows as in use")
        stage = section_of(driver, res["s1"]["id"]).find_element(By.CSS_SELECTOR, ".stage").text
        c.that(stage in ("active", "expiring"), "s1 (notified, 13 days left) shows its stage (%s)" % stage)
        c.that(all(section_of(driver, res[s]["id"]).find_element(By.CSS_SELECTOR, ".left").text == "2"
                   for s in ("s1", "v4", "rel")), "with 2 extensions left (max_extensions 2)")
        releasable = {s for s in mine if section_of(driver, res[s]["id"]).find_elements(By.CSS_SELECTOR, "a.release")}
        c.that("rel" in releasable and "s3" not in releasable and "busy" not in releasable,
               "release is offered for rel, never for exempt s3 or in-use busy (%s)" % sorted(releasable))
        c.that(not section_of(driver, res["s3"]["id"]).find_elements(By.TAG_NAME, "select"),
               "no extension is offered for exempt s3")
        c.that("<i>x</i>" in page and not driver.find_elements(By.CSS_SELECTOR, "h2 i"),
               "a name with markup is shown as text")
        c.that(not driver.find_elements(By.TAG_NAME, "script"), "the page has no scripts")
        session = [cookie for cookie in driver.get_cookies() if cookie["name"] == "session"]
        flags = {name: session[0].get(name) for name in ("secure", "httpOnly", "sameSite")} if session else {}
        c.that(flags == {"secure": True, "httpOnly": True, "sameSite": "Strict"},
               "the session cookie is Secure, HttpOnly and SameSite=Strict (%s)" % flags)
        shoot(driver, shots["lease-portal.png"])
        shoot(driver, shots["lease-portal-owner.png"], full=True)

        # extend two at once: s1 by 14 days, v4 by 7
        old = {s: when(before[s]["lease_expires"]) for s in ("s1", "v4")}
        for short, days in (("s1", "14"), ("v4", "7")):
            Select(section_of(driver, res[short]["id"]).find_element(By.TAG_NAME, "select")).select_by_value(days)
        csrf = driver.find_element(By.NAME, "csrf_token").get_attribute("value")
        result = click_and_wait(driver, driver.find_element(By.CSS_SELECTOR, "form button[type=submit]"))
        c.that(result.startswith("Extended"), "one click extends the chosen (%r)" % result[:200])
        after = {s: lease_of(conn, res[s]["kind"], res[s]["id"]) for s in ("s1", "v4")}
        for short, days in (("s1", 14), ("v4", 7)):
            moved = when(after[short]["lease_expires"]) - old[short]
            c.that(abs((moved - timedelta(days=days)).total_seconds()) < 2,
                   "%s's lease in OpenStack moved by %d days (%s)" % (short, days, moved))
            c.that(after[short].get("lease_extensions") == "1", "%s counts one extension of the owner's" % short)
            c.that(after[short]["lease_expires"][:10] in result, "the page shows %s's new expiry" % short)
        driver.get(link)
        c.that(all("Already extended with this link" in section_of(driver, res[s]["id"]).text for s in ("s1", "v4")),
               "back on the page, s1 and v4 show as done")

        # release rel: a confirmation page, then the delete
        link_element = section_of(driver, res["rel"]["id"]).find_element(By.CSS_SELECTOR, "a.release")
        confirm = click_and_wait(driver, link_element)
        c.that("cannot be undone" in confirm and res["rel"]["name"] in confirm, "release asks for confirmation first")
        c.that(exists(conn, "volume", res["rel"]["id"]), "opening the confirmation deleted nothing")
        shoot(driver, shots["lease-portal-release.png"])
        # the same confirmation in a second tab, to be sent again after the release (a replay)
        first_tab, confirm_url = driver.current_window_handle, driver.current_url
        driver.switch_to.new_window("tab")
        driver.get(confirm_url)
        second_tab = driver.current_window_handle
        driver.switch_to.window(first_tab)
        driver.find_element(By.ID, "confirm").click()
        released = click_and_wait(driver, driver.find_element(By.CSS_SELECTOR, "form button[type=submit]"))
        c.that(released.startswith("Released"), "confirmed, it says Released (%r)" % released[:160])
        c.that(not exists(conn, "volume", res["rel"]["id"]), "rel is gone from the cloud")
        driver.switch_to.window(second_tab)
        driver.find_element(By.ID, "confirm").click()
        again = click_and_wait(driver, driver.find_element(By.CSS_SELECTOR, "form button[type=submit]"))
        c.that("already used" in again, "in the browser, the release sent again from a second tab is refused (%r)"
               % again[:80])
        driver.close()
        driver.switch_to.window(first_tab)

        # What an owner meets in the browser for what the page never offers (a hand-made or old URL)
        for short, says, what in (("s2", "Not yours", "rex's s2"), ("s3", "Exempt", "exempt s3"),
                                  ("busy", "In use", "busy (in use)")):
            query = urllib.parse.urlencode({"kind": res[short]["kind"], "id": res[short]["id"]})
            driver.get("%s/release?%s" % (link, query))
            text = driver.find_element(By.TAG_NAME, "main").text
            c.that(says in text and not driver.find_elements(By.ID, "confirm"),
                   "in the browser, releasing %s is refused with no form (%r)" % (what, text[:60]))
        driver.get(expired)
        text = driver.find_element(By.TAG_NAME, "main").text
        c.that("This link has expired" in text and not driver.find_elements(By.CSS_SELECTOR, "section.resource"),
               "in the browser, an expired link shows the refusal and no resources (%r)" % text[:60])
        cookies = {cookie["name"]: cookie["value"] for cookie in driver.get_cookies()}
    finally:
        driver.quit()

    def refused(path: str, fields: dict, status: int, says: str, what: str, url: str = link) -> None:
        code, body = post(url + path, dict(fields, csrf_token=csrf), cookies)
        c.that(code == status and says in body, "%s (%d)" % (what, code))

    def release_of(short: str, **extra) -> dict:
        return dict({"kind": res[short]["kind"], "id": res[short]["id"], "confirm": "yes"}, **extra)

    # Refusals, each a direct POST with a valid session and CSRF token: nothing changes
    refused("/extend", {"days:server:%s" % res["s1"]["id"]: "14"}, 409, "already used", "a replayed extension is refused")
    refused("/extend", {"days:server:%s" % res["s2"]["id"]: "14"}, 403, "Not yours", "extending rex's s2 is refused")
    refused("/release", release_of("s2"), 403, "Not yours", "releasing rex's s2 is refused")
    refused("/release", release_of("s3"), 409, "Exempt", "releasing exempt s3 is refused")
    refused("/release", release_of("busy"), 409, "In use", "releasing busy (in use) is refused")
    refused("/release", release_of("rel"), 409, "already used", "a replayed release is refused")
    refused("/release", release_of("v1", confirm=""), 400, "Not confirmed", "a release without confirmation is refused")
    refused("/release", release_of("v1"), 410, "expired", "a release with an expired link is refused", url=expired)
    c.that(get(expired)[0] == 410, "an expired link shows the refusal page (410)")
    body_part, signature = link.rsplit("/", 1)[1].split(".")
    forged = "%s/l/%s.%s" % (portal, body_part[:-1] + ("A" if body_part[-1] != "A" else "B"), signature)
    code, body = get(forged)
    c.that(code == 403 and "This link was changed" in body, "a tampered link is refused (%d)" % code)
    # what nginx would send without the documented Host line: the CSRF referrer check refuses it
    code, body = post(direct + link[len(portal):] + "/extend", {"csrf_token": csrf, "days:volume:%s" % res["v1"]["id"]: "7"},
                      cookies, {"X-Forwarded-Proto": "https", "Referer": link})
    c.that(code == 400, "without the Host header nginx is told to send, an extension fails with 400 (%d)" % code)

    for short in ("v1", "s2", "s3", "busy", "busy-snap"):
        c.that(lease_of(conn, res[short]["kind"], res[short]["id"]) == before[short], "%s is unchanged" % short)
    c.that(all(exists(conn, res[s]["kind"], res[s]["id"]) for s in ("v1", "s2", "s3", "busy")),
           "v1, s2, s3 and busy still exist")
    c.that({s: lease_of(conn, res[s]["kind"], res[s]["id"]) for s in ("s1", "v4")} == after, "s1 and v4 changed once")

    with open(audit_path) as handle:
        records = [json.loads(line) for line in handle if line.strip()]
    extended = {r["id"] for r in records if r.get("event") == "lease" and r.get("outcome") == "written"
                and r.get("state") == "extended"}
    c.that(extended == {res["s1"]["id"], res["v4"]["id"]}, "the audit log has the two extensions (%d)" % len(extended))
    releases = [r for r in records if r.get("event") == "release"]
    done = [r for r in releases if r["outcome"] == "released"]
    c.that(len(done) == 1 and done[0]["id"] == res["rel"]["id"] and done[0].get("owner") == ann,
           "the audit log has the release of rel, by ann")
    c.that(any(r.get("event") == "remove" and r.get("outcome") == "removed" and r.get("id") == res["rel"]["id"]
               and r.get("action") == "delete" for r in records), "and the reaper's removal record (delete)")
    reasons = sorted(r["reason"] for r in releases if r["outcome"] == "refused")
    c.that(reasons == sorted(["not_yours", "exempt", "in_use", "replayed", "replayed", "not_confirmed", "expired"]),
           "every refused release has its audit line (%s)" % reasons)
    print("browser and refusal checks took %.1fs" % (time.monotonic() - started))
    if c.failures:
        print("%d portal checks failed" % len(c.failures))
        return 1
    return 0


def main() -> int:
    if sys.argv[1] == "serve":
        serve(sys.argv[2], sys.argv[3])
        return 0
    return check(*sys.argv[2:10])


if __name__ == "__main__":
    sys.exit(main())
