"""Paths, ports and small helpers shared by start/stop/status/seed."""
import json
import os
import socket
import sys
import time

PKG_DIR = os.path.dirname(os.path.abspath(__file__))
HERE = os.path.dirname(PKG_DIR)                       # hack/localcloud
REPO = os.path.dirname(os.path.dirname(HERE))
HOME = os.path.abspath(os.environ.get("OSOPS_LOCALCLOUD_HOME") or os.path.join(
    REPO, ".localcloud-libvirt" if os.environ.get("OSOPS_LOCALCLOUD_HYPERVISOR")
    == "libvirt" else ".localcloud"))
VENV = os.path.join(HOME, "venv")
BIN = os.path.join(VENV, "bin")
ETC = os.path.join(HOME, "etc")
RUN = os.path.join(HOME, "run")
LOG = os.path.join(HOME, "log")
STATE_FILE = os.path.join(HOME, "state.json")
# libvirt mode: an Ansible inventory of the computes (group "compute"), for
# imagecache_rollout and the tests
COMPUTES_INVENTORY = os.path.join(HOME, "computes.yml")
CLOUDS_YAML = os.path.join(HOME, "clouds.yaml")
# the AMQP URL of the cloud's RabbitMQ, for readers of the services' notifications
NOTIFICATIONS_URL_FILE = os.path.join(HOME, "notifications.url")
TEMPLATES = os.path.join(HERE, "etc")

_DEFAULT_PORTS = {
    "mariadb": 13306,
    "rabbitmq": 5672,
    "rabbitmq_dist": 25672,
    "epmd": 4369,
    "keystone": 5000,
    "glance": 9292,
    "placement": 8778,
    "nova": 8774,
    "neutron": 9696,
    "cinder": 8776,
}
# Each port can be moved with OSOPS_LOCALCLOUD_PORT_<NAME>, e.g.
# OSOPS_LOCALCLOUD_PORT_KEYSTONE=15000.
PORTS = {k: int(os.environ.get("OSOPS_LOCALCLOUD_PORT_" + k.upper(), v))
         for k, v in _DEFAULT_PORTS.items()}

ADMIN_PASSWORD = os.environ.get("OSOPS_LOCALCLOUD_ADMIN_PASSWORD",
                                "localcloud-admin")
SERVICE_PASSWORD = "localcloud-service"
DB_USER = "osops"
DB_PASSWORD = "localcloud-db"
DB_SOCKET = os.path.join(HOME, "mysql", "mysqld.sock")
DATABASES = ["keystone", "glance", "placement", "nova_api", "nova_cell0",
             "nova_cell1", "neutron", "cinder"]
REGION = "RegionOne"
AUTH_URL = "http://127.0.0.1:%d/v3" % PORTS["keystone"]
# nova-compute's virt driver (OSOPS_LOCALCLOUD_HYPERVISOR): "fake" (the default:
# no guests, fast) or "libvirt" (QEMU/TCG guests through libvirtd, which start
# runs; needs the Debian packages in apt-packages-libvirt.txt)
HYPERVISOR = os.environ.get("OSOPS_LOCALCLOUD_HYPERVISOR", "fake")
if HYPERVISOR not in ("fake", "libvirt"):
    sys.exit("OSOPS_LOCALCLOUD_HYPERVISOR must be fake or libvirt, not %r"
             % HYPERVISOR)
# fake nova-compute hosts (OSOPS_LOCALCLOUD_COMPUTES, default 2; each ~140 MiB);
# libvirt mode defaults to 4: two with an instances_path of their own, and a
# pair sharing one (the way an NFS-backed _base is shared)
COMPUTE_HOSTS = ["localcloud-cpu%d" % (i + 1) for i in range(
    int(os.environ.get("OSOPS_LOCALCLOUD_COMPUTES",
                       "4" if HYPERVISOR == "libvirt" else "2")))]
# libvirt mode: one loop-mounted ext4 stands for the NFS export that holds both
# Glance's store and Nova's instances directories (hard links need one
# filesystem); the export's image file lives in HOME
EXPORT = os.path.join(HOME, "export")
EXPORT_IMAGE = os.path.join(HOME, "export.ext4")
EXPORT_SIZE = os.environ.get("OSOPS_LOCALCLOUD_EXPORT_SIZE", "8G")
# the last two computes share one instances_path when there are three or more
SHARED_HOSTS = COMPUTE_HOSTS[-2:] if HYPERVISOR == "libvirt" and len(
    COMPUTE_HOSTS) >= 3 else []


# computes with [DEFAULT] force_raw_images = False (Nova keeps qcow2 downloads
# as qcow2 in _base): the second one; the others keep Nova's default (True)
QCOW2_BASE_HOSTS = COMPUTE_HOSTS[1:2] if HYPERVISOR == "libvirt" else []


def instances_dir(host):
    """Nova's instances_path of a compute (its _base is <this>/_base)."""
    if HYPERVISOR == "fake":
        return os.path.join(HOME, "nova", host, "instances")
    return os.path.join(EXPORT, "nova", "shared" if host in SHARED_HOSTS
                        else host, "instances")


def glance_images_dir():
    return os.path.join(EXPORT if HYPERVISOR == "libvirt" else HOME,
                        "glance", "images")


def libvirt_dir(host):
    """A compute's libvirtd keeps its run, lib, log and cache dirs here (bind
    mounted over /run/libvirt, ... in its own mount namespace)."""
    return os.path.join(HOME, "libvirt", host)


def libvirt_uri(host):
    return "qemu:///system?socket=%s" % os.path.join(
        libvirt_dir(host), "run", "libvirt-sock")


def db_url():
    return "mysql+pymysql://%s:%s@127.0.0.1:%d" % (
        DB_USER, DB_PASSWORD, PORTS["mariadb"])


def rabbit_url():
    return "rabbit://guest:guest@127.0.0.1:%d/" % PORTS["rabbitmq"]


def amqp_url():
    """The same broker as an AMQP URL (what aio-pika and other AMQP clients take)."""
    return "amqp" + rabbit_url()[len("rabbit"):]


def log(msg):
    print("[localcloud %s] %s" % (time.strftime("%H:%M:%S"), msg),
          flush=True)


def die(msg, code=1):
    print("[localcloud] ERROR: %s" % msg, file=sys.stderr, flush=True)
    sys.exit(code)


def tcp_open(port, host="127.0.0.1", timeout=0.5):
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def load_state():
    try:
        with open(STATE_FILE) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def save_state(**kw):
    st = load_state()
    st.update(kw)
    tmp = STATE_FILE + ".tmp"
    with open(tmp, "w") as f:
        json.dump(st, f, indent=2, sort_keys=True)
    os.replace(tmp, STATE_FILE)


def tail(path, n=40):
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - 200 * n))
            lines = f.read().decode("utf-8", "replace").splitlines()
        return "\n".join(lines[-n:])
    except OSError as e:
        return "(no log: %s)" % e


def clean_os_env():
    """Drop OS_* variables: with OS_CLOUD set openstacksdk merges that cloud
    into every connection (trap: 401). Keep only our clouds.yaml."""
    for k in list(os.environ):
        if k.startswith("OS_"):
            del os.environ[k]
    os.environ["OS_CLIENT_CONFIG_FILE"] = CLOUDS_YAML


def connect(cloud="admin", **kw):
    clean_os_env()
    import openstack
    return openstack.connect(cloud=cloud, **kw)
