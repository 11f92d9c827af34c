# SPDX-License-Identifier: GPL-3.0-or-later
"""The lease reaper's soft actions on real guests (libvirt/QEMU computes of the local cloud), issue 14.

  python3 soft_actions.py --config integration_config.json --work DIR [--rows row,row]

An owner (a member, not an admin) has servers in two projects whose leases expired after they were
told. lease_reap stops the servers of one project and shelves (offloads) those of the other, locking
both (lock_servers). Each row checks Nova's view and the hypervisor's: the libvirt domain's state
on the compute the server ran on (virsh domstate), or that the domain is gone once offloaded. Then
the owner tries what owners do, and the lease is extended two ways (an operator's resource_lease,
a request the next lease_reap run handles); afterwards the owner can start or unshelve again.
"""

from __future__ import annotations

import os
import sys
import time
import uuid
from dataclasses import dataclass, field

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "setup_libvirtcloud"))
from libvirtcloud import Cloud, check, module_result, run_rows, start_module  # noqa: E402

LOCK_PREFIX = "osops.lifecycle: lease expired"
POLICY = {"milestones_days": [14, 7, 1], "grace_days": 0.0001, "lifetime_days": 30, "max_lease_days": 90,
          "max_extensions": 1}
GRACE_SECONDS = 10  # 0.0001 days is 8.6 s


@dataclass
class Shared:
    tag: str = field(default_factory=lambda: "soft" + uuid.uuid4().hex[:5])
    owner: object = None          # an SDK connection as the owner
    projects: dict = field(default_factory=dict)
    servers: dict = field(default_factory=dict)   # label -> server (admin's view)
    hosts: dict = field(default_factory=dict)     # label -> compute it ran on
    made: list = field(default_factory=list)      # (kind, id) for cleanup


def lease_module(cloud: Cloud, module: str, label: str, **args) -> dict:
    args = dict(POLICY, cloud="admin", seal_key_file=cloud.config["lease_seal_key_file"], **args)
    result = module_result(start_module(cloud.work, module, args, label))
    check(not result.get("failed"), "%s %s failed: %s" % (module, label, result.get("msg")))
    return result


def server(cloud: Cloud, shared: Shared, label: str):
    return cloud.conn.compute.get_server(shared.servers[label].id)


def domain_state(cloud: Cloud, shared: Shared, label: str) -> str:
    """The libvirt domain's state on the compute the server ran on ('' when there is no such domain)."""
    srv = server(cloud, shared, label)
    host = cloud.computes[shared.hosts[label]]
    return cloud.virsh(host, "domstate", srv.instance_name)


def expect_domain(cloud: Cloud, shared: Shared, label: str, state: str, when: str) -> None:
    """The libvirt domain is in ``state`` ('' for no domain); read once, named in the failure."""
    seen = domain_state(cloud, shared, label)
    check(seen == state, "%s %s: the domain on %s is %r, not %r" % (label, when, shared.hosts[label], seen, state))


def refused(call) -> str:
    """'' if the owner's call went through, else Nova's answer."""
    try:
        call()
    except Exception as error:  # the SDK's HTTP errors: the answer is the point
        return str(error).split("\n", maxsplit=1)[0][:160]
    return ""


def row_setup(cloud: Cloud, shared: Shared) -> str:
    """An owner with an e-mail address, member of two projects, boots three guests as themself."""
    admin = cloud.conn
    user = admin.identity.create_user(name=shared.tag + "-owner", password=shared.tag + "-pw", domain_id="default",
                                      email=shared.tag + "@example.org")
    shared.made.append(("user", user.id))
    member = admin.identity.find_role("member")
    for name in ("stop", "shelve"):
        project = admin.identity.create_project(name="%s-%s" % (shared.tag, name), domain_id="default")
        shared.projects[name] = project
        shared.made.append(("project", project.id))
        admin.identity.assign_project_role_to_user(project, user, member)
    shared.owner = {name: cloud.connect_as(user.name, shared.tag + "-pw", project.name)
                    for name, project in shared.projects.items()}
    image = admin.image.find_image("localcloud-tiny")
    flavor = cloud.flavor()
    for label, project in (("stopped", "stop"), ("request", "stop"), ("shelved", "shelve")):
        made = shared.owner[project].compute.create_server(name="%s-%s" % (shared.tag, label), flavor_id=flavor.id,
                                                           image_id=image.id, networks="none")
        shared.servers[label] = made
    for label in shared.servers:
        shared.servers[label] = admin.compute.wait_for_server(
            server(cloud, shared, label), status="ACTIVE", failures=["ERROR"], wait=300, interval=1)
        shared.hosts[label] = shared.servers[label].compute_host
        expect_domain(cloud, shared, label, "running", "after booting")
    return "3 guests running on %s" % ", ".join(sorted(set(shared.hosts.values())))


def row_reap_stops_shelves_and_locks(cloud: Cloud, shared: Shared) -> str:
    """Leases expired two days ago, owners told: lease_reap stops one project's servers and shelves (offloads)
    the other's, and locks them; the hypervisor agrees (domain shut off; domain gone when offloaded)."""
    two_days_ago = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 2 * 86400))
    resources = [{"kind": "server", "id": s.id} for s in shared.servers.values()]
    lease_module(cloud, "resource_lease", "expire", resources=resources, expires=two_days_ago)
    lease_module(cloud, "resource_lease", "told", resources=resources, state="notified", milestone_days=1)
    time.sleep(GRACE_SECONDS)
    results = {}
    for project, action in (("stop", "stop"), ("shelve", "shelve")):
        results[project] = lease_module(
            cloud, "lease_reap", "reap-" + project, reap=True, server_action=action, lock_servers=True,
            projects=[shared.projects[project].name], max_remove_percent=100, audit_log=os.path.join(
                cloud.work, "audit.jsonl"))
    done = {r["id"]: r["done"] for result in results.values() for r in result["removed"] if r["outcome"] == "removed"}
    for label, expected in (("stopped", "stopped and locked"), ("request", "stopped and locked"),
                            ("shelved", "shelved and locked")):
        check(done.get(shared.servers[label].id) == expected, "%s: lease_reap did %r, not %r (%s)" % (
            label, done.get(shared.servers[label].id), expected, results))
    for label in ("stopped", "request"):
        srv = server(cloud, shared, label)
        check(srv.status == "SHUTOFF" and srv.is_locked and srv.locked_reason.startswith(LOCK_PREFIX),
              "%s: Nova says %s, locked %s (%s)" % (label, srv.status, srv.is_locked, srv.locked_reason))
        expect_domain(cloud, shared, label, "shut off", "after lease_reap")
    srv = cloud.conn.compute.wait_for_server(server(cloud, shared, "shelved"), status="SHELVED_OFFLOADED", wait=120,
                                             interval=1)
    check(srv.is_locked, "the shelved server is not locked")
    expect_domain(cloud, shared, "shelved", "", "once offloaded")
    return "2 SHUTOFF (domain shut off), 1 SHELVED_OFFLOADED (domain gone), all 3 locked"


def row_owner_is_held_and_rerun_converges(cloud: Cloud, shared: Shared) -> str:
    """While locked the owner can neither start, unshelve, unlock nor ask by metadata; a re-run changes nothing."""
    owner = shared.owner
    stopped, shelved = shared.servers["stopped"].id, shared.servers["shelved"].id
    attempts = {
        "start": refused(lambda: owner["stop"].compute.start_server(stopped)),
        "metadata request": refused(lambda: owner["stop"].compute.set_server_metadata(stopped, lease_extend="7")),
        "unlock": refused(lambda: owner["stop"].compute.unlock_server(stopped)),
        "unshelve": refused(lambda: owner["shelve"].compute.unshelve_server(shelved)),
    }
    let_through = [what for what, answer in attempts.items() if not answer]
    check(not let_through, "the owner could %s a locked server" % ", ".join(let_through))
    again = lease_module(cloud, "lease_reap", "reap-again", reap=True, server_action="stop", lock_servers=True,
                         projects=[p.name for p in shared.projects.values()], max_remove_percent=100)
    check(not again["changed"] and not again["removed"], "the re-run changed something: %s" % again["removed"])
    expect_domain(cloud, shared, "stopped", "shut off", "after the re-run")
    return "owner refused 4 times (%s); re-run: nothing removed" % attempts["start"][:60]


def row_extension_unlocks_and_owner_restarts(cloud: Cloud, shared: Shared) -> str:
    """An operator's extension (resource_lease) of both. The stopped server's lease is written and it is unlocked;
    the owner starts it. Nova takes no metadata on a shelved server, even an admin's: its lease is left as it is
    (frozen) but it is unlocked; the owner unshelves it and asks for the extension by metadata, which the next
    lease_reap run grants instead of shelving it again. Both guests run again."""
    extended = lease_module(cloud, "resource_lease", "extend", state="extended", extend_days=7, as_operator=True,
                            resources=[{"kind": "server", "id": shared.servers[label].id}
                                       for label in ("stopped", "shelved")])
    outcomes = {r["id"]: (r["outcome"], r.get("unlock")) for r in extended["resources"]}
    for label, expected in (("stopped", ("extended", "unlocked")), ("shelved", ("frozen", "unlocked"))):
        check(outcomes[shared.servers[label].id] == expected, "%s: resource_lease gave %s, not %s" % (
            label, outcomes[shared.servers[label].id], expected))
        check(not server(cloud, shared, label).is_locked, "%s is still locked" % label)
    owner = shared.owner
    owner["stop"].compute.start_server(shared.servers["stopped"].id)
    owner["shelve"].compute.unshelve_server(shared.servers["shelved"].id)
    for label in ("stopped", "shelved"):
        srv = cloud.conn.compute.wait_for_server(server(cloud, shared, label), status="ACTIVE", failures=["ERROR"],
                                                 wait=300, interval=1)
        shared.hosts[label] = srv.compute_host  # an unshelved server may land elsewhere
    shelved = shared.servers["shelved"].id
    asked = refused(lambda: owner["shelve"].compute.set_server_metadata(shelved, lease_extend="7"))
    check(not asked, "the owner could not ask for an extension of the unshelved server: %s" % asked)
    again = lease_module(cloud, "lease_reap", "reap-after-unshelve", reap=True, server_action="shelve",
                         lock_servers=True, projects=[shared.projects["shelve"].name], max_remove_percent=100)
    granted = [r for r in again["requests"] if r["id"] == shared.servers["shelved"].id]
    check(granted and granted[0]["granted"] and not again["removed"], "the request was not granted before the reaper "
          "acted: requests %s, removed %s" % (again["requests"], again["removed"]))
    for label in ("stopped", "shelved"):
        expect_domain(cloud, shared, label, "running", "after the owner's restart")
    return "stopped: extended+unlocked, started; shelved: frozen+unlocked, unshelved, request granted; both running"


def row_request_unlocks_on_next_run(cloud: Cloud, shared: Shared) -> str:
    """A request the operator writes for the owner (metadata, as admin: the owner cannot while it is locked) is
    handled by the next lease_reap run, which then unlocks the server; the owner starts it."""
    label = "request"
    cloud.conn.compute.set_server_metadata(shared.servers[label].id, lease_extend="7")
    result = lease_module(cloud, "lease_reap", "handle-request", projects=[shared.projects["stop"].name])
    mine = [u for u in result["unlocked"] if u["id"] == shared.servers[label].id]
    check([u["outcome"] for u in mine] == ["unlocked"], "the run did not unlock it: %s" % result["unlocked"])
    check(not server(cloud, shared, label).is_locked, "still locked")
    shared.owner["stop"].compute.start_server(shared.servers[label].id)
    cloud.conn.compute.wait_for_server(server(cloud, shared, label), status="ACTIVE", failures=["ERROR"], wait=300,
                                       interval=1)
    expect_domain(cloud, shared, label, "running", "after the owner's start")
    return "request handled, unlocked, started by the owner: domain running"


def cleanup(cloud: Cloud, shared: Shared) -> None:
    for srv in shared.servers.values():
        try:
            cloud.conn.compute.unlock_server(srv.id)
            cloud.conn.compute.delete_server(srv.id)
            cloud.conn.compute.wait_for_delete(srv, wait=120, interval=1)
        except Exception:  # pylint: disable=broad-except
            pass
    for kind, rid in reversed(shared.made):
        try:
            getattr(cloud.conn.identity, "delete_" + kind)(rid)
        except Exception:  # pylint: disable=broad-except
            pass


ROWS = (row_setup, row_reap_stops_shelves_and_locks, row_owner_is_held_and_rerun_converges,
        row_extension_unlocks_and_owner_restarts, row_request_unlocks_on_next_run)


if __name__ == "__main__":
    sys.exit(run_rows(ROWS, Shared, cleanup))
