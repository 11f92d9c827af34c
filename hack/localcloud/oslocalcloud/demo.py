"""The demo's lease scenario on the seeded lab estate, and its summary.

  python -m oslocalcloud.demo scenario --collections ROOT --out VARS_JSON --mail-port N --reports DIR --key FILE
      writes a lease history onto the lab's resources (as if the automation had
      been running for weeks) and the variables the lease_cycle playbook runs with
  python -m oslocalcloud.demo summary --mails MAILS_JSON --reports DIR
      prints what happened: mails per owner, resources removed, the report

Each lab resource gets one of the stories below, in turn, so every story is in
the estate. Re-running the demo re-seeds what the last run removed and tells the
stories again.
"""
import argparse
import glob
import json
import os
import sys
from datetime import datetime, timedelta, timezone

from . import common

UTC = timezone.utc
LAB_PROJECTS = ["lab-alpha", "lab-beta", "lab-gamma", "lab-archive"]
# story: (days until expiry or a raw value, (milestone, days ago) of the last notice or None, extra metadata)
STORIES = [
    ("fresh", 25, None, {}),
    ("14-day notice due", 13.5, None, {}),
    ("7-day notice due", 6.5, (14, 7), {}),
    ("1-day notice due", 0.5, (7, 6), {}),
    ("expired, told 2 days ago: removed", -1, (1, 2), {}),
    ("expired, never told: told first", -1, None, {}),
    ("exempt (keep=yes)", -30, None, {"keep": "yes"}),
    ("tampered: expiry edited to 2099", 3, None, {"lease_expires": "2099-01-01T00:00:00Z"}),
    ("tampered: unreadable expiry", 10, None, {"lease_expires": "next tuesday"}),
    ("tampered: a forged notice", -1, None, {"lease_notice": "1d sent 2026-01-01T00:00:00Z for 2026-01-02T00:00:00Z"}),
]


def lease_code(collections_root):
    """The collection's own lease code (key names and formats, seals, per-kind metadata writes), from the dev env."""
    sys.path.insert(0, collections_root)
    from ansible_collections.osops.lifecycle.plugins.module_utils._lease import keys, kinds, policy, seal, trust
    return keys, kinds, policy, seal, trust


def seal_key(path):
    """The demo's seal key file (made once, mode 0600), as an operator keeps it."""
    if not os.path.exists(path):
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write("demo1 %s\n" % os.urandom(33).hex())
    return path


def lab_resources(conn):
    projects = {p.id: p.name for p in conn.identity.projects() if p.name in LAB_PROJECTS}
    out = []
    for server in conn.compute.servers(all_projects=True):
        if server.project_id in projects:
            out.append(("server", server.id, server.name, projects[server.project_id]))
    for volume in conn.block_storage.volumes(all_projects=True):
        if volume.project_id in projects:
            out.append(("volume", volume.id, volume.name, projects[volume.project_id]))
    for snapshot in conn.block_storage.snapshots(all_projects=True):
        if snapshot.project_id in projects:
            out.append(("snapshot", snapshot.id, snapshot.name, projects[snapshot.project_id]))
    for image in conn.image.images():
        if image.owner in projects and image.visibility == "private" and image.status == "active":
            out.append(("image", image.id, image.name, projects[image.owner]))
    return sorted(out, key=lambda r: (r[3], r[0], r[2] or "", r[1]))


def scenario(args):
    keys_module, kinds, policy_module, seal, trust = lease_code(args.collections)
    keys = keys_module.LeaseKeys()
    conn = common.connect("admin")
    now = datetime.now(UTC)
    # the history is what the collection sealed on earlier days; the tampered stories are owners' edits on top
    sealing = trust.SealContext(seal.load_keyring(seal_key(args.key)), keys, policy_module.Policy(max_extensions=3), now)
    # dave (lab-gamma) has no e-mail: his resources go to the project's contact
    gamma = conn.identity.find_project("lab-gamma", domain_id=conn.identity.find_domain("osops-lab").id)
    conn.identity.patch("/projects/%s" % gamma.id, json={"project": {"contact_email": "gamma-team@example.org"}})
    told = {}
    for index, (kind, resource_id, name, project) in enumerate(lab_resources(conn)):
        story, expiry, notice, extra = STORIES[index % len(STORIES)]
        expires = now + timedelta(days=expiry)
        sent = None
        if notice:
            milestone, days_ago = notice
            sent = keys_module.Notice(milestone, now - timedelta(days=days_ago), expires)
        values = trust.sealed_values(sealing, kind, resource_id, keys_module.LeaseRecord(expires, sent))
        values.update(extra)
        # each story starts clean: lease keys left by an earlier demo run go, only our keys are touched
        adapter = kinds.adapter_for(kind, conn)
        changes, removes = keys_module.effective_change(adapter.find(resource_id)["metadata"], values,
                                                        tuple(k for k in keys.all() if k not in values))
        adapter.apply(resource_id, changes, removes)
        told.setdefault(story, []).append("%s %s (%s)" % (kind, name or resource_id, project))
    for story, _expiry, _notice, _extra in STORIES:
        print("  %-36s %s" % (story, "; ".join(told.get(story, [])) or "-"))
    settings = {
        "lease_cloud": "admin",
        "lease_projects": LAB_PROJECTS,
        "lease_policy": {"lifetime_days": 30, "milestones_days": [14, 7, 1], "grace_days": 1,
                         "max_lease_days": 90, "max_extensions": 3, "exempt_metadata": {"keep": "yes"}},
        "lease_smtp_host": "127.0.0.1", "lease_smtp_port": args.mail_port, "lease_smtp_secure": "never",
        "lease_mail_from": "Lab cloud leases <leases@lab.example.org>",
        "lease_mail_cloud_name": "Lab cloud",
        "lease_mail_contact": "cloud-team@lab.example.org",
        "lease_mail_bcc": ["cloud-team@lab.example.org"],
        "lease_report_dir": args.reports,
        "lease_report_mail_to": ["cloud-team@lab.example.org"],
        "lease_seal_key_file": os.path.abspath(args.key),
        # every lease of the demo is sealed: unsealed or edited leases are tampering from the first run
        "lease_seal_enforced_from": keys_module.format_time(now - timedelta(days=90)),
        # the demo estate is small: allow this run's few removals
        "lease_max_remove_percent": 50,
        # the lab has been running for weeks: removal is on (lease_cycle is a dry run without it)
        "lease_reap_remove": True,
    }
    with open(args.out, "w") as handle:
        json.dump(settings, handle, indent=1)


def summary(args):
    with open(args.mails) as handle:
        mails = json.load(handle)
    reports = sorted(glob.glob(os.path.join(args.reports, "lease-report-*.json")), key=os.path.getmtime)
    print("\nMails delivered to the local SMTP server (%d):" % len(mails))
    for mail in mails:
        to = ", ".join(a for a in mail["envelope_to"] if a != "cloud-team@lab.example.org") or "operators"
        print("  %-28s %s" % (to, mail["subject"]))
    if not reports:
        print("\nNo report was written.")
        return 1
    with open(reports[-1]) as handle:
        report = json.load(handle)
    removed = [r for r in report["removals"] if r["outcome"] == "removed"]
    print("\nRemoved (%d):" % len(removed))
    for r in removed:
        print("  %-8s %-28s %-12s %s, owner %s" % (r["kind"], r.get("name") or r["id"], r.get("project_name") or "",
                                                   r.get("action"), r.get("owner")))
    if report.get("tampered"):
        print("\nTampered leases, restored from their seals (%d):" % len(report["tampered"]))
        for t in report["tampered"]:
            print("  %-8s %-28s %s" % (t["kind"], t.get("name") or t["id"], "; ".join(
                "%s was %s" % (c["key"], "removed" if c["found"] is None else c["found"]) for c in t["changes"])))
    if report.get("scan"):
        print("\nThe scan found: %s; %d notices due" % (
            ", ".join("%s %d" % item for item in report["scan"]["by_status"].items()), report["scan"]["notices_due"]))
    print("After the run:  %s" % ", ".join("%s %d" % item for item in report["totals"]["by_status"].items()))
    if report["unowned"]:
        print("Nobody to tell (kept): %s" % ", ".join(u.get("name") or u["id"] for u in report["unowned"]))
    if report["failures"]:
        print("Failures: %s" % "; ".join(f["reason"] for f in report["failures"]))
    print("\nReport: %s\n        %s" % (reports[-1][:-5] + ".html", reports[-1]))
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(prog="oslocalcloud.demo", description=__doc__.split("\n", maxsplit=1)[0])
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("scenario")
    s.add_argument("--collections", required=True, help="the collections root holding osops.lifecycle")
    s.add_argument("--out", required=True)
    s.add_argument("--mail-port", type=int, default=8025)
    s.add_argument("--reports", required=True)
    s.add_argument("--key", required=True, help="the seal key file (made if missing)")
    m = sub.add_parser("summary")
    m.add_argument("--mails", required=True)
    m.add_argument("--reports", required=True)
    args = parser.parse_args(argv)
    return scenario(args) if args.command == "scenario" else summary(args)


if __name__ == "__main__":
    sys.exit(main() or 0)
