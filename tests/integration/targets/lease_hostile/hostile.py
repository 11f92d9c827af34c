# SPDX-License-Identifier: GPL-3.0-or-later
"""Hostile tenants against the lease lifecycle (issue 12): the estate, the attacks, the checks.

  hostile.py setup STATE          projects good (honest), evil (the attacker's), share and boot (a shared
                                  image and the server booted from it); leases written the old way (no seal);
                                  the seal key file, the markers and the playbook variables next to STATE
  hostile.py enforce STATE        seals are enforced from now on (lease_seal_enforced_from in the variables)
  hostile.py shift STATE [DAYS]   time passes: every lease time moves DAYS (SHIFT_DAYS) into the past, re-sealed
  hostile.py plant STATE          the attacker writes the hostile values (one resource per row of ROWS; only the
                                  rows named in $LEASE_HOSTILE_ROWS, comma-separated, if set); honest users act
  hostile.py awx-before STATE     remember the lease the AWX step must not change
  hostile.py bad-keys STATE       key files that must be refused (missing, short, readable by all); gina asks for time
  hostile.py field STATE PATH     print a value of STATE (resources.g-team.id, users.mal.name, ...)
  hostile.py expect STATE STEP    migrate | tenants | in-use | awx | awx-owner | secrets | key-missing | key-short | key-open
  hostile.py cleanup STATE

Time passes as in lease_cycle (cycle.py shift), by ageing the lease times on the resources; the
collection runs unchanged with the real clock. Lease keys are only readable copies once sealed, so
shifting re-seals with the operator's key (seal(), the one place that knows the seal's API), and must
run before planting: re-sealing after would seal the attacker's values.
"""

from __future__ import annotations

import glob
import json
import os
import secrets
import sys
import time
from datetime import datetime, timedelta

import openstack

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lease_cycle"))
from cycle import ISO, UTC, admin, as_user, iso, latest_report, load, new_mails, report_html  # noqa: E402

PREFIX = "lease_"
IMAGE_PATCH = "application/openstack-images-v2.1-json-patch"
EVIL_DOMAIN = "evil.example"
# Days: a short lifetime, so that "a lease rebuilt from the creation time" (the resources are minutes old)
# and "a fresh lease" (now + first milestone + grace = 15 days) differ on this estate.
POLICY = {"lifetime_days": 1, "milestones_days": [14, 7, 1], "grace_days": 1, "max_lease_days": 90,
          "max_extensions": 2}
SHIFT_DAYS = 2  # what runme.sh shifts between the migration run and the hostile run

# name, kind, user, project, days until expiry at setup (None: no lease), old-style extras:
# extensions count, notice (milestone, days since sent) for the setup expiry
ESTATE = [
    # the honest project
    ("g-new", "volume", "gina", "good", None, {}),                   # enrolled on the first run
    ("g-soon", "volume", "gina", "good", 0.5, {}),                   # 1-day notice, removed two days later
    ("g-8", "volume", "gina", "good", 8.5, {}),                      # 14-day notice, then the 7-day one
    ("g-7told", "volume", "gina", "good", 6.5, {"notice": (7, 0.5)}),  # told at 7 days by the old version
    ("g-ext", "volume", "gina", "good", 40, {"extensions": 2}),      # no extension left
    ("g-team", "volume", "gina", "good", 8.5, {}),                   # an operator sets an owner override
    ("g-community", "image", "gina", "good", 40, {}),                # community: listed only with visibility=all
    # the attacker's project: one resource per row of ROWS
    ("h-extend", "volume", "mal", "evil", 40, {"extensions": 1}),
    ("h-year1", "volume", "mal", "evil", 40, {}),
    ("h-year9999", "volume", "mal", "evil", 40, {}),
    ("h-sup2", "volume", "mal", "evil", 40, {"extensions": 1}),
    ("h-notice9999", "volume", "mal", "evil", 1.5, {}),              # 7-day notice; expired, 1-day notice due
    ("h-notice2099", "volume", "mal", "evil", 1.5, {}),
    ("h-ext0", "volume", "mal", "evil", 20, {"extensions": 2}),
    ("h-extdel", "volume", "mal", "evil", 20, {"extensions": 2}),
    ("h-maxlease", "volume", "mal", "evil", 20, {}),
    ("h-vic", "volume", "vic", "evil", 1.5, {}),                     # the colleague's: 7-day notice, then expired
    ("h-wipe", "volume", "mal", "evil", 40, {}),
    ("h-img-svc", "image", "mal", "evil", 8.5, {}),
    ("h-img-vic", "image", "mal", "evil", 8.5, {}),
    ("h-owner-list", "volume", "mal", "evil", 8.5, {}),
    ("h-owner-any", "volume", "mal", "evil", 8.5, {}),
    ("v-vic", "volume", "vic", "evil", 20, {}),                      # the AWX step's target
    # in use anywhere: an image of project share, booted by a server of project boot
    ("i-shared", "image", "sam", "share", 0.5, {}),
    ("i-boot", "server", "bob", "boot", 40, {}),
]


def _expiry(sealed: dict) -> str:
    return sealed.get(PREFIX + "expires", "")


# row -> (resource, what is written: {key: value or None to delete}); values may depend on the sealed lease
ROWS = {
    "extend-huge": ("h-extend", lambda s, now, ids: {"lease_extend": "99999999"}),
    "expires-year1": ("h-year1", lambda s, now, ids: {"lease_expires": "0001-01-01T00:00:00Z"}),
    "expires-year9999": ("h-year9999", lambda s, now, ids: {"lease_expires": "9999-12-31T23:59:59-01:00"}),
    "extensions-sup2": ("h-sup2", lambda s, now, ids: {"lease_extensions": "\u00b2"}),
    "notice-9999": ("h-notice9999", lambda s, now, ids: {
        "lease_notice": "0d sent 9999-12-31T23:59:59Z for %s" % _expiry(s)}),
    "notice-2099": ("h-notice2099", lambda s, now, ids: {
        "lease_notice": "0d sent 2099-01-01T00:00:00Z for %s" % _expiry(s)}),
    "extensions-0": ("h-ext0", lambda s, now, ids: {"lease_extensions": "0", "lease_extend": "30"}),
    "extensions-deleted": ("h-extdel", lambda s, now, ids: {"lease_extensions": None, "lease_extend": "30"}),
    "expires-max": ("h-maxlease", lambda s, now, ids: {"lease_expires": iso(now + timedelta(days=90))}),
    "colleague-notice": ("h-vic", lambda s, now, ids: {
        "lease_notice": "1d sent %s for %s" % (iso(now - timedelta(days=3)), _expiry(s))}),
    "wipe": ("h-wipe", lambda s, now, ids: {key: None for key in s if key.startswith(PREFIX)}),
    "image-user-exempt": ("h-img-svc", lambda s, now, ids: {"user_id": ids["svc"]}),
    "image-user-colleague": ("h-img-vic", lambda s, now, ids: {"user_id": ids["vic"]}),
    "owner-list": ("h-owner-list", lambda s, now, ids: {"lease_owner": "root,attacker@%s" % EVIL_DOMAIN}),
    "owner-any": ("h-owner-any", lambda s, now, ids: {"lease_owner": "attacker@%s" % EVIL_DOMAIN}),
}


# --- the seal: the one place that knows its API -------------------------------------------------------------


def collection_module(name: str):
    """A module of the collection under test (ansible-test's copy first, then the development checkout)."""
    for root in os.environ.get("ANSIBLE_COLLECTIONS_PATH", "").split(os.pathsep) + os.environ.get(
            "PYTHONPATH", "").split(os.pathsep):
        if root and os.path.isdir(os.path.join(root, "ansible_collections", "osops", "lifecycle")) \
                and root not in sys.path:
            sys.path.append(root)
    import importlib
    return importlib.import_module("ansible_collections.osops.lifecycle.plugins.module_utils._lease." + name)


def seal(key_file: str, kind: str, resource_id: str, metadata: dict) -> dict:
    """The seal value(s) for the lease keys in ``metadata``; {} when this collection has no seal (main before issue 12)."""
    try:
        seal_module = collection_module("seal")
        keys = collection_module("keys")
    except ImportError:
        return {}
    keyring = seal_module.load_keyring(key_file)
    expires = keys.parse_time(metadata[PREFIX + "expires"])
    notice = keys.Notice.parse(metadata[PREFIX + "notice"]) if metadata.get(PREFIX + "notice") else None
    extensions = int(metadata.get(PREFIX + "extensions") or 0)
    owner, exempt = metadata.get(PREFIX + "owner"), metadata.get(PREFIX + "exempt")
    state = seal_module.SealedState(expires, notice, extensions)
    return {PREFIX + "seal": seal_module.seal_lease(keyring, PREFIX, kind, resource_id, state, owner, exempt)}


# --- metadata of any kind ------------------------------------------------------------------------------------


def read_meta(conn, kind: str, resource_id: str) -> dict | None:
    """The resource's metadata (image: its properties), or None once it is gone."""
    try:
        if kind == "server":
            return dict(conn.compute.get_server_metadata(resource_id).metadata or {})
        if kind == "volume":
            return dict(conn.block_storage.get_volume(resource_id).metadata or {})
        return dict(conn.image.get_image(resource_id).properties or {})
    except openstack.exceptions.NotFoundException:
        return None


def write_meta(conn, kind: str, resource_id: str, changes: dict) -> None:
    """Set keys (value) and delete keys (None), as whoever ``conn`` is."""
    current = read_meta(conn, kind, resource_id) or {}
    values = {k: v for k, v in changes.items() if v is not None}
    remove = [k for k, v in changes.items() if v is None and k in current]
    if kind == "image":
        patch = [{"op": "add", "path": "/" + k, "value": v} for k, v in sorted(values.items())]
        patch += [{"op": "remove", "path": "/" + k} for k in remove]
        if patch:
            response = conn.image.patch("/images/%s" % resource_id, json=patch, headers={"Content-Type": IMAGE_PATCH})
            if response.status_code >= 400:
                raise RuntimeError("image patch refused: %s %s" % (response.status_code, response.text[:200]))
        return
    proxy, noun = (conn.compute, "server") if kind == "server" else (conn.block_storage, "volume")
    if values:
        getattr(proxy, "set_%s_metadata" % noun)(resource_id, **values)
    if remove:
        getattr(proxy, "delete_%s_metadata" % noun)(resource_id, remove)


def exists(conn, kind: str, resource_id: str) -> bool:
    if kind == "server":
        server = conn.compute.find_server(resource_id, all_projects=True)
        return server is not None and server.status != "DELETED"
    if kind == "volume":
        return conn.block_storage.find_volume(resource_id, all_projects=True) is not None
    image = conn.image.find_image(resource_id, ignore_missing=True)
    return image is not None and image.status == "active"  # a deactivated image counts as removed


# --- setup ---------------------------------------------------------------------------------------------------


def folder_of(path: str) -> str:
    return os.path.dirname(os.path.abspath(path))


def private_file(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.chmod(path, 0o600)


def setup(path: str) -> None:
    conn = admin()
    folder = folder_of(path)
    tag = "lh%s" % os.urandom(3).hex()
    password = tag + "-pw"
    # marker secrets: the seal key is the real key of the whole run; the others are used by the -vvv run
    markers = {"seal": "sealkey-marker-" + secrets.token_hex(24), "cloud": "cloudpw-marker-" + secrets.token_hex(12),
               "smtp": "smtppw-marker-" + secrets.token_hex(12)}
    key_file = os.path.join(folder, "seal.key")
    private_file(key_file, "k1 %s\n" % markers["seal"])
    private_file(os.path.join(folder, "markers.json"), json.dumps(markers))
    state = {"tag": tag, "key_file": key_file, "users": {}, "projects": {}, "resources": {}, "addresses": {
        "team": tag + "-team@example.org"}}

    contacts = {"good": tag + "-good@example.org", "evil": tag + "-evil@example.org",
                "share": tag + "-share@example.org", "boot": None}
    for short, contact in contacts.items():
        body = {"name": "%s-%s" % (tag, short), "domain_id": "default", "description": "lease_hostile target"}
        if contact:
            body["contact_email"] = contact
        project = conn.identity.post("/projects", json={"project": body}).json()["project"]
        state["projects"][short] = {"id": project["id"], "name": project["name"], "contact": contact}
    member = conn.identity.find_role("member")
    # gina: honest owner; mal: the attacker; vic: his colleague; svc: an exempt service user;
    # sam and bob: the shared image's owner and its user in another project; ops: the -vvv run's admin
    people = {"gina": ["good"], "mal": ["evil"], "vic": ["evil"], "svc": [], "sam": ["share"], "bob": ["boot"],
              "ops": []}
    for short, projects in people.items():
        address = "%s-%s@example.org" % (tag, short)
        user = conn.identity.create_user(name="%s-%s" % (tag, short), domain_id="default", email=address,
                                         password=markers["cloud"] if short == "ops" else password)
        state["users"][short] = {"id": user.id, "name": user.name, "email": address}
        for project in projects:
            conn.identity.assign_project_role_to_user(state["projects"][project]["id"], user.id, member.id)
    conn.identity.assign_project_role_to_user(conn.identity.find_project("admin").id, state["users"]["ops"]["id"],
                                              conn.identity.find_role("admin").id)

    now = datetime.now(UTC)
    flavor = conn.compute.find_flavor("m1.nano")
    network = conn.network.find_network("localcloud-net")
    sessions = {}

    def session(user: str, project: str):
        if (user, project) not in sessions:
            sessions[user, project] = as_user(conn, state["users"][user]["name"], password,
                                              state["projects"][project]["name"])
        return sessions[user, project]

    pending = []
    for short, kind, user, project, days, extra in ESTATE:
        owner = session(user, project)
        metadata = {}
        if days is not None:
            expires = now + timedelta(days=days)
            metadata[PREFIX + "expires"] = iso(expires)
            if "extensions" in extra:
                metadata[PREFIX + "extensions"] = str(extra["extensions"])
            if "notice" in extra:
                milestone, ago = extra["notice"]
                metadata[PREFIX + "notice"] = "%dd sent %s for %s" % (milestone, iso(now - timedelta(days=ago)),
                                                                      iso(expires))
        name = "%s-%s" % (tag, short)
        if kind == "volume":
            made = owner.block_storage.create_volume(name=name, size=1, metadata=metadata)
            pending.append((owner, kind, made))
        elif kind == "image":
            made = owner.image.create_image(name=name, disk_format="raw", container_format="bare",
                                            data=b"\0" * 1024, visibility="shared" if project == "share" else
                                            "community" if short == "g-community" else "private",
                                            allow_duplicates=True, wait=True, timeout=120)
            write_meta(owner, "image", made.id, metadata)
            if project == "share":
                # shared with project boot, which accepts it and boots a server from it
                owner.image.add_member(made.id, member_id=state["projects"]["boot"]["id"])
                session("bob", "boot").image.update_member(state["projects"]["boot"]["id"], made.id, status="accepted")
        else:
            image = state["resources"]["i-shared"]["id"]
            made = owner.compute.create_server(name=name, image_id=image, flavor_id=flavor.id,
                                               networks=[{"uuid": network.id}], metadata=metadata)
            pending.append((owner, kind, made))
        state["resources"][short] = {"id": made.id, "name": name, "kind": kind, "user": user, "project": project,
                                     "setup": metadata}
    for owner, kind, made in pending:
        if kind == "volume":
            owner.block_storage.wait_for_status(made, "available", failures=["error"], wait=120, interval=1)
        else:
            conn.compute.wait_for_server(made, wait=240, interval=2)
    for resource in state["resources"].values():
        found = conn.block_storage.get_volume(resource["id"]) if resource["kind"] == "volume" else \
            conn.image.get_image(resource["id"]) if resource["kind"] == "image" else conn.compute.get_server(resource["id"])
        resource["created"] = found.created_at

    def projects(*names: str) -> list[str]:
        return [state["projects"][n]["name"] for n in names]

    save(path, state)
    variables = {
        "lease_hosts": "localhost",
        "lease_cloud": "admin",
        "lease_projects": projects("good", "evil"),
        # community images are leased like private ones here (the review's case: only public ones exempt)
        "lease_policy": dict(POLICY, exempt_users=[state["users"]["svc"]["name"], state["users"]["svc"]["id"]],
                             exempt_image_visibilities=["public"]),
        "lease_seal_key_file": key_file,
        "lease_reap_remove": True,
        "lease_image_action": "delete",
        "lease_smtp_host": "127.0.0.1", "lease_smtp_port": load_config()["mailsink_port"], "lease_smtp_secure": "never",
        "lease_mail_from": "Cloud leases <leases@example.org>",
        "lease_mail_cloud_name": "Lab cloud",
        "lease_report_dir": os.path.join(folder, "reports"),
        "lease_max_remove_percent": 100,
    }
    write_json(os.path.join(folder, "hostile-vars.yml"), variables)
    # the first run sees every project; the in-use runs see the shared image's project only
    write_json(os.path.join(folder, "vars-all-projects.json"), {"lease_projects": projects("good", "evil", "share", "boot")})
    write_json(os.path.join(folder, "vars-inuse-kinds.json"),
               {"lease_kinds": ["image"], "lease_projects": projects("share", "boot")})
    write_json(os.path.join(folder, "vars-inuse-projects.json"), {"lease_projects": projects("share")})
    # the -vvv run: the cloud as a dict with a password, an SMTP password (mailsink has no AUTH, so no user name)
    cloud = openstack.config.OpenStackConfig().get_one(cloud="admin")
    auth = {key: cloud.config["auth"][key]
            for key in ("auth_url", "project_name", "project_domain_name", "user_domain_name")}
    auth.update(username=state["users"]["ops"]["name"], password=markers["cloud"])
    private_file(os.path.join(folder, "vars-secret.json"), json.dumps({
        "lease_cloud": {"auth": auth, "auth_type": "password", "region_name": cloud.region_name},
        "lease_smtp_password": markers["smtp"], "lease_reap_remove": False}))
    print("estate %s ready" % tag)


def load_config() -> dict:
    with open(os.path.join(HERE, "..", "..", "integration_config.yml")) as handle:
        return json.load(handle)


def save(path: str, state: dict) -> None:
    write_json(path, state)


def write_json(path: str, data: dict) -> None:
    with open(path, "w") as handle:
        json.dump(data, handle, indent=1)


def enforce(path: str) -> None:
    variables_file = os.path.join(folder_of(path), "hostile-vars.yml")
    variables = load(variables_file)
    variables["lease_seal_enforced_from"] = iso(datetime.now(UTC))
    write_json(variables_file, variables)
    time.sleep(1)  # what is made from now on was made after the moment
    print("seals enforced from %s" % variables["lease_seal_enforced_from"])


def shift(path: str, days: float) -> None:
    """Age every lease time of the estate by ``days``; leases the collection sealed are sealed again."""
    conn = admin()
    state = load(path)
    try:
        import sealing  # lease_cycle's: ages sealed leases through their seal
        ring = sealing.keyring(state["key_file"])
    except ImportError:  # a collection without seals (main before issue 12): plain times
        sealing = ring = None
    delta = timedelta(days=days)
    for resource in state["resources"].values():
        metadata = read_meta(conn, resource["kind"], resource["id"])
        if not metadata or PREFIX + "expires" not in metadata:
            continue
        if sealing is not None:
            changed = sealing.aged(ring, resource["kind"], resource["id"], metadata, delta)
        else:
            changed = {key: shift_text(metadata[key], delta) for key in (PREFIX + "expires", PREFIX + "notice")
                       if key in metadata}
        write_meta(conn, resource["kind"], resource["id"], changed)
    print("estate is %s days older" % days)


def plant(path: str) -> None:
    """The attacker's writes, as project members may make them; then what honest users do meanwhile."""
    conn = admin()
    state = load(path)
    password = state["tag"] + "-pw"
    wanted = [r.strip() for r in os.environ.get("LEASE_HOSTILE_ROWS", "").split(",") if r.strip()] or list(ROWS)
    unknown = set(wanted) - set(ROWS)
    if unknown:
        raise SystemExit("unknown rows %s (known: %s)" % (sorted(unknown), ", ".join(ROWS)))
    mal = as_user(conn, state["users"]["mal"]["name"], password, state["projects"]["evil"]["name"])
    ids = {short: user["id"] for short, user in state["users"].items()}
    now = datetime.now(UTC)
    state["planted"], state["sealed"], state["planted_values"] = {}, {}, {}
    for row in wanted:
        short, values = ROWS[row]
        resource = state["resources"][short]
        sealed = read_meta(conn, resource["kind"], resource["id"]) or {}
        changes = values(sealed, now, ids)
        write_meta(mal, resource["kind"], resource["id"], changes)
        state["planted"][row] = short
        state["sealed"][short] = {k: v for k, v in sealed.items() if k.startswith(PREFIX)}
        state["planted_values"][short] = changes
        print("planted %-22s on %-13s %s" % (row, short, json.dumps(changes, ensure_ascii=False)))
    # honest users meanwhile: gina asks for more time on a lease that has none left, and makes a new volume
    gina = as_user(conn, state["users"]["gina"]["name"], password, state["projects"]["good"]["name"])
    write_meta(gina, "volume", state["resources"]["g-ext"]["id"], {PREFIX + "extend": "10"})
    late = gina.block_storage.create_volume(name=state["tag"] + "-g-late", size=1)
    gina.block_storage.wait_for_status(late, "available", failures=["error"], wait=120, interval=1)
    state["resources"]["g-late"] = {"id": late.id, "name": late.name, "kind": "volume", "user": "gina",
                                    "project": "good", "setup": {}, "created": late.created_at}
    save(path, state)


# --- checks --------------------------------------------------------------------------------------------------


def task_results(path: str, run: str) -> list[tuple[str, dict]]:
    """(task name, result) of a playbook run whose output (ansible.posix.json) is in <run>.json."""
    try:
        with open(os.path.join(folder_of(path), run + ".json")) as handle:
            text = handle.read()
        output, _end = json.JSONDecoder().raw_decode(text[text.index("{"):])
    except (OSError, ValueError):
        return []
    return [(task["task"]["name"], result) for play in output.get("plays", []) for task in play.get("tasks", [])
            for result in (task.get("hosts") or {}).values() if isinstance(result, dict)]


def lease_results(path: str, run: str) -> list[dict]:
    """Every lease_reap result of the run (the scan's first)."""
    return [result for _name, result in task_results(path, run) if "decisions" in result]


def lease_failures(path: str, run: str) -> list[str]:
    """Why lease modules of the run failed."""
    return ["%s: %s" % (name.split(" : ")[-1], str(result.get("msg"))[:300]) for name, result in task_results(path, run)
            if result.get("failed") and ("lease_reap" in str(result.get("invocation")) or "Scan" in name
                                         or "Remove" in name)]


class Check:
    def __init__(self, path: str):
        self.path = path
        self.state = load(path)
        self.conn = admin()
        self.mails = new_mails(path)
        self.failures: list[str] = []
        self.now = datetime.now(UTC)

    def that(self, condition: bool, what: str) -> None:
        print(("ok    " if condition else "FAIL  ") + what)
        if not condition:
            self.failures.append(what)

    def res(self, short: str) -> dict:
        return self.state["resources"][short]

    def meta(self, short: str) -> dict:
        return read_meta(self.conn, self.res(short)["kind"], self.res(short)["id"]) or {}

    def address(self, who: str) -> str:
        if who in self.state["projects"]:
            return self.state["projects"][who]["contact"]
        if who in self.state["users"]:
            return self.state["users"][who]["email"]
        return self.state["addresses"][who]

    def known_addresses(self) -> set[str]:
        return {u["email"] for u in self.state["users"].values()} | {
            p["contact"] for p in self.state["projects"].values() if p["contact"]} | set(self.state["addresses"].values())

    def mails_to(self, who: str, kind: str = "expiry") -> list[dict]:
        return [m for m in self.mails if self.address(who) in m["envelope_to"]
                and m["headers"].get("X-Osops-Lease") == kind]

    def listed(self, mail: dict) -> set[str]:
        body = mail["html"] or mail["text"] or ""
        return {short for short, r in self.state["resources"].items() if r["id"] in body}

    def mail_lists(self, who: str, shorts, kind: str = "expiry", maybe=()) -> None:
        """One mail of ``kind`` to ``who``, listing ``shorts`` (and perhaps ``maybe``), nothing else of the estate."""
        got = self.mails_to(who, kind)
        self.that(len(got) == 1, "one %s mail to %s (got %d)" % (kind, who, len(got)))
        if got:
            listed = self.listed(got[0])
            self.that(set(shorts) <= listed <= set(shorts) | set(maybe), "%s's %s mail lists %s%s (lists %s)" % (
                who, kind, ", ".join(sorted(shorts)), " (perhaps %s)" % ", ".join(maybe) if maybe else "",
                ", ".join(sorted(listed))))

    def nobody_else(self, *allowed: str) -> None:
        addresses = {self.address(who) for who in allowed}
        strangers = sorted({a for m in self.mails for a in m["envelope_to"]} - addresses)
        self.that(not strangers, "nobody but %s got mail (also: %s)" % (", ".join(allowed), strangers))

    def present(self, *shorts: str) -> None:
        for short in shorts:
            self.that(exists(self.conn, self.res(short)["kind"], self.res(short)["id"]), "%s still exists" % short)

    def gone(self, *shorts: str) -> None:
        for short in shorts:
            self.that(not exists(self.conn, self.res(short)["kind"], self.res(short)["id"]), "%s was removed" % short)

    def key_is(self, short: str, key: str, wanted: str | None, why: str = "") -> None:
        found = self.meta(short).get(PREFIX + key)
        self.that(found == wanted, "%s: %s%s is %r (found %r)" % (short, PREFIX, key, wanted, found) +
                  (" - %s" % why if why else ""))


def decisions_by_id(results: list[dict]) -> dict:
    """The first decision for each resource (the scan's, when the run had one)."""
    found: dict = {}
    for result in results:
        for decision in result.get("decisions") or []:
            found.setdefault(decision["id"], decision)
    return found


def expect(path: str, step: str) -> int:
    c = Check(path)
    if step == "migrate":
        expect_migrate(c)
    elif step == "tenants":
        expect_tenants(c)
    elif step == "in-use":
        image = c.res("i-shared")["id"]
        for run in ("inuse-kinds", "inuse-projects"):
            results = lease_results(path, run)
            decision = decisions_by_id(results).get(image) or {}
            removals = [r for result in results for r in result.get("removed") or [] if r.get("id") == image]
            print("      run %s: the shared image is %s (%s); removal: %s %s" % (
                run, decision.get("status"), decision.get("reason"), [r.get("outcome") for r in removals],
                "; ".join(lease_failures(path, run))))
            c.that(len(results) == 2 and not [r for r in removals if r.get("outcome") == "removed"],
                   "run %s ran and did not remove the shared image" % run)
        c.present("i-shared", "i-boot")
        c.that(not [m for m in c.mails if m["headers"].get("X-Osops-Lease") == "removal"], "no removal mail")
    elif step == "awx":
        sealed = c.state["awx_before"]
        after = {k: v for k, v in c.meta("v-vic").items() if k.startswith(PREFIX)}
        c.that(after.get(PREFIX + "expires") == sealed.get(PREFIX + "expires")
               and after.get(PREFIX + "extensions") == sealed.get(PREFIX + "extensions"),
               "mal (AWX e-mail set to vic's) did not change vic's lease (%s -> %s)" % (
                   sealed.get(PREFIX + "expires"), after.get(PREFIX + "expires")))
    elif step == "awx-owner":
        c.key_is("v-vic", "extensions", "1", "vic's own launch (AWX user name vic, a forged e-mail) is counted")
    elif step == "secrets":
        expect_secrets(c)
    elif step.startswith("key-"):
        expect_bad_key(c, step)
    else:
        raise SystemExit("unknown step %s" % step)
    if c.failures:
        print("%d checks failed after step %s" % (len(c.failures), step))
        return 1
    return 0


def expect_migrate(c: Check) -> None:
    """The first run of the sealing code over leases written the old way: nothing lost, nobody mailed twice."""
    c.mail_lists("gina", ["g-soon", "g-8", "g-team"])
    c.mail_lists("mal", ["h-notice9999", "h-notice2099", "h-owner-list", "h-owner-any"])
    c.mail_lists("vic", ["h-vic"])
    c.mail_lists("evil", ["h-img-svc", "h-img-vic"])
    c.mail_lists("share", ["i-shared"])
    c.nobody_else("gina", "mal", "vic", "evil", "share")
    c.present(*c.state["resources"])
    told_now = {"g-soon", "g-8", "g-team", "h-notice9999", "h-notice2099", "h-owner-list", "h-owner-any", "h-vic",
                "h-img-svc", "h-img-vic", "i-shared"}
    for short, resource in c.state["resources"].items():
        meta = c.meta(short)
        c.that(bool(meta.get(PREFIX + "seal")), "%s is sealed" % short)
        setup = resource["setup"]
        if not setup:
            c.that(bool(meta.get(PREFIX + "expires")), "%s was enrolled" % short)
            continue
        c.that(meta.get(PREFIX + "expires") == setup[PREFIX + "expires"], "%s keeps its expiry %s (found %s)" % (
            short, setup[PREFIX + "expires"], meta.get(PREFIX + "expires")))
        if PREFIX + "extensions" in setup:
            c.key_is(short, "extensions", setup[PREFIX + "extensions"], "the count is kept")
        if short not in told_now:
            c.key_is(short, "notice", setup.get(PREFIX + "notice"), "the notice is kept")


def expect_tenants(c: Check) -> None:
    """The run after the attacks: the honest project is served as usual, each attack is reported and fails."""
    state, planted = c.state, c.state["planted"]
    results = lease_results(c.path, "hostile-run")
    failures = lease_failures(c.path, "hostile-run")
    c.that(len(results) == 2 and not failures, "the scan and the reap ran to the end (%s)" % "; ".join(failures))
    decisions = decisions_by_id(results)
    report = latest_report(c.path)
    html = report_html(c.path)
    reported = {t["id"] for t in report.get("tampered") or []} | {i["id"] for i in report.get("invalid") or []}
    # owners' requests as the scan handled them (the report, built from the reap step, does not list them)
    handled = [q for result in results for q in result.get("requests") or []] + list(report.get("requests") or [])
    refused = {q["id"] for q in handled if not q.get("granted")}
    requests = {q["id"] for q in handled}

    print("-- the honest project")
    c.gone("g-soon")
    c.mail_lists("gina", ["g-soon"], kind="removal")
    # g-late: enrolled now; a policy with a lifetime this short may tell gina at once
    c.mail_lists("gina", ["g-8", "g-new"], maybe=["g-late"])
    c.mail_lists("team", ["g-team"])   # the owner override an operator set (sealed) is honoured
    c.present("g-new", "g-8", "g-7told", "g-ext", "g-team", "g-late")
    c.key_is("g-7told", "notice", load_sealed_notice(c, "g-7told"), "no second 7-day notice")
    c.key_is("g-ext", "extensions", "2")
    c.that(c.res("g-ext")["id"] in refused, "gina's request on g-ext (no extension left) is refused")
    late = decisions.get(c.res("g-late")["id"]) or {}
    c.that(bool(late) and late.get("status") not in ("invalid", "tampered") and not late.get("tampered")
           and c.res("g-late")["id"] not in reported,
           "g-late, made after seals were enforced, is leased, not tampered (found %s %s)" % (
               late.get("status"), late.get("tampered")))
    c.that(bool(c.meta("g-late").get(PREFIX + "seal")), "g-late is sealed")
    c.key_is("g-late", "extensions", None, "a new resource has its extensions")
    community = decisions.get(c.res("g-community")["id"]) or {}
    c.that(community.get("status") not in (None, "exempt", "invalid"),
           "the community image of a scanned project is leased (found %s)" % (community.get("status") or "not listed"))
    c.that(bool(c.meta("g-community").get(PREFIX + "seal")), "the community image is sealed")

    print("-- the attacks")
    for row, short in planted.items():
        resource, sealed = c.res(short), state["sealed"][short]
        rid = resource["id"]
        decision = decisions.get(rid) or {}
        c.present(short)
        if row == "extend-huge":
            expect_huge_request(c, short, decision, rid in reported or rid in requests)
            continue
        if not row.startswith("image-"):  # user_id is no lease key: ignoring it is all there is to do
            in_scan = decision.get("status") in ("invalid", "tampered") or bool(decision.get("tampered"))
            c.that(in_scan, "%s (%s): the scan reports it (status %s, tampered %s)" % (
                row, short, decision.get("status"), decision.get("tampered")))
            c.that(rid in reported, "%s: the report lists %s as tampered or invalid" % (row, short))
            c.that(rid in html, "%s: the HTML report names %s" % (row, short))
        if row != "wipe":
            c.key_is(short, "expires", sealed.get(PREFIX + "expires"), "no time gained")
        if row in ("extensions-sup2", "extensions-0", "extensions-deleted"):
            c.key_is(short, "extensions", sealed.get(PREFIX + "extensions"), "the sealed count")
        if row in ("notice-9999", "notice-2099", "colleague-notice"):
            notice = c.meta(short).get(PREFIX + "notice")
            forged = state["planted_values"][short][PREFIX + "notice"]
            c.that(notice != forged, "%s: the forged notice is gone from %s (found %r)" % (row, short, notice))
            who = "vic" if short == "h-vic" else "mal"
            c.that(any(short in c.listed(m) for m in c.mails_to(who)), "%s: %s is told about %s" % (row, who, short))
        if row == "wipe":
            expect_wipe(c, short, decision)
        if row in ("image-user-exempt", "image-user-colleague"):
            c.that(decision.get("status") != "exempt", "%s: %s is not exempt (%s)" % (row, short, decision.get("reason")))
            c.that(any(short in c.listed(m) for m in c.mails_to("evil")), "%s: the evil project's contact is told about %s"
                   % (row, short))
            c.that(not any(short in c.listed(m) for m in c.mails_to("svc") + c.mails_to("vic")),
                   "%s: neither svc nor vic is told about %s" % (row, short))
        if row in ("owner-list", "owner-any"):
            c.that(any(short in c.listed(m) for m in c.mails_to("mal")), "%s: mal, the real owner, is told about %s"
                   % (row, short))

    print("-- nobody the attacker chose got mail")
    to = sorted({a for m in c.mails for a in m["envelope_to"]})
    c.that(not [a for a in to if a.endswith("@" + EVIL_DOMAIN) or "@" not in a],
           "no mail to %s or to a local mailbox (recipients: %s)" % (EVIL_DOMAIN, to))
    c.that(set(to) <= c.known_addresses(), "every recipient is a known owner (strangers: %s)" % (
        sorted(set(to) - c.known_addresses())))
    c.that(not c.mails_to("svc"), "the exempt service user got no mail")


def expect_huge_request(c: Check, short: str, decision: dict, reported: bool) -> None:
    """lease_extend=99999999: refused (or read as invalid), or granted as a request within the caps; counted either way."""
    sealed = c.state["sealed"][short]
    meta = c.meta(short)
    count = int(sealed.get(PREFIX + "extensions") or 0)
    cap = iso(c.now + timedelta(days=POLICY["max_lease_days"]))
    unchanged = meta.get(PREFIX + "expires") == sealed.get(PREFIX + "expires") and \
        meta.get(PREFIX + "extensions") == sealed.get(PREFIX + "extensions")
    granted = (meta.get(PREFIX + "expires") or "9") <= cap and meta.get(PREFIX + "extensions") == str(count + 1)
    values = (short, meta.get(PREFIX + "expires"), meta.get(PREFIX + "extensions"), sealed.get(PREFIX + "expires"),
              sealed.get(PREFIX + "extensions"))
    c.that(unchanged or granted, "extend-huge: %s is refused, or granted within max_lease_days and counted "
           "(%s, %s extensions; was %s, %s)" % values)
    c.that(reported, "extend-huge: the run reports %s (a request, tampered or invalid; status %s)" % (
        short, decision.get("status")))


def load_sealed_notice(c: Check, short: str) -> str | None:
    return c.res(short)["setup"].get(PREFIX + "notice") and shift_text(c.res(short)["setup"][PREFIX + "notice"])


def shift_text(text: str, delta: timedelta = timedelta(days=SHIFT_DAYS)) -> str:
    """A setup time as it reads after runme.sh's shift."""
    return ISO.sub(lambda m: iso(datetime.strptime(m.group(0), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
                                 - delta), text)


def expect_wipe(c: Check, short: str, decision: dict) -> None:
    """Every lease key deleted: the lease counts from the creation time, floor now + last milestone + grace."""
    meta = c.meta(short)
    created = datetime.strptime(c.res(short)["created"][:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    floor_days = POLICY["milestones_days"][-1] + POLICY["grace_days"]
    try:
        expires = datetime.strptime(meta.get(PREFIX + "expires", ""), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        expires = None
    latest = max(created + timedelta(days=POLICY["lifetime_days"]), c.now + timedelta(days=floor_days))
    c.that(expires is not None and c.now + timedelta(days=floor_days, hours=-1) <= expires <= latest,
           "wipe: %s leased from its creation with the short floor, until about %s (found %s)" % (
               short, iso(latest), meta.get(PREFIX + "expires")))
    c.key_is(short, "extensions", str(POLICY["max_extensions"]), "no extension left after a wipe")
    c.that(bool(meta.get(PREFIX + "seal")), "wipe: %s is sealed again" % short)


def expect_secrets(c: Check) -> None:
    folder = folder_of(c.path)
    with open(os.path.join(folder, "markers.json")) as handle:
        markers = json.load(handle)
    files = [os.path.join(folder, "vvv.log")] + sorted(glob.glob(os.path.join(folder, "reports", "*")))
    c.that(os.path.getsize(files[0]) > 10000, "the -vvv run wrote its output")
    report = latest_report(c.path)
    c.that(not report.get("hosts_without_result") and report["totals"]["resources"] > 0,
           "the -vvv run scanned the cloud with the marked credentials (%s)" % report.get("hosts_without_result"))
    c.that(any(f.endswith("audit.jsonl") for f in files), "the audit log is there")
    for name, marker in sorted(markers.items()):
        found = []
        for file in files:
            with open(file, "rb") as handle:
                if marker.encode() in handle.read():
                    found.append(os.path.relpath(file, folder))
        c.that(not found, "the %s secret appears nowhere (found in %s)" % (name, found))


def awx_before(path: str) -> None:
    """Remember v-vic's lease before the AWX step."""
    state = load(path)
    resource = state["resources"]["v-vic"]
    state["awx_before"] = {k: v for k, v in (read_meta(admin(), "volume", resource["id"]) or {}).items()
                           if k.startswith(PREFIX)}
    save(path, state)


def bad_keys(path: str) -> None:
    """Key files the modules must refuse, each with the variables of a run; gina asks for time on g-8 meanwhile."""
    state = load(path)
    folder = folder_of(path)
    with open(state["key_file"]) as handle:
        good = handle.read()
    private_file(os.path.join(folder, "seal-short.key"), "k1 %s\n" % secrets.token_hex(8))  # 16 characters
    with open(os.path.join(folder, "seal-open.key"), "w") as handle:
        handle.write(good)
    os.chmod(os.path.join(folder, "seal-open.key"), 0o644)
    for name, key_file in (("missing", os.path.join(folder, "no-such.key")),
                           ("short", os.path.join(folder, "seal-short.key")),
                           ("open", os.path.join(folder, "seal-open.key"))):
        write_json(os.path.join(folder, "vars-key-%s.json" % name), {"lease_seal_key_file": key_file})
    conn = admin()
    gina = as_user(conn, state["users"]["gina"]["name"], state["tag"] + "-pw", state["projects"]["good"]["name"])
    write_meta(gina, "volume", state["resources"]["g-8"]["id"], {PREFIX + "extend": "5"})
    state["bad_key_before"] = {k: v for k, v in (read_meta(conn, "volume", state["resources"]["g-8"]["id"]) or {}).items()
                               if k.startswith(PREFIX)}
    save(path, state)


def expect_bad_key(c: Check, run: str) -> None:
    """A run without a usable key fails with a clear message and changes nothing."""
    failures = ["%s: %s" % (name.split(" : ")[-1], str(result.get("msg"))[:300])
                for name, result in task_results(c.path, run) if result.get("failed")]
    c.that(any("key" in f.lower() for f in failures), "%s: the run fails and says it is the key (%s)" % (
        run, "; ".join(failures)))
    before = c.state["bad_key_before"]
    after = {k: v for k, v in c.meta("g-8").items() if k.startswith(PREFIX)}
    c.that(after == before, "%s: nothing written on g-8 (gina's request still pending; %s)" % (
        run, sorted(set(after.items()) ^ set(before.items()))))
    c.that(not c.mails, "%s: nobody mailed (%s)" % (run, [m["envelope_to"] for m in c.mails]))


def field(path: str, dotted: str) -> str:
    value = load(path)
    for part in dotted.split("."):
        value = value[part]
    return str(value)


def cleanup(path: str) -> None:
    if not os.path.exists(path):
        return
    conn = admin()
    state = load(path)
    resources = list(state["resources"].values())
    for resource in resources:
        if resource["kind"] == "server":
            conn.compute.delete_server(resource["id"], ignore_missing=True)
    for resource in resources:
        if resource["kind"] == "server":
            try:
                conn.compute.wait_for_delete(conn.compute.get_server(resource["id"]), wait=120, interval=1)
            except openstack.exceptions.SDKException:
                pass
    for resource in resources:
        try:
            if resource["kind"] == "volume":
                conn.block_storage.delete_volume(resource["id"], ignore_missing=True)
            elif resource["kind"] == "image":
                conn.image.delete_image(resource["id"], ignore_missing=True)
        except openstack.exceptions.SDKException as error:
            print("cleanup: %s" % error)
    time.sleep(2)
    for user in state["users"].values():
        conn.identity.delete_user(user["id"], ignore_missing=True)
    for project in state["projects"].values():
        conn.identity.delete_project(project["id"], ignore_missing=True)


def main() -> int:
    command, path = sys.argv[1], sys.argv[2]
    if command == "setup":
        setup(path)
    elif command == "enforce":
        enforce(path)
    elif command == "shift":
        shift(path, float(sys.argv[3]) if len(sys.argv) > 3 else SHIFT_DAYS)
    elif command == "plant":
        plant(path)
    elif command == "awx-before":
        awx_before(path)
    elif command == "bad-keys":
        bad_keys(path)
    elif command == "field":
        print(field(path, sys.argv[3]))
    elif command == "expect":
        return expect(path, sys.argv[3])
    elif command == "cleanup":
        cleanup(path)
    else:
        raise SystemExit(__doc__)
    return 0


if __name__ == "__main__":
    sys.exit(main())
