"""Seed the running local cloud with a realistic estate (idempotent).

One domain with several projects, users with and without e-mail (one
disabled), admin/member/reader roles, images of several disk formats,
visibilities and states, a project network, servers spread over projects and
users (created as those users, so user_id is right), volumes (some attached),
volume snapshots. Writes clouds.yaml: `admin` plus one cloud per user
(name = user name, scoped to the user's first project). Re-running creates
only what is missing; a larger --servers adds servers.
"""
import argparse
import concurrent.futures as cf
import sys
import time

from . import common
from . import images

DOMAIN = "osops-lab"
PROJECTS = {
    "lab-alpha": "Alpha team: web front ends",
    "lab-beta": "Beta team: data pipelines",
    "lab-gamma": "Gamma team: CI runners",
    "lab-archive": "Archived experiments",
}
# name: (email or None, enabled, [(project, role), ...])
USERS = {
    "alice": ("alice@example.org", True,
              [("lab-alpha", "admin"), ("lab-beta", "member")]),
    "bob": ("bob@example.org", True, [("lab-alpha", "member")]),
    "carol": ("carol@example.org", True,
              [("lab-beta", "member"), ("lab-gamma", "member")]),
    "dave": (None, True, [("lab-gamma", "member")]),            # no e-mail
    "erin": ("erin@example.org", False, [("lab-beta", "member")]),  # disabled
    "frank": ("frank@example.org", True,
              [("lab-archive", "member"), ("lab-alpha", "reader")]),
}
# who creates servers/volumes in which project (enabled members only)
CREATORS = [("alice", "lab-alpha"), ("bob", "lab-alpha"),
            ("alice", "lab-beta"), ("carol", "lab-beta"),
            ("carol", "lab-gamma"), ("dave", "lab-gamma"),
            ("frank", "lab-archive")]
# name: (owner project or None for admin, disk_format, visibility, state)
IMAGES = {
    "lab-cirros-raw": (None, "raw", "public", "active"),
    "lab-debian-qcow2": (None, "qcow2", "public", "active"),
    "lab-rescue-iso": (None, "iso", "public", "active"),
    "lab-alpha-golden": ("lab-alpha", "qcow2", "private", "active"),
    "lab-alpha-old": ("lab-alpha", "qcow2", "private", "deactivated"),
    "lab-beta-shared": ("lab-beta", "raw", "shared", "active"),
    "lab-gamma-community": ("lab-gamma", "qcow2", "community", "active"),
    "lab-gamma-installer": ("lab-gamma", "iso", "private", "active"),
    "lab-beta-pending": ("lab-beta", "qcow2", "private", "queued"),
    "lab-archive-2019": ("lab-archive", "raw", "private", "deactivated"),
}


def password(user):
    return "%s-localcloud" % user


def parse(argv):
    p = argparse.ArgumentParser(prog="hack/localcloud/seed",
                                description=__doc__.split("\n", maxsplit=1)[0])
    p.add_argument("--servers", type=int, default=14,
                   help="total lab servers wanted (default 14; e.g. 300 "
                        "for benchmarks)")
    p.add_argument("--volumes", type=int, default=8,
                   help="total lab volumes wanted (default 8)")
    p.add_argument("--attached", type=int, default=3,
                   help="how many of the volumes to attach (default 3)")
    p.add_argument("--snapshots", type=int, default=3,
                   help="how many volumes get a snapshot (default 3)")
    p.add_argument("--workers", type=int, default=6,
                   help="parallel API calls (default 6)")
    return p.parse_args(argv)


def log(msg, t0):
    print("[seed %5.1fs] %s" % (time.time() - t0, msg), flush=True)


def main(argv=None):
    args = parse(argv)
    t0 = time.time()
    admin = common.connect("admin")
    idn = admin.identity

    # ---- identity
    domain = idn.find_domain(DOMAIN)
    if domain is None:
        domain = idn.create_domain(name=DOMAIN,
                                   description="osops lab estate")
    projects = {}
    for name, desc in PROJECTS.items():
        projects[name] = (idn.find_project(name, domain_id=domain.id)
                          or idn.create_project(name=name, description=desc,
                                                domain_id=domain.id))
    roles = {r: idn.find_role(r) for r in ("admin", "member", "reader")}
    users = {}
    for name, (email, enabled, grants) in USERS.items():
        u = idn.find_user(name, domain_id=domain.id)
        attrs = {"email": email} if email else {}
        if u is None:
            u = idn.create_user(name=name, domain_id=domain.id,
                                password=password(name), is_enabled=enabled,
                                default_project_id=projects[grants[0][0]].id,
                                description="lab user %s" % name, **attrs)
        elif u.is_enabled != enabled:
            u = idn.update_user(u, is_enabled=enabled)
        users[name] = u
        for proj, role in grants:
            idn.assign_project_role_to_user(projects[proj], u, roles[role])
    log("identity: domain %s, %d projects, %d users" % (
        DOMAIN, len(projects), len(users)), t0)
    write_clouds(domain)

    conns = {}

    def conn_for(user, project):
        key = (user, project)
        if key not in conns:
            import openstack
            conns[key] = openstack.connect(
                auth_url=common.AUTH_URL, username=user,
                password=password(user), user_domain_name=DOMAIN,
                project_name=project, project_domain_name=DOMAIN,
                region_name=common.REGION, identity_api_version=3)
        return conns[key]

    # ---- images
    existing = {i.name: i for i in admin.image.images()}
    for name, (owner, fmt, vis, state) in IMAGES.items():
        img = existing.get(name)
        owner_id = projects[owner].id if owner else None
        if img is None:
            kw = dict(name=name, disk_format=fmt, container_format="bare",
                      visibility=vis, allow_duplicates=True,
                      os_distro="debian" if "debian" in name else "other")
            if owner_id:
                kw["owner"] = owner_id
            if state == "queued":
                img = admin.image.create_image(**kw)
            else:
                data = {"raw": images.raw, "qcow2": images.qcow2,
                        "iso": images.iso}[fmt]()
                img = admin.image.create_image(data=data, **kw)
            img = admin.image.get_image(img.id)
        if state == "deactivated" and img.status == "active":
            admin.image.deactivate_image(img)
        if vis == "shared":
            member = projects["lab-alpha"].id
            if admin.image.find_member(member, img) is None:
                admin.image.add_member(img, member_id=member)
            # the member project accepts the share
            conn_for("alice", "lab-alpha").image.update_member(
                member, img, status="accepted")
    log("images: %d (raw, qcow2, iso; public, private, shared, community; "
        "active, deactivated, queued)" % len(IMAGES), t0)

    # ---- network of one project (servers use the shared localcloud-net)
    alpha = conn_for("alice", "lab-alpha")
    net = alpha.network.find_network("lab-alpha-net")
    if net is None:
        net = alpha.network.create_network(name="lab-alpha-net")
        alpha.network.create_subnet(name="lab-alpha-subnet",
                                    network_id=net.id, ip_version=4,
                                    cidr="198.19.0.0/24",
                                    is_dhcp_enabled=False)
    shared_net = admin.network.find_network("localcloud-net")
    flavors = [admin.compute.find_flavor(f) for f in ("m1.nano", "m1.tiny")]
    boot_image = admin.image.find_image("lab-cirros-raw")

    # ---- servers
    have = {s.name: s for s in admin.compute.servers(all_projects=True)
            if s.name.startswith("lab-")}
    broken = [s for s in have.values() if s.status == "ERROR"]
    for s in broken:            # left by an interrupted run: boot again
        admin.compute.delete_server(s)
        del have[s.name]
    for s in broken:
        admin.compute.wait_for_delete(s, wait=120, interval=1)
    todo = []
    for i in range(args.servers):
        user, proj = CREATORS[i % len(CREATORS)]
        name = "%s-%s-vm%03d" % (proj, user, i)
        if name not in have:
            todo.append((i, user, proj, name))
    # sign in every creator once before the threads start
    for user, proj in {(u, p) for _kind, u, p, _rest in todo}:
        conn_for(user, proj).authorize()

    def boot(item):
        i, user, proj, name = item
        c = conn_for(user, proj)
        nets = [{"uuid": net.id if proj == "lab-alpha" and i % 2
                 else shared_net.id}]
        return c.compute.create_server(
            name=name, flavor_id=flavors[i % 2].id, image_id=boot_image.id,
            networks=nets,
            metadata={"purpose": ("web", "batch", "ci")[i % 3],
                      "team": proj})
    if todo:
        with cf.ThreadPoolExecutor(args.workers) as ex:
            list(ex.map(boot, todo))
        log("servers: %d requested" % len(todo), t0)
    wait_servers(admin, args.servers, t0)
    have = {s.name: s for s in admin.compute.servers(all_projects=True)
            if s.name.startswith("lab-")}
    # one server stopped, for variety
    stopped = sorted(n for n in have if n.startswith("lab-gamma"))[:1]
    for n in stopped:
        if have[n].status == "ACTIVE":
            admin.compute.stop_server(have[n])

    # ---- volumes, attachments, snapshots
    vols = {v.name: v for v in admin.block_storage.volumes(all_projects=True)
            if v.name and v.name.startswith("lab-")}
    wanted = []
    for i in range(args.volumes):
        user, proj = CREATORS[i % len(CREATORS)]
        wanted.append((i, user, proj, "%s-%s-vol%02d" % (proj, user, i)))
    for i, user, proj, name in wanted:
        if name not in vols:
            vols[name] = conn_for(user, proj).block_storage.create_volume(
                name=name, size=1 + i % 3, description="lab volume",
                metadata={"team": proj})
    for v in vols.values():
        if v.status not in ("available", "in-use"):
            admin.block_storage.wait_for_status(
                v, "available", wait=120, interval=1, failures=["error"])
    attached = 0
    by_name = {s.name: s for s in have.values()}
    for i, user, proj, name in wanted[:args.attached]:
        v = admin.block_storage.get_volume(vols[name].id)
        srv = next((s for n, s in sorted(by_name.items())
                    if n.startswith("%s-%s-" % (proj, user))
                    and s.status == "ACTIVE"), None)
        if srv is None:
            continue
        if v.status == "available" and not v.attachments:
            conn_for(user, proj).compute.create_volume_attachment(
                srv, volume_id=v.id)
            admin.block_storage.wait_for_status(v, "in-use", wait=120,
                                                interval=1)
        attached += 1
    snaps = {s.name for s in admin.block_storage.snapshots(all_projects=True)
             if s.name}
    snapped = 0
    for i, user, proj, name in wanted[-args.snapshots:] \
            if args.snapshots else []:
        sname = name + "-snap"
        if sname not in snaps:
            s = conn_for(user, proj).block_storage.create_snapshot(
                volume_id=vols[name].id, name=sname, force=True,
                description="lab snapshot", metadata={"team": proj})
            admin.block_storage.wait_for_status(s, "available", wait=120,
                                                interval=1)
        snapped += 1
    log("volumes: %d, attached: %d, snapshots: %d" % (
        len(wanted), attached, snapped), t0)
    log("done; clouds: %s" % common.CLOUDS_YAML, t0)
    return 0


def wait_servers(admin, n, t0, timeout=1800):
    """Poll cheaply: a detailed list of hundreds of servers costs Nova and
    Neutron a second of CPU each time; the status-filtered short list does
    not."""
    deadline = time.time() + timeout
    while True:
        building = list(admin.compute.servers(
            details=False, all_projects=True, status="BUILD", name="^lab-"))
        errors = list(admin.compute.servers(
            details=False, all_projects=True, status="ERROR", name="^lab-"))
        if errors:
            raise SystemExit("seed: servers in ERROR: %s (fault: %s)" % (
                ", ".join(s.name for s in errors[:5]),
                admin.compute.get_server(errors[0].id).fault))
        if not building:
            log("servers: none building", t0)
            return
        if time.time() > deadline:
            raise SystemExit("seed: %d servers still BUILD" % len(building))
        time.sleep(3)


def write_clouds(domain):
    import os
    import yaml
    try:
        with open(common.CLOUDS_YAML) as f:
            data = yaml.safe_load(f) or {}
    except OSError:
        data = {}
    clouds = data.setdefault("clouds", {})
    for name, (_email, _enabled, grants) in USERS.items():
        clouds[name] = {
            "auth": {"auth_url": common.AUTH_URL, "username": name,
                     "password": password(name),
                     "project_name": grants[0][0],
                     "user_domain_name": DOMAIN,
                     "project_domain_name": DOMAIN},
            "region_name": common.REGION,
            "identity_api_version": 3,
            "interface": "public",
        }
    tmp = common.CLOUDS_YAML + ".tmp"
    with open(tmp, "w") as f:
        yaml.safe_dump(data, f, default_flow_style=False, sort_keys=True)
    os.replace(tmp, common.CLOUDS_YAML)


if __name__ == "__main__":
    sys.exit(main())
