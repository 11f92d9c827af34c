# SPDX-License-Identifier: GPL-3.0-or-later
"""Benchmark: seeding Nova's image cache with N images, and re-running with nothing to do.

Side by side on the same store, each into its own empty cache directory:
  original  the original cron approach: one ln, chown and chmod process per image
  bare      a bare Python loop of os.link/os.chown/os.chmod/os.utime (the practical limit)
  locked    the bare loop, plus creating and locking Nova's lock file of each base file, as Nova's
            own download does and the module must (creating 10,000 files dominates a first run)
  module    imagecache_link's logic (cache_run.run, as the module calls it)
  ansible   the module run by ansible (one task on localhost), for the no-op re-run

Run:  . hack/lib.sh && enter_dev_env && python bench/imagecache.py [--images 10000]
Prints median seconds and ratios; see docs/performance.md.

Boot mode (``--boot``): time from ``server create`` to ACTIVE for one server on each compute of the
libvirt local cloud (OSOPS_LOCALCLOUD_HYPERVISOR=libvirt hack/localcloud/start), side by side:
  empty     a fresh image nobody linked: each compute's Nova downloads it from Glance (the baseline)
  linked    a fresh image of the same size, linked by imagecache_link on every compute first
Alternating rounds (--rounds); prints the medians, the ratio and the bytes Glance served in each case
(its access log), and the local cloud's memory with the guests running.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, ".venv", "collections"))

from ansible_collections.osops.lifecycle.plugins.module_utils._imagecache.cache_run import Options, run  # noqa: E402
from ansible_collections.osops.lifecycle.plugins.module_utils._imagecache.plan import Wanted  # noqa: E402

OWNER = "nobody" if os.getuid() == 0 else str(os.getuid())
UID = int(subprocess.check_output(["id", "-u", OWNER]).strip()) if OWNER == "nobody" else os.getuid()


def make_store(root: str, count: int) -> list[dict]:
    store = os.path.join(root, "glance", "images")
    os.makedirs(store)
    images = []
    block = bytes(4096)
    for index in range(count):
        image_id = "%08x-0000-4000-8000-%012x" % (index, index)
        with open(os.path.join(store, image_id), "wb") as handle:
            handle.write(block)
        images.append({"id": image_id, "status": "active", "size": 4096, "disk_format": "raw"})
    return images


def original(store: str, cache: str, images: list[dict]) -> None:
    for image in images:
        name = hashlib.sha1(image["id"].encode()).hexdigest()
        dst = os.path.join(cache, name)
        subprocess.run(["ln", os.path.join(store, image["id"]), dst], stderr=subprocess.DEVNULL, check=False)
        subprocess.run(["chown", OWNER, dst], check=False)
        subprocess.run(["chmod", "0644", dst], check=False)


def bare_link(store: str, cache: str, image_id: str, name: str) -> None:
    """One image the bare way: link by path, then owner, mode and time by path."""
    dst = os.path.join(cache, name)
    try:
        os.link(os.path.join(store, image_id), dst)
    except FileExistsError:
        pass
    os.chown(dst, UID, -1)
    os.chmod(dst, 0o644)
    os.utime(dst, None)


def bare(store: str, cache: str, images: list[dict]) -> None:
    for image in images:
        bare_link(store, cache, image["id"], hashlib.sha1(image["id"].encode()).hexdigest())


def bare_locked(store: str, cache: str, images: list[dict]) -> None:
    locks = os.path.join(os.path.dirname(cache), "locks")
    os.makedirs(locks, exist_ok=True)
    for image in images:
        name = hashlib.sha1(image["id"].encode()).hexdigest()
        lock = os.open(os.path.join(locks, "nova-" + name), os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.lockf(lock, fcntl.LOCK_EX)
        bare_link(store, cache, image["id"], name)
        os.close(lock)


def module(store: str, cache: str, images: list[dict], state: str) -> dict:
    options = Options(
        source_dir=store, cache_dir=cache, instances_dir=os.path.dirname(cache), state_file=state,
        wanted=Wanted(uid=UID, gid=None, mode=0o644, touch=True, touch_interval=3600,
                      formats=frozenset(("raw", "iso")), verify_hash=False),
        fallback="fail", prune=False, check_mode=False,
    )
    result = run(options, images).result()
    assert not result["errors"] and not result["refused"], (result["errors"][:3], result["refused"][:3])
    return result["counts"]


def via_ansible(store: str, cache: str, images_file: str, state: str) -> dict:
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=os.path.join(REPO, ".venv", "collections"))
    args = json.dumps({"images": "{{ lookup('file', '%s') | from_json }}" % images_file, "source_dir": store,
                       "cache_dir": cache, "owner": OWNER, "state_file": state})
    out = subprocess.run(
        ["ansible", "localhost", "-m", "osops.lifecycle.imagecache_link", "-a", args, "-o"],
        env=env, capture_output=True, text=True, check=True,
    ).stdout
    return json.loads(out.split("=>", 1)[1])["counts"]


def boot_round(cloud, mib: int, linked: bool, label: str) -> dict:
    """Boot one server per compute from a fresh image (linked everywhere first, or not); time to all ACTIVE."""
    from libvirtcloud import module_result, start_module  # pylint: disable=import-outside-toplevel
    image = cloud.make_image("bench-%s" % label, mib=mib)
    link_seconds = 0.0
    if linked:
        started = time.perf_counter()
        runs = [start_module(cloud.work, "imagecache_link", {
            "images": [cloud.conn.image.get_image(image.id).to_dict(computed=False)], "source_dir": cloud.store,
            "cache_dir": compute.base, "instances_dir": compute.instances, "create_cache_dir": True,
            "state_file": os.path.join(cloud.work, "state-%s.json" % host)}, "%s-%s" % (label, host))
            for host, compute in cloud.computes.items()]
        for result in map(module_result, runs):
            assert not result.get("failed") and not result["errors"], result
        link_seconds = time.perf_counter() - started
    before = cloud.downloads().get(image.id, (0, 0))
    started = time.perf_counter()
    servers = [cloud.boot("bench-%s-%d" % (label, n), image.id, host) for n, host in enumerate(cloud.computes)]
    servers = [cloud.wait_active(server) for server in servers]
    seconds = time.perf_counter() - started
    after = cloud.downloads().get(image.id, (0, 0))
    status = subprocess.run([os.path.join(REPO, "hack", "localcloud", "status"), "--json"], capture_output=True,
                            text=True, check=False, env=dict(os.environ, OSOPS_LOCALCLOUD_HYPERVISOR="libvirt",
                                                             OSOPS_LOCALCLOUD_HOME=cloud.home)).stdout
    memory = json.loads(status.strip().splitlines()[-1]) if status.strip() else {}
    for server in servers:
        cloud.conn.compute.delete_server(server)
    for server in servers:
        cloud.conn.compute.wait_for_delete(server, wait=120, interval=1)
    cloud.conn.image.delete_image(image.id)
    return {"seconds": seconds, "link_seconds": link_seconds, "downloads": after[0] - before[0],
            "bytes": after[1] - before[1], "pss_mib": memory.get("pss_mib"), "servers": len(servers)}


def boot_mode(args) -> int:
    home = os.environ.get("OSOPS_LOCALCLOUD_HOME") or os.path.join(REPO, ".localcloud-libvirt")
    sys.path.insert(0, os.path.join(REPO, "tests", "integration", "targets", "setup_libvirtcloud"))
    from libvirtcloud import load_cloud  # pylint: disable=import-outside-toplevel
    work = tempfile.mkdtemp(prefix="osops-bench-boot-", dir=args.dir)
    cloud = load_cloud({"libvirtcloud_home": home, "libvirtcloud_clouds_yaml": os.path.join(home, "clouds.yaml"),
                        "libvirtcloud_computes": os.path.join(home, "computes.yml")}, work)
    print("boot benchmark: %d computes, one %d MiB raw image per case and round, %d rounds; baseline = empty cache"
          % (len(cloud.computes), args.boot_mib, args.rounds))
    results: dict = {"empty": [], "linked": []}
    try:
        for number in range(args.rounds):
            order = ("empty", "linked") if number % 2 == 0 else ("linked", "empty")
            for case in order:
                results[case].append(boot_round(cloud, args.boot_mib, case == "linked", "%s%d" % (case, number)))
                last = results[case][-1]
                print("  round %d %-6s %6.1f s to %d ACTIVE, %d downloads, %5.0f MiB from Glance%s" % (
                    number + 1, case, last["seconds"], last["servers"], last["downloads"], last["bytes"] / 2**20,
                    "" if case == "empty" else " (linking took %.2f s)" % last["link_seconds"]))
    finally:
        cloud.cleanup()
        shutil.rmtree(work, ignore_errors=True)
    empty = statistics.median(r["seconds"] for r in results["empty"])
    linked = statistics.median(r["seconds"] for r in results["linked"])
    print("%-8s %16s %14s %18s %12s" % ("", "s to all ACTIVE", "downloads", "MiB from Glance", "PSS MiB"))
    for case in ("empty", "linked"):
        rows = results[case]
        print("%-8s %16.1f %14.0f %18.0f %12s" % (
            case, statistics.median(r["seconds"] for r in rows), statistics.median(r["downloads"] for r in rows),
            statistics.median(r["bytes"] for r in rows) / 2**20, max(r["pss_mib"] or 0 for r in rows)))
    print("ratio: empty/linked %.2fx (the linked cache boots that much faster); linking itself took %.2f s"
          % (empty / linked, statistics.median(r["link_seconds"] for r in results["linked"])))
    return 0


def timed(func, *args) -> float:
    started = time.perf_counter()
    func(*args)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--images", type=int, default=10000)
    parser.add_argument("--repeat", type=int, default=3, help="no-op re-runs per approach (median shown)")
    parser.add_argument("--dir", help="where to make the store and caches (default: the temp dir; /dev/shm "
                                      "takes the disk's noise out of the first run, which creates 40,000 files)")
    parser.add_argument("--boot", action="store_true", help="boot mode: servers on the libvirt local cloud")
    parser.add_argument("--boot-mib", type=int, default=256, help="boot mode: image size (raw)")
    parser.add_argument("--rounds", type=int, default=3, help="boot mode: rounds of each case (median shown)")
    args = parser.parse_args()
    if args.boot:
        return boot_mode(args)

    root = tempfile.mkdtemp(prefix="osops-bench-imagecache-", dir=args.dir)
    try:
        images = make_store(root, args.images)
        store = os.path.join(root, "glance", "images")
        images_file = os.path.join(root, "images.json")
        with open(images_file, "w") as handle:
            json.dump(images, handle)
        caches = {name: os.path.join(root, name, "_base") for name in ("original", "bare", "locked", "module")}
        for cache in caches.values():
            os.makedirs(cache)
        state = os.path.join(root, "state.json")

        print("image cache benchmark: %d images of 4 KiB in %s, baseline = original cron approach "
              "(ln + chown + chmod processes per image)" % (args.images, root))
        first = {
            "original": timed(original, store, caches["original"], images),
            "bare": timed(bare, store, caches["bare"], images),
            "locked": timed(bare_locked, store, caches["locked"], images),
            "module": timed(module, store, caches["module"], images, state),
        }
        again = {
            "original": statistics.median(timed(original, store, caches["original"], images) for _run in range(args.repeat)),
            "bare": statistics.median(timed(bare, store, caches["bare"], images) for _run in range(args.repeat)),
            "locked": statistics.median(timed(bare_locked, store, caches["locked"], images) for _run in range(args.repeat)),
            "module": statistics.median(timed(module, store, caches["module"], images, state) for _run in range(args.repeat)),
        }
        counts = module(store, caches["module"], images, state)
        assert counts["already_linked"] == args.images and counts["linked"] == 0, counts
        for cache in caches.values():
            assert len(os.listdir(cache)) == args.images
        ansible_noop = statistics.median(timed(via_ansible, store, caches["module"], images_file, state)
                                         for _run in range(args.repeat))

        print("%-10s %12s %14s" % ("", "first run s", "no-op re-run s"))
        for name in ("original", "bare", "locked", "module"):
            print("%-10s %12.3f %14.3f" % (name, first[name], again[name]))
        print("%-10s %12s %14.3f   (whole ansible run: start-up, module transfer, %d-image argument)"
              % ("ansible", "", ansible_noop, args.images))
        print("ratios: module/bare first %.2fx, no-op %.2fx (targets <= 3x, <= 1.2x)"
              % (first["module"] / first["bare"], again["module"] / again["bare"]))
        print("        module/locked first %.2fx, no-op %.2fx (the bare loop with Nova's locks)"
              % (first["module"] / first["locked"], again["module"] / again["locked"]))
        print("        original/module first %.0fx, no-op %.0fx (target >= 50x)"
              % (first["original"] / first["module"], again["original"] / again["module"]))
        print("        module no-op re-run %.3f s for %d images (target < 1 s)" % (again["module"], args.images))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
