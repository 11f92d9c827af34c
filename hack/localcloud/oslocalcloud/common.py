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
CLOUDS_YAML = os.path.join(HOME, "clouds.yaml")
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
LIBVIRT_URI = "qemu:///system"
# fake nova-compute hosts (OSOPS_LOCALCLOUD_COMPUTES, default 2; each ~140 MiB)
COMPUTE_HOSTS = ["localcloud-cpu%d" % (i + 1) for i in range(
    int(os.environ.get("OSOPS_LOCALCLOUD_COMPUTES",
                       "1" if HYPERVISOR == "libvirt" else "2")))]
if HYPERVISOR == "libvirt" and len(COMPUTE_HOSTS) != 1:
    # libvirt names Nova's node after its host name: a second compute needs a
    # libvirtd of its own (UTS and mount namespaces), not built yet
    sys.exit("OSOPS_LOCALCLOUD_HYPERVISOR=libvirt runs one compute for now, "
             "not OSOPS_LOCALCLOUD_COMPUTES=%d" % len(COMPUTE_HOSTS))


def db_url():
    return "mysql+pymysql://%s:%s@127.0.0.1:%d" % (
        DB_USER, DB_PASSWORD, PORTS["mariadb"])


def rabbit_url():
    return "rabbit://guest:guest@127.0.0.1:%d/" % PORTS["rabbitmq"]


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
