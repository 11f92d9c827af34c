# SPDX-License-Identifier: GPL-3.0-or-later
"""The libvirt local cloud as integration targets see it (targets aliased ``libvirtcloud``).

Shared by imagecache_nova and lease_soft_actions: an SDK connection, the computes of
``computes.yml`` (their instances_path, _base, libvirt socket), Glance's access log as a download
counter, guests' qemu processes and libvirt domain states, modules started directly, and a table
of rows (each PASS/FAIL with its reason; exit 1 if any failed).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import stat
import subprocess
import sys
import time
import traceback
import uuid
from dataclasses import dataclass, field

HERE = os.path.dirname(os.path.abspath(__file__))
DOWNLOAD = re.compile(r'"GET /v2/images/([0-9a-f-]{36})/file HTTP/[0-9.]+" (\d{3}) (\d+|-)')
FLAVOR = "osops-tiny-64"  # 64 MiB guests


def sha1_hex(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def log(msg: str) -> None:
    print("[%s %s] %s" % (os.path.basename(sys.argv[0]), time.strftime("%H:%M:%S"), msg), flush=True)


class RowFailed(Exception):
    pass


def check(condition: bool, what: str) -> None:
    if not condition:
        raise RowFailed(what)


@dataclass
class Compute:
    name: str
    instances: str
    base: str
    libvirt_run: str
    libvirt_uri: str
    force_raw: bool
    shares_with: list


@dataclass
class Cloud:
    """The local cloud as the rows see it: SDK connection, computes, logs."""

    conn: object
    home: str
    inventory: str
    store: str
    computes: dict
    work: str
    config: dict
    made_images: list = field(default_factory=list)
    made_servers: list = field(default_factory=list)

    # --- Glance -----------------------------------------------------------------------
    def downloads(self) -> dict:
        """image id -> (downloads, bytes) from Glance's access log."""
        counts: dict = {}
        with open(os.path.join(self.home, "log", "glance.log"), errors="replace") as handle:
            for line in handle:
                match = DOWNLOAD.search(line)
                if match and match.group(2) in ("200", "206"):
                    number, size = counts.get(match.group(1), (0, 0))
                    counts[match.group(1)] = (number + 1, size + int(match.group(3).replace("-", "0")))
        return counts

    def make_image(self, label: str, disk_format: str = "raw", mib: int = 4) -> object:
        raw = os.path.join(self.work, label + ".raw")
        with open(raw, "wb") as handle:
            # a few MiB that need not boot an OS: a marker at the start, random bytes after
            handle.write(("osops imagecache_nova %s\n" % label).encode().ljust(512, b"\0"))
            handle.write(os.urandom(mib * 1024 * 1024 - 512))
        path = raw
        if disk_format == "qcow2":
            path = os.path.join(self.work, label + ".qcow2")
            subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", raw, path], check=True)
        image = self.conn.image.create_image(
            name="osops-it-%s-%s" % (label, uuid.uuid4().hex[:6]), filename=path,
            disk_format=disk_format, container_format="bare", visibility="public", wait=True)
        self.made_images.append(image.id)
        return self.conn.image.get_image(image.id)

    def glance_file(self, image_id: str) -> str:
        return os.path.join(self.store, image_id)

    # --- Nova -------------------------------------------------------------------------
    def flavor(self) -> object:
        found = self.conn.compute.find_flavor(FLAVOR)
        return found or self.conn.compute.create_flavor(name=FLAVOR, ram=64, vcpus=1, disk=1)

    def boot(self, label: str, image_id: str, host: str) -> object:
        server = self.conn.compute.create_server(
            name="osops-it-%s" % label, flavor_id=self.flavor().id, image_id=image_id,
            networks="none", availability_zone="nova:" + host)
        self.made_servers.append(server.id)
        return server

    def wait_active(self, server) -> object:
        return self.conn.compute.wait_for_server(server, status="ACTIVE", failures=["ERROR"], wait=300, interval=1)

    def disk(self, server) -> dict:
        host = self.computes[server.compute_host]
        path = os.path.join(host.instances, server.id, "disk")
        done = subprocess.run(["qemu-img", "info", "-U", "--output", "json", path], capture_output=True,
                              text=True, check=True)
        return json.loads(done.stdout)

    def qemu_open_files(self, server) -> list:
        """(dev, ino) of every regular file the guest's qemu process has open."""
        host = self.computes[server.compute_host]
        with open(os.path.join(host.libvirt_run, "qemu", server.instance_name + ".pid")) as handle:
            pid = int(handle.read().strip())
        opened = []
        for fd in os.listdir("/proc/%d/fd" % pid):
            try:
                st = os.stat("/proc/%d/fd/%s" % (pid, fd))
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode):
                opened.append((st.st_dev, st.st_ino))
        return opened

    @staticmethod
    def virsh(compute: Compute, *args: str) -> str:
        """What virsh says on that compute's libvirtd ('' when it fails, e.g. no such domain)."""
        done = subprocess.run(["virsh", "-c", compute.libvirt_uri] + list(args), capture_output=True, text=True,
                              check=False)
        return done.stdout.strip() if done.returncode == 0 else ""

    def domain_state(self, server) -> str:
        return self.virsh(self.computes[server.compute_host], "domstate", server.instance_name)

    def connect_as(self, user: str, password: str, project: str):
        """An SDK connection as a (non-admin) user of a project."""
        import openstack  # the dev environment's openstacksdk
        auth = dict(self.conn.config.config["auth"], username=user, password=password, project_name=project,
                    user_domain_name="Default", project_domain_name="Default")
        auth.pop("project_id", None)
        return openstack.connect(auth=auth, region_name=self.conn.config.region_name)

    def cleanup(self) -> None:
        for server_id in self.made_servers:
            try:
                self.conn.compute.delete_server(server_id, force=False)
            except Exception:  # gone already
                pass
        for server_id in self.made_servers:
            try:
                self.conn.compute.wait_for_delete(self.conn.compute.get_server(server_id), wait=120, interval=1)
            except Exception:
                pass
        for image_id in self.made_images:
            try:
                self.conn.image.delete_image(image_id, ignore_missing=True)
            except Exception:
                pass


def load_cloud(config: dict, work: str) -> Cloud:
    os.environ["OS_CLIENT_CONFIG_FILE"] = config["libvirtcloud_clouds_yaml"]
    for key in [k for k in os.environ if k.startswith("OS_") and k != "OS_CLIENT_CONFIG_FILE"]:
        del os.environ[key]
    import openstack  # the dev environment's openstacksdk
    conn = openstack.connect(cloud="admin")
    with open(config["libvirtcloud_computes"]) as handle:
        hosts = json.load(handle)["all"]["children"]["compute"]["hosts"]
    computes = {}
    store = None
    for name, hv in hosts.items():
        uri = hv["localcloud_libvirt_uri"]
        computes[name] = Compute(name=name, instances=hv["imagecache_instances_dir"], base=hv["imagecache_cache_dir"],
                                 libvirt_run=os.path.dirname(uri.split("socket=", 1)[1]), libvirt_uri=uri,
                                 force_raw=hv["localcloud_force_raw_images"],
                                 shares_with=hv["localcloud_shares_instances_with"])
        store = hv["imagecache_source_dir"]
    return Cloud(conn=conn, config=config, home=config["libvirtcloud_home"], inventory=config["libvirtcloud_computes"],
                 store=store, computes=computes, work=work)


def collections_root() -> str:
    """Where ansible_collections/osops/lifecycle is (the target's tree, or the dev environment's)."""
    path = HERE
    while path != "/":
        if os.path.basename(path) == "ansible_collections":
            return os.path.dirname(path)
        path = os.path.dirname(path)
    return os.environ["ANSIBLE_COLLECTIONS_PATH"].split(":")[0]


def start_module(work: str, module: str, args: dict, label: str) -> subprocess.Popen:
    """Start one of the collection's modules directly (no ansible-playbook start-up); see module_result()."""
    path = os.path.join(work, "args-%s.json" % label)
    with open(path, "w") as handle:
        json.dump({"ANSIBLE_MODULE_ARGS": args}, handle)
    env = dict(os.environ, PYTHONPATH=collections_root())
    return subprocess.Popen([sys.executable, "-m", "ansible_collections.osops.lifecycle.plugins.modules." + module, path],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def module_result(process: subprocess.Popen) -> dict:
    out, err = process.communicate(timeout=300)
    try:
        return json.loads(out[out.index("{"):])
    except ValueError:
        raise RowFailed("the module crashed: %s %s" % (out[-800:], err[-800:])) from None


def run_rows(rows: tuple, make_shared, cleanup=None) -> int:
    """Run the rows in order (later rows may use what earlier ones made: ``make_shared()``), print the table."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", required=True)
    parser.add_argument("--work", required=True)
    parser.add_argument("--rows", default="")
    parser.add_argument("--keep", action="store_true", help="leave servers and images for a look")
    args = parser.parse_args()
    with open(args.config) as handle:
        config = json.load(handle)
    os.makedirs(args.work, exist_ok=True)
    cloud = load_cloud(config, args.work)
    wanted = [r for r in args.rows.split(",") if r]
    shared = make_shared()
    table = []
    try:
        for row in rows:
            name = row.__name__[len("row_"):]
            if wanted and name not in wanted:
                continue
            started = time.time()
            log("row %s" % name)
            try:
                table.append((name, "PASS", row(cloud, shared)))
            except RowFailed as failure:
                table.append((name, "FAIL", str(failure)))
            except Exception:  # a crash is a failed row; the others still run
                table.append((name, "FAIL", traceback.format_exc(limit=4)))
            log("%s %s (%.0f s): %s" % (name, table[-1][1], time.time() - started, table[-1][2]))
    finally:
        if not args.keep:
            if cleanup is not None:
                cleanup(cloud, shared)
            cloud.cleanup()
    width = max(len(r[0]) for r in table) if table else 0
    print("\n".join("%-*s  %s  %s" % (width, n, s, why) for n, s, why in table))
    with open(os.path.join(args.work, "summary.json"), "w") as handle:
        json.dump(table, handle, indent=2)
    if not table:
        print("no rows ran")
        return 1
    return 0 if all(s == "PASS" for _n, s, _w in table) else 1
