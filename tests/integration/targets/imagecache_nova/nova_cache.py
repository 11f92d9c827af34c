# SPDX-License-Identifier: GPL-3.0-or-later
"""The image cache against a real Nova (libvirt/QEMU computes of the local cloud), issue 14.

  python3 nova_cache.py --config integration_config.json --work DIR [--rows row,row]

Witnesses are what an operator would look at: Glance's access log (every
``GET /v2/images/<id>/file`` is a download), the instance disk's qcow2 header
(``qemu-img info``), the guest's qemu process (its open files in /proc), the
directory entries of ``_base`` (lstat: a regular file that is Glance's inode)
and Nova's own image cache manager (it runs every 10 s in the local cloud;
files are aged with utime instead of waiting for its minimum age).

The local cloud's computes (``computes.yml``): cpu1 and cpu2 have their own
instances_path, cpu3 and cpu4 share one; cpu2 has ``force_raw_images = False``.
All are on one loop-mounted ext4 that also holds Glance's store (the NFS
export). Rows run in order (later rows use earlier rows' servers and images);
every row runs, a table shows PASS/FAIL with the reason, exit 1 if any failed.

IMAGECACHE_NOVA_IMPOSTOR=cp|symlink replaces the rollout's link step by a plain
copy or a symlink into ``_base`` (to show that the rows catch it).
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "setup_libvirtcloud"))
from libvirtcloud import Cloud, RowFailed, check, log, module_result, run_rows, sha1_hex, start_module  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
AGED = 2 * 3600          # older than Nova's minimum age in the local cloud (300 s)
PASS_TIMEOUT = 120       # Nova's manager runs every 10 s; a pass over four computes


def rollout(cloud: Cloud, name: str, images: list | None, limit: str = "compute", check_mode: bool = False,
            **variables) -> dict:
    """imagecache_rollout over the computes; returns each host's imagecache_result."""
    out = os.path.join(cloud.work, "results-" + name)
    os.makedirs(out, exist_ok=True)
    extra = dict(variables, imagecache_result_dir=out)
    if images is not None:
        extra["imagecache_images"] = [cloud.conn.image.get_image(i).to_dict(computed=False) for i in images]
    impostor = os.environ.get("IMAGECACHE_NOVA_IMPOSTOR")
    if impostor:
        extra["imagecache_nova_impostor"] = impostor
    vars_file = os.path.join(cloud.work, "vars-%s.json" % name)
    with open(vars_file, "w") as handle:
        json.dump(extra, handle)
    command = ["ansible-playbook", "-i", cloud.inventory, "--limit", limit, "-e", "@" + vars_file]
    command += ["--check"] if check_mode else []
    command.append(os.path.join(HERE, "impostor.yml" if impostor else "rollout.yml"))
    done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=600)
    with open(os.path.join(cloud.work, "ansible-%s.log" % name), "w") as handle:
        handle.write(done.stdout + done.stderr)
    check(done.returncode == 0, "rollout %s failed (rc %d): %s" % (name, done.returncode, done.stdout[-1500:]))
    results = {}
    for host in os.listdir(out):
        with open(os.path.join(out, host)) as handle:
            results[host[:-len(".json")]] = json.load(handle)
    return results


def wait_for_manager_pass(cloud: Cloud, bases: list) -> None:
    """Wait until Nova's image cache manager has made a full pass over each _base.

    A pass removes an aged base file that no instance uses: a sentinel named like a base
    file (40 hex digits) shows it. Two sentinels in a row, so the second pass started after
    everything the caller aged."""
    for _round in range(2):
        sentinels = []
        for base in sorted(set(bases)):
            os.makedirs(base, exist_ok=True)
            path = os.path.join(base, sha1_hex(uuid.uuid4().hex))
            with open(path, "wb") as handle:
                handle.write(b"sentinel")
            os.utime(path, (time.time() - AGED, time.time() - AGED))
            sentinels.append(path)
        deadline = time.time() + PASS_TIMEOUT
        while any(os.path.exists(p) for p in sentinels):
            check(time.time() < deadline, "Nova's image cache manager made no pass within %d s over %s" % (
                PASS_TIMEOUT, [p for p in sentinels if os.path.exists(p)]))
            time.sleep(1)


# --- what the rows share ---------------------------------------------------------------

def is_our_link(path: str, glance_file: str) -> str:
    """'' if the _base entry is a regular file that is Glance's inode, else why not."""
    try:
        entry = os.lstat(path)
    except FileNotFoundError:
        return "%s does not exist" % path
    if not stat.S_ISREG(entry.st_mode):
        return "%s is not a regular file (mode %o)" % (path, entry.st_mode)
    source = os.stat(glance_file)
    if (entry.st_dev, entry.st_ino) != (source.st_dev, source.st_ino):
        return "%s is not a hard link of Glance's %s (inode %d, Glance's %d)" % (
            path, glance_file, entry.st_ino, source.st_ino)
    return ""


def age(paths: list) -> None:
    for path in paths:
        if os.path.exists(path):
            os.utime(path, (time.time() - AGED, time.time() - AGED))


def base_of(cloud: Cloud, host: str, image_id: str) -> str:
    return os.path.join(cloud.computes[host].base, sha1_hex(image_id))


# --- rows ------------------------------------------------------------------------------

@dataclass
class Shared:
    """Images and servers made by earlier rows."""

    images: dict = field(default_factory=dict)
    servers: dict = field(default_factory=dict)   # label -> server


def row_zero_downloads(cloud: Cloud, shared: Shared) -> str:
    """Images linked by imagecache_rollout: a server boots on each compute with zero downloads from
    Glance, its disk is a qcow2 whose backing file is our link, and its qemu process has it open."""
    linked = cloud.make_image("linked")
    fresh = cloud.make_image("fresh")     # linked, used by nobody, kept fresh by the rollout (later row)
    dropped = cloud.make_image("dropped")  # linked, used by nobody, never refreshed (later row)
    shared.images.update(linked=linked, fresh=fresh, dropped=dropped)
    before = cloud.downloads()
    results = rollout(cloud, "link", [linked.id, fresh.id, dropped.id])
    for host in cloud.computes:
        for image in (linked, fresh, dropped):
            why = is_our_link(base_of(cloud, host, image.id), cloud.glance_file(image.id))
            check(not why, "after the rollout on %s: %s" % (host, why))
    check(all(not r["errors"] and not r["refused"] for r in results.values()), "rollout errors: %s" % results)
    servers = {host: cloud.boot("linked-" + host, linked.id, host) for host in cloud.computes}
    for host, server in servers.items():
        servers[host] = cloud.wait_active(server)
        check(servers[host].compute_host == host, "server for %s landed on %s" % (host, servers[host].compute_host))
    shared.servers.update(("linked-" + h, s) for h, s in servers.items())
    after = cloud.downloads()
    fetched = after.get(linked.id, (0, 0))[0] - before.get(linked.id, (0, 0))[0]
    check(fetched == 0, "Glance served the linked image %d times (expected 0)" % fetched)
    source = os.stat(cloud.glance_file(linked.id))
    for host, server in servers.items():
        disk = cloud.disk(server)
        base = base_of(cloud, host, linked.id)
        check(disk["format"] == "qcow2", "%s: instance disk is %s, not qcow2" % (host, disk["format"]))
        check(disk.get("full-backing-filename") == base, "%s: disk's backing file is %s, not %s" % (
            host, disk.get("full-backing-filename"), base))
        why = is_our_link(base, cloud.glance_file(linked.id))
        check(not why, "%s after boot: %s" % (host, why))
        check((source.st_dev, source.st_ino) in cloud.qemu_open_files(server),
              "%s: qemu of %s does not have the linked base file open" % (host, server.instance_name))
        state = cloud.domain_state(server)
        check(state == "running", "%s: domain %s is %r" % (host, server.instance_name, state))
    return "4 servers on 4 computes, 0 downloads; disks back onto the links, qemu holds Glance's inode"


def row_control_downloads_once(cloud: Cloud, shared: Shared) -> str:
    """The same kind of image, not linked: Nova downloads it (once per _base), the control case."""
    control = cloud.make_image("control")
    shared.images["control"] = control
    before = cloud.downloads().get(control.id, (0, 0))
    first = cloud.wait_active(cloud.boot("control-a", control.id, "localcloud-cpu1"))
    second = cloud.wait_active(cloud.boot("control-b", control.id, "localcloud-cpu1"))
    shared.servers.update({"control-a": first, "control-b": second})
    number, size = (a - b for a, b in zip(cloud.downloads().get(control.id, (0, 0)), before))
    check(number == 1, "Glance served the unlinked image %d times (expected 1)" % number)
    check(size == control.size, "Glance served %d bytes, the image has %d" % (size, control.size))
    base = base_of(cloud, "localcloud-cpu1", control.id)
    check(os.path.isfile(base) and is_our_link(base, cloud.glance_file(control.id)),
          "Nova's download should be a file of its own in _base: %s" % base)
    return "1 download of %d bytes for two servers; Nova's base file is its own copy" % size


def row_nova_cache_manager(cloud: Cloud, shared: Shared) -> str:
    """Nova's image cache manager (aged files) keeps linked base files that instances use and those
    the rollout keeps fresh, and removes what neither keeps; Glance's files survive it."""
    linked, fresh, dropped = (shared.images[k] for k in ("linked", "fresh", "dropped"))
    # the shared pair: only cpu4's server uses the image now; cpu3's manager must see it
    gone = shared.servers.pop("linked-localcloud-cpu3")
    cloud.conn.compute.delete_server(gone)
    cloud.conn.compute.wait_for_delete(gone, wait=120, interval=1)
    bases = {h: c.base for h, c in cloud.computes.items()}
    age([base_of(cloud, h, i.id) for h in bases for i in (linked, fresh, dropped)])
    # the rollout refreshes what it links (touch_interval shorter than the age)
    results = rollout(cloud, "refresh", [fresh.id], imagecache_touch_interval=60)
    check(all(not r["errors"] for r in results.values()), "refresh rollout errors: %s" % results)
    wait_for_manager_pass(cloud, list(bases.values()))
    problems = []
    for host in bases:
        for image, keep in ((linked, True), (fresh, True), (dropped, False)):
            path = base_of(cloud, host, image.id)
            why = is_our_link(path, cloud.glance_file(image.id))
            if keep and why:
                problems.append("%s: Nova removed or replaced %s's base file: %s" % (host, image.name, why))
            if not keep and os.path.exists(path):
                problems.append("%s: Nova kept %s's aged, unused base file" % (host, image.name))
    check(not problems, "; ".join(problems))
    for image in (linked, fresh, dropped):
        check(file_hash_value(cloud.glance_file(image.id)) == image.hash_value, "Glance's file of %s changed" % image.name)
    # Nova refreshed the mtime of what its instances use (through privsep)
    used = os.stat(base_of(cloud, "localcloud-cpu1", linked.id))
    check(time.time() - used.st_mtime < AGED / 2, "Nova did not touch the in-use base file")
    return "in use (cpu3 via cpu4's server) and refreshed kept, dropped removed on 4 computes; Glance intact"


def file_hash_value(path: str) -> str:
    """The os_hash_value Glance records (sha512 by default)."""
    digest = hashlib.sha512()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def row_prune_agrees(cloud: Cloud, shared: Shared) -> str:
    """Both images deleted in Glance: our prune and Nova's manager agree on what is in use."""
    linked, fresh = shared.images["linked"], shared.images["fresh"]
    for image in (linked, fresh):
        cloud.conn.image.delete_image(image.id)
    plan = rollout(cloud, "prune-plan", None, check_mode=True, imagecache_prune=True)
    ours = {}
    for host, result in plan.items():
        pruned = {e["base_name"] for e in result["pruned"]}
        kept = {e["base_name"] for e in result["kept"]}
        for image in (linked, fresh):
            name = sha1_hex(image.id)
            ours[(host, name)] = "kept" if name in kept else "pruned" if name in pruned else "absent"
    bases = [c.base for c in cloud.computes.values()]
    age([os.path.join(b, sha1_hex(i.id)) for b in bases for i in (linked, fresh)])
    wait_for_manager_pass(cloud, bases)
    nova = {key: "kept" if os.path.exists(os.path.join(cloud.computes[key[0]].base, key[1])) else "pruned"
            for key in ours}
    check(ours == nova, "our prune plan %s, Nova's manager %s" % (
        sorted(ours.items()), sorted(nova.items())))
    check(all(v == "kept" for (h, n), v in ours.items() if n == sha1_hex(linked.id)),
          "the in-use image's base file must stay everywhere: %s" % ours)
    # the servers still run on their base files, Glance's copy gone
    for label, server in shared.servers.items():
        if label.startswith("linked-"):
            check(cloud.domain_state(server) == "running", "%s is not running" % label)
    return "agree on 8 (host, base file) pairs: in use kept, unused removed"


def row_qcow2_force_raw(cloud: Cloud, shared: Shared) -> str:
    """qcow2 images: with the default formats the rollout skips them; on a compute with
    force_raw_images = False a linked qcow2 boots qcow2-on-qcow2 with zero downloads; on a
    force_raw_images = True compute Nova's own download is converted to raw."""
    image = cloud.make_image("qcow2", disk_format="qcow2")
    raw_free = [h for h, c in cloud.computes.items() if not c.force_raw]
    check(raw_free, "no compute with force_raw_images = False")
    default = rollout(cloud, "qcow2-default", [image.id])
    for host, result in default.items():
        check(image.id in {e["id"] for e in result["skipped_images"]}, "%s did not skip the qcow2 image" % host)
        check(not os.path.exists(base_of(cloud, host, image.id)), "%s linked a qcow2 by default" % host)
    rollout(cloud, "qcow2-allowed", [image.id], limit=",".join(raw_free), imagecache_formats=["raw", "iso", "qcow2"])
    before = cloud.downloads().get(image.id, (0, 0))[0]
    on_free = cloud.wait_active(cloud.boot("qcow2-linked", image.id, raw_free[0]))
    check(cloud.downloads().get(image.id, (0, 0))[0] == before, "the linked qcow2 was downloaded")
    disk = cloud.disk(on_free)
    base = base_of(cloud, raw_free[0], image.id)
    check(disk.get("full-backing-filename") == base and disk.get("backing-filename-format") == "qcow2",
          "%s: disk backs onto %s (%s), not the qcow2 link" % (
              raw_free[0], disk.get("full-backing-filename"), disk.get("backing-filename-format")))
    forced = next(h for h, c in cloud.computes.items() if c.force_raw and not c.shares_with)
    on_forced = cloud.wait_active(cloud.boot("qcow2-download", image.id, forced))
    shared.servers.update({"qcow2-linked": on_free, "qcow2-download": on_forced})
    check(cloud.downloads().get(image.id, (0, 0))[0] == before + 1, "the force_raw compute did not download once")
    info = json.loads(subprocess.run(["qemu-img", "info", "-U", "--output", "json", base_of(cloud, forced, image.id)],
                                     capture_output=True, text=True, check=True).stdout)
    check(info["format"] == "raw", "%s's own download is %s, not raw" % (forced, info["format"]))
    return "skipped by default; linked qcow2 boots on %s (backing qcow2, 0 downloads); %s converted its download to raw" % (
        raw_free[0], forced)


def link_now(cloud: Cloud, host: str, image, name: str) -> subprocess.Popen:
    """Start imagecache_link for one image on one compute at once (no ansible-playbook start-up)."""
    compute = cloud.computes[host]
    return start_module(cloud.work, "imagecache_link", {
        "images": [cloud.conn.image.get_image(image.id).to_dict(computed=False)], "source_dir": cloud.store,
        "cache_dir": compute.base, "instances_dir": compute.instances,
        "state_file": os.path.join(cloud.work, "state-%s.json" % host)}, name)


def whole_and_held(cloud: Cloud, image, base: str, servers: list) -> os.stat_result:
    """The base file is the image, complete, with no partial file beside it, and every guest's qemu
    holds the file that is in _base now (a replaced base file would leave one holding the old inode)."""
    entry = os.lstat(base)
    check(stat.S_ISREG(entry.st_mode) and entry.st_size == image.size, "base file is %o, %d bytes (image %d)" % (
        entry.st_mode, entry.st_size, image.size))
    check(file_hash_value(base) == image.hash_value, "the base file's content is not the image's")
    name = os.path.basename(base)
    leftovers = [n for n in os.listdir(os.path.dirname(base)) if n.startswith(name) and n != name]
    check(not leftovers, "partial files left in _base: %s" % leftovers)
    for server in servers:
        check((entry.st_dev, entry.st_ino) in cloud.qemu_open_files(server),
              "%s's qemu holds a base file that is no longer the one in _base (replaced)" % server.name)
    return entry


def row_concurrent_boots(cloud: Cloud, shared: Shared) -> str:
    """Servers boot at once from one image on the two computes that share a _base while the module
    links it: never a partial or replaced base file, Nova's lock honoured both ways.
    Nova first: the module starts while Nova downloads (its .part file exists, its lock held) and must
    wait, then leave Nova's file alone. Module first: the servers find the link and download nothing."""
    pair = [h for h, c in cloud.computes.items() if c.shares_with]
    check(len(pair) == 2, "no pair of computes sharing an instances_path")
    # Nova first (256 MiB: its download takes about 2 s here, the module starts in well under 1)
    for attempt in range(3):
        image = cloud.make_image("race-nova-%d" % attempt, mib=256)
        base = base_of(cloud, pair[0], image.id)
        servers = [cloud.boot("race-nova-%d" % n, image.id, pair[n % 2]) for n in range(2)]
        deadline = time.time() + 120
        while not os.path.exists(base + ".part") and not os.path.exists(base) and time.time() < deadline:
            time.sleep(0.005)
        if os.path.exists(base + ".part"):
            break
        log("Nova's download finished before it was seen; again with a new image")
    else:
        raise RowFailed("never saw Nova's download in progress in three attempts")
    started = time.time()
    result = module_result(link_now(cloud, pair[0], image, "race-nova"))
    waited = time.time() - started
    servers = [cloud.wait_active(s) for s in servers]
    check(not result.get("failed") and not result["errors"], "imagecache_link: %s" % result)
    check([e["id"] for e in result["skipped_images"]] == [image.id] and not result["linked"],
          "the module did not leave Nova's file alone: %s" % result)
    whole_and_held(cloud, image, base, servers)
    check(is_our_link(base, cloud.glance_file(image.id)) != "", "the base file became our link")
    nova_downloads = cloud.downloads().get(image.id, (0, 0))[0]
    check(nova_downloads == 1, "Nova downloaded %d times" % nova_downloads)
    # module first: start it and the boots together
    image = cloud.make_image("race-module", mib=256)
    base = base_of(cloud, pair[0], image.id)
    linking = link_now(cloud, pair[1], image, "race-module")
    servers = [cloud.boot("race-module-%d" % n, image.id, pair[n % 2]) for n in range(2)]
    result = module_result(linking)
    servers = [cloud.wait_active(s) for s in servers]
    check([e["id"] for e in result["linked"]] == [image.id], "the module did not link first: %s" % result)
    whole_and_held(cloud, image, base, servers)
    check(not is_our_link(base, cloud.glance_file(image.id)), "the base file is not our link")
    module_downloads = cloud.downloads().get(image.id, (0, 0))[0]
    check(module_downloads == 0, "Nova downloaded the linked image %d times" % module_downloads)
    return ("Nova first: the module waited %.1f s and left Nova's whole file (1 download); module first: "
            "2 guests on our link, 0 downloads" % waited)


ROWS = (row_zero_downloads, row_control_downloads_once, row_nova_cache_manager, row_prune_agrees,
        row_qcow2_force_raw, row_concurrent_boots)

if __name__ == "__main__":
    sys.exit(run_rows(ROWS, Shared))
