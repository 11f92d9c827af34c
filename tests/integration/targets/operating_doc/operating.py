# Copyright: osops.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""docs/operating.md as a new operator follows it, against the local cloud.

The operator starts with a fresh HOME (their clouds.yaml names the local cloud
``mycloud``), no Ansible and no ANSIBLE_* settings, and the release tarball in the
directory they start from. The doc's ``sh`` blocks run in order in one bash (as in one
terminal), its settings block is saved with only the ``EDIT`` lines that point at
this machine's SMTP server changed, and its ``<!-- test: ... -->`` comments are where
time passes (the pilot's sealed leases are aged with the operator's key, as
lease_cycle's shift does), where the daily schedule runs, and what must hold then.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import openstack
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lease_cycle"))
import cycle  # noqa: E402  lease_cycle's: the admin connection, users, the mail sink
import sealing  # noqa: E402  lease_cycle's: ages sealed leases through their seal

UTC = timezone.utc
PROJECT = "pilot"           # the doc's lease_projects
CLOUD = "mycloud"           # the doc's clouds.yaml entry
SETTINGS_LINE = "Save this as `~/osops/lease-settings.yml`"
# what the test changes in the doc's settings, each on a line the doc marks EDIT
SMTP = {"lease_smtp_host": "127.0.0.1", "lease_smtp_port": str(cycle.CONFIG["mailsink_port"]),
        "lease_smtp_secure": "never"}
DIRECTIVE = re.compile(r"<!-- test: (.+?) -->")
DONE = "__operating_doc_block_done__"


def fail(message: str) -> None:
    raise SystemExit("FAIL  " + message)


class Estate:
    """The pilot project: ann's volume (leased, mailed, removed), a kept one, one whose owner has no address."""

    def __init__(self):
        self.conn = cycle.admin()
        self.ids: dict[str, str] = {}
        self.owner_email = ""

    def clean(self) -> None:
        project = self.conn.identity.find_project(PROJECT, domain_id="default")
        if project is not None:
            volumes = list(self.conn.block_storage.volumes(all_projects=True, project_id=project.id))
            for volume in volumes:
                self.conn.block_storage.delete_volume(volume.id, ignore_missing=True)
            for volume in volumes:
                self.conn.block_storage.wait_for_delete(volume, wait=120, interval=1)
            self.conn.identity.delete_project(project.id, ignore_missing=True)
        for name in ("pilot-ann", "pilot-nomail"):
            user = self.conn.identity.find_user(name, domain_id="default")
            if user is not None:
                self.conn.identity.delete_user(user.id, ignore_missing=True)

    def setup(self) -> None:
        self.clean()
        tag = os.urandom(3).hex()
        self.owner_email = "pilot-ann-%s@example.org" % tag
        project = self.conn.identity.create_project(name=PROJECT, domain_id="default", description="operating_doc")
        member = self.conn.identity.find_role("member")
        password = "pilot-%s-pw" % tag
        for user, email in (("pilot-ann", self.owner_email), ("pilot-nomail", None)):
            made = self.conn.identity.create_user(name=user, password=password, domain_id="default",
                                                  **({"email": email} if email else {}))
            self.conn.identity.assign_project_role_to_user(project.id, made.id, member.id)
        for short, user, metadata in (("data", "pilot-ann", {}), ("kept", "pilot-ann", {"keep": "yes"}),
                                      ("orphan", "pilot-nomail", {})):
            owner = cycle.as_user(self.conn, user, password, PROJECT)
            volume = owner.block_storage.create_volume(name="pilot-" + short, size=1, metadata=metadata)
            owner.block_storage.wait_for_status(volume, "available", failures=["error"], wait=120, interval=1)
            self.ids[short] = volume.id

    def metadata(self, short: str) -> dict | None:
        return cycle.metadata_of(self.conn, {"kind": "volume", "id": self.ids[short]})

    def age(self, days: float, key_file: str) -> None:
        ring = sealing.keyring(key_file)
        for short in self.ids:
            metadata = self.metadata(short)
            if metadata and "lease_expires" in metadata:
                changed = sealing.aged(ring, "volume", self.ids[short], metadata, timedelta(days=days))
                self.conn.block_storage.set_volume_metadata(self.ids[short], **changed)


class Operator:
    """One bash, as one terminal: HOME, PATH and the environment of a machine without the dev tools."""

    def __init__(self, work: str, repo: str):
        self.home = os.path.join(work, "home")
        self.start = os.path.join(work, "start")
        self.logs = os.path.join(work, "logs")
        for path in (self.home, self.start, self.logs):
            os.makedirs(path)
        env = {k: v for k, v in os.environ.items() if k in ("LANG", "LC_ALL", "TERM", "TZ")}
        env.update(HOME=self.home, PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                   # the machine's pip cache and the tested versions: the doc's pip line, reproducibly
                   PIP_CACHE_DIR=os.path.join(os.path.expanduser("~"), ".cache", "pip"),
                   PIP_CONSTRAINT=os.path.join(repo, "hack", "constraints.txt"),
                   PIP_DISABLE_PIP_VERSION_CHECK="1")
        self.shell = subprocess.Popen(["bash", "--noprofile", "--norc"], cwd=self.start, env=env, text=True,
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.blocks = 0
        self.last_log = ""
        self.daily = ""

    def run(self, block: str) -> str:
        """The block's output; the shell has set -e, so a failing command ends it (and the test)."""
        self.blocks += 1
        print("== block %d\n%s" % (self.blocks, block), flush=True)
        self.shell.stdin.write("set -eo pipefail\n%s\necho %s\n" % (block, DONE))
        self.shell.stdin.flush()
        lines = []
        for line in self.shell.stdout:
            if line.strip() == DONE:
                break
            lines.append(line)
            print("   " + line, end="", flush=True)
        else:
            fail("block %d ended the shell (exit %s)" % (self.blocks, self.shell.wait()))
        self.last_log = "".join(lines)
        with open(os.path.join(self.logs, "block-%02d.log" % self.blocks), "w") as handle:
            handle.write(self.last_log)
        if "osops.lifecycle.lease_cycle" in block:
            self.daily = block
        return self.last_log

    def close(self) -> None:
        if self.shell.poll() is None:
            self.shell.stdin.close()
            self.shell.wait(timeout=60)


def doc_steps(path: str) -> list[tuple[str, str]]:
    """("sh", block), ("settings", yaml) and ("test", directive) in the doc's order; a
    ``<!-- not run by the test -->`` comment skips the blocks of its section."""
    steps: list[tuple[str, str]] = []
    with open(path) as handle:
        lines = handle.read().splitlines()
    i, skipping, settings_next = 0, False, False
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        if line.startswith("## "):
            skipping = False
        if stripped.startswith("<!-- not run by the test"):
            skipping = True
        match = DIRECTIVE.fullmatch(stripped)
        if match and not skipping:
            steps.append(("test", match.group(1)))
        if SETTINGS_LINE in line:
            settings_next = True
        if stripped.startswith("```") and stripped != "```":
            language = stripped[3:].strip()
            indent = len(line) - len(line.lstrip())
            body = []
            i += 1
            while lines[i].strip() != "```":
                body.append(lines[i][indent:])
                i += 1
            text = "\n".join(body) + "\n"
            if language == "sh" and not skipping:
                steps.append(("sh", text))
            elif language == "yaml" and settings_next:
                steps.append(("settings", text))
                settings_next = False
        i += 1
    return steps


def operator_settings(text: str) -> str:
    """The doc's settings with only the EDIT-marked SMTP lines pointed at the test's mail server."""
    out, changed = [], set()
    for line in text.splitlines():
        key = line.split(":", 1)[0].strip()
        if key in SMTP and not line.startswith("#"):
            if "# EDIT" not in line:
                fail("the doc's settings line %r is changed by the test but not marked EDIT" % line)
            line = "%s: %s" % (key, SMTP[key])
            changed.add(key)
        out.append(line)
    if changed != set(SMTP):
        fail("the doc's settings have no line for %s" % sorted(set(SMTP) - changed))
    return "\n".join(out) + "\n"


class Checks:
    def __init__(self, estate: Estate, operator: Operator):
        self.estate = estate
        self.operator = operator
        self.seen = {m["file"] for m in cycle.mails()}
        self.failures: list[str] = []

    def that(self, condition: bool, what: str) -> None:
        print(("ok    " if condition else "FAIL  ") + what, flush=True)
        if not condition:
            self.failures.append(what)

    def new_mails(self) -> list[dict]:
        received = cycle.mails()
        new = [m for m in received if m["file"] not in self.seen]
        self.seen.update(m["file"] for m in received)
        return new

    def expiry(self, short: str) -> datetime | None:
        value = (self.estate.metadata(short) or {}).get("lease_expires")
        return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC) if value else None

    def exists(self, short: str) -> bool:
        return cycle.exists(self.estate.conn, {"kind": "volume", "id": self.estate.ids[short]})

    def reports(self) -> list[str]:
        return sorted(glob.glob(os.path.join(self.operator.home, "osops", "reports", "lease-report-*.html")))

    def expect(self, step: str) -> None:
        log, mails = self.operator.last_log, self.new_mails()
        to_owner = [m for m in mails if self.estate.owner_email in m["envelope_to"]]
        if step == "looked":
            self.that(all(self.expiry(s) is None for s in self.estate.ids), "--check wrote no lease")
            self.that(not mails, "--check mailed nobody")
            self.that(re.search(r'\\?"enrolled\\?": 2\b', log) is not None, "--check says 2 resources would get a lease")
            self.that(not self.reports() and "Check mode: no report written." in log, "--check wrote no report, and says so")
        elif step == "enrolled":
            now = datetime.now(UTC)
            for short in ("data", "orphan"):
                expiry = self.expiry(short)
                self.that(expiry is not None and abs((expiry - now) - timedelta(days=30)) < timedelta(hours=1),
                          "%s leased for the lifetime, 30 days (%s)" % (short, expiry))
            self.that(self.expiry("kept") is None, "the exempt volume (keep=yes) got no lease")
            self.that("Dry run: nothing is removed" in log, "the run says it is a dry run")
            self.that(not mails, "nobody mailed on the first day")
            self.that(len(self.reports()) == 1, "the first run wrote its report")
        elif step == "told":
            self.that(len(to_owner) == 1 and self.estate.ids["data"] in (to_owner[0]["text"] or to_owner[0]["html"]),
                      "the owner got one mail listing her volume")
            # the mail as the owner reads it: the text part, or the html one without its tags
            body = " ".join(re.sub(r"<[^>]+>", "", (to_owner[0]["text"] or to_owner[0]["html"] or "")).split()) \
                if to_owner else ""
            expiry = self.expiry("data")
            self.that(bool(expiry) and "will be deleted on or after %s" % expiry.strftime("%Y-%m-%d") in body,
                      "the mail says when the volume will be deleted (its expiry, %s)" % expiry)
            self.that(len(mails) == len(to_owner), "nobody else was mailed (the orphan has no address)")
            self.that("Dry run: nothing is removed" in log, "still a dry run")
            self.that(all(self.exists(s) for s in self.estate.ids), "nothing removed")
        elif step == "would-remove":
            self.that(re.search(r"would remove 1: volume pilot-data\b", log) is not None,
                      "the dry run lists pilot-data as what it would remove")
            self.that(all(self.exists(s) for s in self.estate.ids), "nothing removed in the dry run")
            with open(self.reports()[-1]) as handle:
                self.that("Dry run:" in handle.read(), "the report marks the dry run")
        elif step == "removed":
            self.that("Removing expired resources" in log, "the run says it removes")
            self.that(not self.exists("data"), "pilot-data was removed")
            self.that(self.exists("kept"), "the exempt volume stays")
            self.that(self.exists("orphan"), "the volume whose owner was never told stays")
            self.that(any(m["headers"].get("X-Osops-Lease") == "removal" for m in to_owner),
                      "the owner was told what went")
        else:
            fail("unknown expectation %r in the doc" % step)


def operator_cloud(home: str) -> None:
    """The operator's clouds.yaml: the local cloud's admin entry, named as in the doc."""
    with open(os.environ["OS_CLIENT_CONFIG_FILE"]) as handle:
        clouds = yaml.safe_load(handle)["clouds"]
    folder = os.path.join(home, ".config", "openstack")
    os.makedirs(folder)
    with open(os.path.join(folder, "clouds.yaml"), "w") as handle:
        yaml.safe_dump({"clouds": {CLOUD: clouds["admin"]}}, handle)
    os.chmod(os.path.join(folder, "clouds.yaml"), 0o600)


def release_tarball(dest: str) -> None:
    """What the operator starts with: the collection under test, built as a release."""
    roots = [p for p in os.environ.get("ANSIBLE_COLLECTIONS_PATH", "").split(os.pathsep) if p]
    source = next(os.path.join(r, "ansible_collections", "osops", "lifecycle") for r in roots
                  if os.path.isfile(os.path.join(r, "ansible_collections", "osops", "lifecycle", "galaxy.yml")))
    subprocess.run(["ansible-galaxy", "collection", "build", "--output-path", dest, source], check=True)


def main() -> int:
    work, repo = sys.argv[1], sys.argv[2]
    shutil.rmtree(work, ignore_errors=True)
    steps = doc_steps(os.path.join(repo, "docs", "operating.md"))
    kinds = [kind for kind, text in steps]
    if kinds.count("sh") < 5 or "settings" not in kinds:
        fail("docs/operating.md has no walkthrough to follow (%d steps)" % len(steps))
    estate = Estate()
    estate.setup()
    operator = Operator(work, repo)
    checks = Checks(estate, operator)
    try:
        operator_cloud(operator.home)
        release_tarball(operator.start)
        for kind, text in steps:
            if kind == "sh":
                operator.run(text)
            elif kind == "settings":
                path = os.path.join(operator.home, "osops", "lease-settings.yml")
                with open(path, "w") as handle:
                    handle.write(operator_settings(text))
                print("== settings saved as ~/osops/lease-settings.yml", flush=True)
            elif kind == "test" and text.startswith("expect "):
                checks.expect(text[len("expect "):])
            elif kind == "test" and text.endswith(" days pass"):
                estate.age(float(text.split()[0]), os.path.join(operator.home, "osops", "lease-seal.key"))
                print("== %s" % text, flush=True)
            elif kind == "test" and text == "the daily run":
                operator.run(operator.daily)
            else:
                fail("unknown test comment %r in the doc" % text)
    finally:
        operator.close()
        try:
            estate.clean()
        except openstack.exceptions.SDKException as error:
            print("cleanup: %s" % error)
    print("%d blocks of docs/operating.md run; %d checks failed" % (operator.blocks, len(checks.failures)))
    return 1 if checks.failures else 0


if __name__ == "__main__":
    sys.exit(main())
