"""start / stop / status of the local cloud. Run through hack/localcloud/*."""
import argparse
import concurrent.futures as cf
import os
import shlex
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

from . import common
from . import procs
from .common import BIN, ETC, HOME, PORTS, log

GUNICORN_OPTS = ["--workers", "1", "--threads", "4",
                 "--worker-class", "gthread",
                 # the 2 s default races with openstacksdk's connection
                 # reuse while it polls: sporadic RemoteDisconnected
                 "--keep-alive", "75",
                 # gunicorn 27 makes a control socket under ~/.gunicorn/
                 "--no-control-socket",
                 # nova asks neutron for the ports of many servers in one
                 # GET: longer than gunicorn's 4094-byte request line limit
                 "--limit-request-line", "0",
                 "--limit-request-field_size", "0",
                 "--timeout", "300", "--graceful-timeout", "5"]

API_URLS = {
    "keystone": "http://127.0.0.1:%d/v3" % PORTS["keystone"],
    "glance": "http://127.0.0.1:%d/" % PORTS["glance"],
    "placement": "http://127.0.0.1:%d/" % PORTS["placement"],
    "nova-api": "http://127.0.0.1:%d/" % PORTS["nova"],
    "neutron": "http://127.0.0.1:%d/" % PORTS["neutron"],
    "cinder-api": "http://127.0.0.1:%d/" % PORTS["cinder"],
}

INFRA = ["mariadb", "epmd", "rabbitmq"]
# libvirt mode: the hypervisor's daemons, ours (PID files, logs) like the rest
HYPERVISOR_DAEMONS = ([d + "-" + h for h in common.COMPUTE_HOSTS
                       for d in ("virtlogd", "libvirtd")]
                      if common.HYPERVISOR == "libvirt" else [])
APIS = list(API_URLS)
WORKERS = (["nova-conductor", "nova-scheduler"]
           + ["nova-compute-" + h for h in common.COMPUTE_HOSTS]
           + ["cinder-scheduler", "cinder-volume"])
ALL = INFRA + HYPERVISOR_DAEMONS + APIS + WORKERS

MARKERS = os.path.join(HOME, "mysql", "markers")   # wiped with the datadir


class StartError(Exception):
    def __init__(self, service, msg, log=None):
        super().__init__("%s: %s" % (service, msg))
        self.service = service
        self.log = log or procs.logfile(service)


# ---------------------------------------------------------------- config

def glance_mode():
    mode = os.environ.get("OSOPS_LOCALCLOUD_GLANCE", "single")
    if mode not in ("single", "multi"):
        common.die("OSOPS_LOCALCLOUD_GLANCE must be single or multi")
    return mode


def cinder_backend():
    """LVM needs device-mapper in the kernel; fall back to the fake driver
    shipped in the cinder wheel. Returns (backend, reason)."""
    try:
        misc = open("/proc/misc").read()
    except OSError:
        misc = ""
    # /proc/misc is what counts: `dmsetup` creates /dev/mapper/control even
    # when the kernel has no device-mapper (then every dm call fails)
    dm = "device-mapper" in misc
    if not dm:
        return ("fake", "device-mapper is not available in this kernel "
                "(/proc/misc lists no device-mapper; dmsetup fails): LVM "
                "cannot create logical volumes on the loop device, so Cinder "
                "uses cinder.tests.fake_driver.FakeLoggingVolumeDriver")
    return ("fake", "device-mapper is present, but the LVM backend (loop "
            "device + target helper + rootwrap) is not implemented by "
            "hack/localcloud yet: Cinder uses FakeLoggingVolumeDriver")


def hypervisor_values():
    """nova-compute's driver and its sections: the fake driver, or libvirt
    with QEMU/TCG guests (no KVM needed)."""
    if common.HYPERVISOR == "fake":
        return {"COMPUTE_DRIVER": "fake.FakeDriverWithoutFakeNodes",
                "HYPERVISOR_SECTIONS": ""}
    return {"COMPUTE_DRIVER": "libvirt.LibvirtDriver",
            "HYPERVISOR_SECTIONS": "\n".join([
                "[libvirt]",
                "virt_type = qemu",
                "cpu_mode = none",
                "live_migration_scheme = tcp",
                "",
                "[serial_console]",
                "enabled = false",
                "",
                # Nova's own cleanup of _base, every 10 s instead of 40 min;
                # unused files go once older than 5 minutes instead of a day
                # (tests age files with utime rather than wait)
                "[image_cache]",
                "manager_interval = 10",
                "remove_unused_base_images = true",
                "remove_unused_original_minimum_age_seconds = 300",
                "remove_unused_resized_minimum_age_seconds = 300",
                "",
            ])}


def host_values(host):
    """What differs per compute: its instances_path; in libvirt mode its own
    libvirtd and Nova's privileged helper, run directly (we are root; no sudo
    and rootwrap) with the same config files as the compute."""
    values = {"HOST": host, "INSTANCES": common.instances_dir(host),
              "HOST_DEFAULTS": "", "HOST_SECTIONS": ""}
    if common.HYPERVISOR == "fake":
        return values
    # the test guests run no OS and never answer an ACPI shutdown: stop them
    # after 5 s, not after Nova's 60
    values["HOST_DEFAULTS"] = "shutdown_timeout = 5\n"
    if host in common.QCOW2_BASE_HOSTS:
        values["HOST_DEFAULTS"] += "force_raw_images = false\n"
    files = " ".join("--config-file " + conf("nova", name) for name in (
        "nova-compute.conf", "nova-compute-%s.conf" % host))
    values["HOST_SECTIONS"] = (
        "[libvirt]\nconnection_uri = %s\n\n"
        "[nova_sys_admin]\nhelper_command = %s %s\n" % (
            common.libvirt_uri(host), os.path.join(BIN, "privsep-helper"),
            files))
    return values


def render_configs():
    state = HOME
    mode = glance_mode()
    running_mode = common.load_state().get("glance_mode")
    if procs.running_pid("glance") and running_mode and running_mode != mode:
        log("WARNING: Glance runs %s-store, not %s: keeping it; stop and "
            "start to switch" % (running_mode, mode))
        mode = running_mode
    backend, reason = cinder_backend()
    authtoken = "\n".join([
        "www_authenticate_uri = " + common.AUTH_URL,
        "auth_url = " + common.AUTH_URL,
        "auth_type = password",
        "project_domain_name = Default",
        "user_domain_name = Default",
        "project_name = service",
        "service_token_roles_required = true",
    ])
    service_auth = "\n".join([
        "auth_url = " + common.AUTH_URL,
        "auth_type = password",
        "project_domain_name = Default",
        "user_domain_name = Default",
        "project_name = service",
        "region_name = " + common.REGION,
    ])
    images = common.glance_images_dir() + "/"
    if mode == "single":
        stores = ("[glance_store]\nstores = file,http\ndefault_store = file\n"
                  "filesystem_store_datadir = %s\n" % images)
        default_extra = ""
    else:
        stores = ("[glance_store]\ndefault_backend = fs\n\n"
                  "[fs]\nfilesystem_store_datadir = %s\n"
                  "store_description = local file store\n" % images)
        default_extra = "enabled_backends = fs:file"
    backend_section = (
        "[fake]\nvolume_driver = cinder.tests.fake_driver."
        "FakeLoggingVolumeDriver\nvolume_backend_name = fake\n")
    values = {
        "STATE": state, "ETC": ETC, "DB": common.db_url(),
        "RABBIT": common.rabbit_url(),
        "DEBUG": "true" if os.environ.get("OSOPS_LOCALCLOUD_DEBUG") else
        "false",
        "SERVICE_PASSWORD": common.SERVICE_PASSWORD,
        "AUTHTOKEN": authtoken, "SERVICE_AUTH": service_auth,
        "GLANCE_STORES": stores, "GLANCE_DEFAULT_EXTRA": default_extra,
        "CINDER_BACKEND": backend, "CINDER_BACKEND_SECTION": backend_section,
    }
    for k, v in PORTS.items():
        values["PORT_" + k.upper()] = str(v)
    values.update(hypervisor_values())

    def render(template, dest, extra=None):
        with open(os.path.join(common.TEMPLATES, template)) as f:
            text = f.read()
        vals = dict(values, **(extra or {}))
        for k, v in vals.items():
            text = text.replace("@@%s@@" % k, v)
        if "@@" in text:
            raise RuntimeError("unfilled placeholder in %s" % template)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        with open(dest, "w") as f:
            f.write(text)

    render("keystone.conf", os.path.join(ETC, "keystone", "keystone.conf"))
    render("glance-api.conf", os.path.join(ETC, "glance", "glance-api.conf"))
    render("placement.conf",
           os.path.join(ETC, "placement", "placement.conf"))
    render("nova.conf", os.path.join(ETC, "nova", "nova.conf"))
    render("nova-compute.conf", os.path.join(ETC, "nova",
                                             "nova-compute.conf"))
    for host in common.COMPUTE_HOSTS:
        render("nova-compute-host.conf",
               os.path.join(ETC, "nova", "nova-compute-%s.conf" % host),
               host_values(host))
        os.makedirs(os.path.join(state, "nova", host, "locks"), exist_ok=True)
        if common.HYPERVISOR == "libvirt":
            render("libvirt-qemu.conf", os.path.join(
                common.libvirt_dir(host), "qemu.conf"))
    render("neutron.conf", os.path.join(ETC, "neutron", "neutron.conf"))
    render("ml2_conf.ini", os.path.join(ETC, "neutron", "ml2_conf.ini"))
    render("cinder.conf", os.path.join(ETC, "cinder", "cinder.conf"))
    render("rabbitmq.conf", os.path.join(ETC, "rabbitmq", "rabbitmq.conf"))
    with open(os.path.join(ETC, "rabbitmq", "enabled_plugins"), "w") as f:
        f.write("[].\n")
    # api-paste files come from the virtualenv's etc/, and so does Cinder's
    # list of filters non-admin users may query by (without it a member's
    # `volume list --name x` is refused with 400)
    for svc, name in (("glance", "glance-api-paste.ini"),
                      ("nova", "api-paste.ini"),
                      ("neutron", "api-paste.ini"),
                      ("cinder", "api-paste.ini"),
                      ("cinder", "resource_filters.json")):
        shutil.copy(os.path.join(common.VENV, "etc", svc, name),
                    os.path.join(ETC, svc, name))
    for d in [common.glance_images_dir()] + [
            common.instances_dir(h) for h in common.COMPUTE_HOSTS]:
        os.makedirs(d, exist_ok=True)
    for d in ("glance/staging", "glance/tasks",
              "glance/image-cache", "nova/locks", "neutron/locks",
              "cinder/locks", "keystone", "rabbitmq/mnesia", "rabbitmq/log"):
        os.makedirs(os.path.join(state, d), exist_ok=True)
    common.save_state(glance_mode=mode, cinder_backend=backend,
                      hypervisor=common.HYPERVISOR,
                      cinder_backend_reason=reason, ports=PORTS)
    return mode, backend, reason


# ---------------------------------------------------------------- checks

def http_answers(url, timeout=3):
    try:
        urllib.request.urlopen(url, timeout=timeout).read()
        return True
    except urllib.error.HTTPError as e:
        return e.code < 500
    except Exception:
        return False


def wait_for(service, check, timeout, what="answer", interval=0.3):
    """Wait until check() is true; fail early if the process died."""
    deadline = time.time() + timeout
    while True:
        if check():
            return
        if procs.read_pidfile(service)[0] and not procs.running_pid(service):
            raise StartError(service, "process exited")
        if time.time() > deadline:
            raise StartError(service, "did not %s within %ss" % (
                what, timeout))
        time.sleep(interval)


def mysql_connect(db=None, root=False):
    import pymysql
    if root:
        return pymysql.connect(unix_socket=common.DB_SOCKET, user="root",
                               database=db, connect_timeout=2,
                               autocommit=True)
    return pymysql.connect(host="127.0.0.1", port=PORTS["mariadb"],
                           user=common.DB_USER, password=common.DB_PASSWORD,
                           database=db, connect_timeout=2, autocommit=True)


def mariadb_answers():
    try:
        mysql_connect(root=True).close()
        return True
    except Exception:
        return False


# ---------------------------------------------------------------- infra

def start_mariadb():
    if procs.running_pid("mariadb"):
        return
    data = os.path.join(HOME, "mysql", "data")
    if not os.path.isdir(os.path.join(data, "mysql")):
        log("initialising MariaDB datadir %s" % data)
        os.makedirs(data, exist_ok=True)
        shutil.rmtree(MARKERS, ignore_errors=True)
        r = subprocess.run(
            ["mariadb-install-db", "--no-defaults", "--datadir=" + data,
             "--user=root", "--auth-root-authentication-method=normal",
             "--skip-test-db"],
            stdout=open(procs.logfile("mariadb-install"), "ab"),
            stderr=subprocess.STDOUT, check=False)
        if r.returncode:
            raise StartError("mariadb", "mariadb-install-db failed",
                             procs.logfile("mariadb-install"))
    procs.spawn("mariadb", [
        "/usr/sbin/mariadbd", "--no-defaults", "--user=root",
        "--datadir=" + data, "--socket=" + common.DB_SOCKET,
        "--port=%d" % PORTS["mariadb"], "--bind-address=127.0.0.1",
        "--pid-file=" + os.path.join(HOME, "mysql", "mariadbd.pid"),
        "--skip-name-resolve", "--skip-log-bin", "--performance-schema=OFF",
        "--max-connections=1000", "--innodb-buffer-pool-size=128M",
        "--innodb-log-file-size=64M", "--innodb-flush-log-at-trx-commit=0",
        "--innodb-doublewrite=0", "--character-set-server=utf8mb4",
        "--collation-server=utf8mb4_general_ci", "--max-allowed-packet=64M",
        "--wait-timeout=28800", "--log-error=" + procs.logfile("mariadb"),
    ])


def setup_databases():
    conn = mysql_connect(root=True)
    with conn.cursor() as c:
        for db in common.DATABASES:
            c.execute("CREATE DATABASE IF NOT EXISTS %s "
                      "CHARACTER SET utf8mb4" % db)
        for host in ("127.0.0.1", "localhost"):
            c.execute("CREATE USER IF NOT EXISTS '%s'@'%s' IDENTIFIED BY "
                      "'%s'" % (common.DB_USER, host, common.DB_PASSWORD))
            c.execute("GRANT ALL PRIVILEGES ON *.* TO '%s'@'%s'" % (
                common.DB_USER, host))
    conn.close()


def start_rabbitmq():
    base = os.path.join(HOME, "rabbitmq")
    if not procs.running_pid("epmd") and not common.tcp_open(PORTS["epmd"]):
        procs.spawn("epmd", ["epmd", "-address", "127.0.0.1",
                             "-port", str(PORTS["epmd"])])
        wait_for("epmd", lambda: common.tcp_open(PORTS["epmd"]), 10)
    if procs.running_pid("rabbitmq"):
        return
    env = {
        "HOME": base,   # the Erlang cookie lands here
        "RABBITMQ_NODENAME": "rabbit@localhost",
        "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
        "RABBITMQ_NODE_PORT": str(PORTS["rabbitmq"]),
        "RABBITMQ_DIST_PORT": str(PORTS["rabbitmq_dist"]),
        "ERL_EPMD_ADDRESS": "127.0.0.1",
        "ERL_EPMD_PORT": str(PORTS["epmd"]),
        "RABBITMQ_CONFIG_FILE": os.path.join(ETC, "rabbitmq",
                                             "rabbitmq.conf"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": os.path.join(ETC, "rabbitmq",
                                                      "enabled_plugins"),
        "RABBITMQ_MNESIA_BASE": os.path.join(base, "mnesia"),
        "RABBITMQ_LOG_BASE": os.path.join(base, "log"),
        "RABBITMQ_PID_FILE": os.path.join(base, "rabbitmq.pid"),
        "RABBITMQ_LOGS": "-",
        # loopback only for Erlang distribution too; no busy-waiting
        # schedulers on a 2-core machine
        "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS":
            "-kernel inet_dist_use_interface {127,0,0,1} "
            "+sbwt none +sbwtdcpu none +sbwtdio none",
    }
    procs.spawn("rabbitmq", ["/usr/lib/rabbitmq/bin/rabbitmq-server"],
                env=env)


# ---------------------------------------------------------------- db sync

def _marker(name):
    return os.path.join(MARKERS, name)


def run_steps(service, steps):
    """Run one-time setup commands once per database (markers live in the
    MariaDB directory, so a wiped datadir re-runs them)."""
    os.makedirs(MARKERS, exist_ok=True)
    logf = procs.logfile(service + "-setup")
    for key, argv in steps:
        if os.path.exists(_marker(key)):
            continue
        t = time.time()
        with open(logf, "ab") as out:
            out.write(("\n===== %s\n" % " ".join(argv)).encode())
            out.flush()
            r = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL, cwd=HOME, check=False)
        if r.returncode:
            raise StartError(service, "%s failed (exit %d)" % (
                " ".join(argv[:3]), r.returncode), logf)
        log("%s: %s done in %.1fs" % (service, key, time.time() - t))
        open(_marker(key), "w").write(time.ctime() + "\n")


def conf(*parts):
    return os.path.join(ETC, *parts)


def keystone_steps():
    kc = ["--config-file", conf("keystone", "keystone.conf")]
    km = os.path.join(BIN, "keystone-manage")
    steps = [("keystone-db", [km] + kc + ["db_sync"])]
    if not os.path.exists(os.path.join(HOME, "keystone", "fernet-keys", "0")):
        steps.append(("keystone-fernet-%d" % time.time(), [km] + kc + [
            "fernet_setup", "--keystone-user", "root",
            "--keystone-group", "root"]))
    if not os.path.exists(os.path.join(HOME, "keystone",
                                       "credential-keys", "0")):
        steps.append(("keystone-credential-%d" % time.time(), [km] + kc + [
            "credential_setup", "--keystone-user", "root",
            "--keystone-group", "root"]))
    return steps


def keystone_bootstrap_steps():
    km = os.path.join(BIN, "keystone-manage")
    url = "http://127.0.0.1:%d/v3" % PORTS["keystone"]
    return [("keystone-bootstrap", [
        km, "--config-file", conf("keystone", "keystone.conf"), "bootstrap",
        "--bootstrap-password", common.ADMIN_PASSWORD,
        "--bootstrap-admin-url", url, "--bootstrap-internal-url", url,
        "--bootstrap-public-url", url,
        "--bootstrap-region-id", common.REGION])]


def nova_steps():
    nm = [os.path.join(BIN, "nova-manage"), "--config-file",
          conf("nova", "nova.conf")]
    return [
        ("nova-api-db", nm + ["api_db", "sync"]),
        ("nova-cell0", nm + ["cell_v2", "map_cell0", "--database_connection",
                             common.db_url() + "/nova_cell0?charset=utf8mb4"]),
        ("nova-cell1", nm + ["cell_v2", "create_cell", "--name", "cell1"]),
        ("nova-db", nm + ["db", "sync"]),
    ]


# ---------------------------------------------------------------- services

def gunicorn(name, port, module, env, argv="", options=()):
    if procs.running_pid(name):
        return
    env = dict(env, OSOPS_LC_WSGI_MODULE=module, OSOPS_LC_PROG=name,
               OSOPS_LC_ARGV=argv)
    procs.spawn(name, [os.path.join(BIN, "gunicorn"),
                       "--bind", "127.0.0.1:%d" % port,
                       "--name", "localcloud-" + name] + GUNICORN_OPTS
                + list(options)
                + ["oslocalcloud.wsgi:application"], env=env)


def daemon(name, argv):
    if procs.running_pid(name):
        return
    procs.spawn(name, [os.path.join(BIN, argv[0])] + argv[1:])


def start_api(name):
    if name == "keystone":
        gunicorn(name, PORTS["keystone"], "keystone.wsgi.api",
                 {"OS_KEYSTONE_CONFIG_FILES": conf("keystone",
                                                   "keystone.conf")})
    elif name == "glance":
        # the access log counts image downloads (tests of the image cache
        # assert that Nova fetched nothing)
        gunicorn(name, PORTS["glance"], "glance.wsgi.api",
                 {"OS_GLANCE_CONFIG_DIR": conf("glance")},
                 options=["--access-logfile", "-"])
    elif name == "placement":
        gunicorn(name, PORTS["placement"], "placement.wsgi.api",
                 {"OS_PLACEMENT_CONFIG_DIR": conf("placement")})
    elif name == "nova-api":
        gunicorn(name, PORTS["nova"], "nova.wsgi.osapi_compute",
                 {"OS_NOVA_CONFIG_DIR": conf("nova"),
                  "OS_NOVA_CONFIG_FILES": "api-paste.ini;nova.conf"})
    elif name == "neutron":
        gunicorn(name, PORTS["neutron"], "neutron.wsgi.api",
                 {"OS_NEUTRON_CONFIG_DIR": conf("neutron"),
                  "OS_NEUTRON_CONFIG_FILES": "neutron.conf;ml2_conf.ini"})
    elif name == "cinder-api":
        gunicorn(name, PORTS["cinder"], "cinder.wsgi.api", {},
                 argv="--config-file " + shlex.quote(conf("cinder",
                                                          "cinder.conf")))


def libvirt_answers(host):
    done = virsh(host, "version", timeout=10)
    return done is not None and done.returncode == 0


# Each compute gets a libvirtd of its own, as a real compute node has: in a
# mount namespace where its run, state, log and cache dirs and its qemu.conf
# are ours (so two libvirtds never see each other's domains), and a UTS
# namespace named like the compute (libvirt reports its host name as Nova's
# node name). virtlogd gets the same run dir, so libvirtd finds its socket.
LIBVIRT_NAMESPACE = r"""
set -e
host=$1 dir=$2; shift 2
for d in run lib log cache etc-qemu; do mkdir -p "$dir/$d"; done
mkdir -p /run/libvirt /var/lib/libvirt /var/log/libvirt /var/cache/libvirt
mount --bind "$dir/run" /run/libvirt
mount --bind "$dir/lib" /var/lib/libvirt
mount --bind "$dir/log" /var/log/libvirt
mount --bind "$dir/cache" /var/cache/libvirt
mount --bind "$dir/etc-qemu" /etc/libvirt/qemu
mount --bind "$dir/qemu.conf" /etc/libvirt/qemu.conf
hostname "$host"
exec "$@"
"""


def in_libvirt_namespace(host, argv):
    return ["unshare", "--mount", "--uts", "--propagation", "private",
            "sh", "-c", LIBVIRT_NAMESPACE, "-", host,
            common.libvirt_dir(host)] + argv


def start_libvirt(host):
    """virtlogd and libvirtd of one compute, in the foreground under our PID
    files (no systemd)."""
    if procs.running_pid("libvirtd-" + host) and libvirt_answers(host):
        return
    run_dir = os.path.join(common.libvirt_dir(host), "run")
    env = {"LIBVIRT_LOG_OUTPUTS": "3:stderr"}
    if not procs.running_pid("virtlogd-" + host):
        procs.spawn("virtlogd-" + host, in_libvirt_namespace(host, [
            "/usr/sbin/virtlogd", "--pid-file",
            os.path.join("/run/libvirt", "virtlogd.pid")]), env=env)
    if not procs.running_pid("libvirtd-" + host):
        # libvirtd refuses to start while virtlogd's socket is missing
        wait_for("virtlogd-" + host, lambda: os.path.exists(
            os.path.join(run_dir, "virtlogd-sock")), 30, what="make its socket")
        procs.spawn("libvirtd-" + host, in_libvirt_namespace(host, [
            "/usr/sbin/libvirtd", "--pid-file",
            os.path.join("/run/libvirt", "libvirtd.pid")]), env=env)
    wait_for("libvirtd-" + host, lambda: libvirt_answers(host), 60)


def virsh(host, *args, timeout=60):
    """virsh against one compute's libvirtd; None if it did not answer."""
    try:
        return subprocess.run(["virsh", "-c", common.libvirt_uri(host)]
                              + list(args), capture_output=True, text=True,
                              check=False, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired):
        return None


def stop_guests(host):
    """Destroy and undefine a compute's libvirt domains: stopping
    nova-compute leaves its guests running."""
    if not libvirt_answers(host):
        return []
    ended = []
    listed = virsh(host, "list", "--all", "--name")
    for name in listed.stdout.split() if listed else []:
        virsh(host, "destroy", name)
        virsh(host, "undefine", name, "--nvram")
        ended.append(name)
    return ended


def mount_export():
    """The loop-mounted ext4 that stands for the NFS export (libvirt mode)."""
    if os.path.ismount(common.EXPORT):
        return
    os.makedirs(common.EXPORT, exist_ok=True)
    if not os.path.exists(common.EXPORT_IMAGE):
        with open(common.EXPORT_IMAGE, "wb") as f:
            f.truncate(0)
        subprocess.run(["truncate", "-s", common.EXPORT_SIZE,
                        common.EXPORT_IMAGE], check=True)
        subprocess.run(["mkfs.ext4", "-q", "-F", "-L", "lc-export",
                        common.EXPORT_IMAGE], check=True)
    done = subprocess.run(["mount", "-o", "loop", common.EXPORT_IMAGE,
                           common.EXPORT], capture_output=True, text=True,
                          check=False)
    if done.returncode:
        raise StartError("export", "cannot loop-mount %s on %s: %s" % (
            common.EXPORT_IMAGE, common.EXPORT, done.stderr.strip()))


def unmount_export():
    if not os.path.ismount(common.EXPORT):
        return False
    done = subprocess.run(["umount", common.EXPORT], capture_output=True,
                          text=True, check=False)
    if done.returncode:
        log("WARNING: %s stays mounted: %s" % (common.EXPORT,
                                               done.stderr.strip()))
        return False
    return True


def wait_api(name, timeout):
    wait_for(name, lambda: http_answers(API_URLS[name]), timeout)


def job_keystone(ctx):
    run_steps("keystone", keystone_steps())
    start_api("keystone")
    wait_api("keystone", 60)
    run_steps("keystone", keystone_bootstrap_steps())
    write_admin_cloud()
    if not os.path.exists(_marker("identity")):
        from . import identity
        t = time.time()
        try:
            identity.setup_services()
        except Exception as e:
            raise StartError("keystone", "identity setup failed: %r" % e)
        open(_marker("identity"), "w").write(time.ctime() + "\n")
        log("keystone: service users and endpoints in %.1fs" % (
            time.time() - t))
    ctx["identity"].set()


def job_glance(ctx):
    run_steps("glance", [("glance-db", [
        os.path.join(BIN, "glance-manage"), "--config-file",
        conf("glance", "glance-api.conf"), "db_sync"])])
    start_api("glance")
    wait_api("glance", 90)


def job_placement(ctx):
    run_steps("placement", [("placement-db", [
        os.path.join(BIN, "placement-manage"), "--config-file",
        conf("placement", "placement.conf"), "db", "sync"])])
    start_api("placement")
    wait_api("placement", 90)
    ctx["placement"].set()


def job_nova(ctx):
    run_steps("nova", nova_steps())
    nc = ["--config-file", conf("nova", "nova.conf")]
    start_api("nova-api")
    daemon("nova-conductor", ["nova-conductor"] + nc)
    daemon("nova-scheduler", ["nova-scheduler"] + nc)
    # computes need their service user and placement to register the node
    for ev in ("identity", "placement"):
        while not ctx[ev].wait(0.5):
            if ctx["failed"].is_set():
                return
    if common.HYPERVISOR == "libvirt":
        # the libvirtds start side by side; each compute waits for its own
        with cf.ThreadPoolExecutor(len(common.COMPUTE_HOSTS)) as pool:
            list(pool.map(start_libvirt, common.COMPUTE_HOSTS))
    for host in common.COMPUTE_HOSTS:
        daemon("nova-compute-" + host, [
            "nova-compute", "--config-file", conf("nova", "nova-compute.conf"),
            "--config-file", conf("nova", "nova-compute-%s.conf" % host)])
    wait_api("nova-api", 90)


def job_neutron(ctx):
    run_steps("neutron", [("neutron-db", [
        os.path.join(BIN, "neutron-db-manage"),
        "--config-file", conf("neutron", "neutron.conf"),
        "--config-file", conf("neutron", "ml2_conf.ini"),
        "upgrade", "heads"])])
    start_api("neutron")
    wait_api("neutron", 90)


def job_cinder(ctx):
    cc = ["--config-file", conf("cinder", "cinder.conf")]
    run_steps("cinder", [("cinder-db", [
        os.path.join(BIN, "cinder-manage")] + cc + ["db", "sync"])])
    start_api("cinder-api")
    daemon("cinder-scheduler", ["cinder-scheduler"] + cc)
    daemon("cinder-volume", ["cinder-volume"] + cc)
    wait_api("cinder-api", 90)


def write_admin_cloud():
    import yaml
    try:
        with open(common.CLOUDS_YAML) as f:
            data = yaml.safe_load(f) or {}
    except OSError:
        data = {}
    data.setdefault("clouds", {})["admin"] = cloud_entry(
        "admin", common.ADMIN_PASSWORD, "admin")
    tmp = common.CLOUDS_YAML + ".tmp"
    with open(tmp, "w") as f:
        yaml.safe_dump(data, f, default_flow_style=False, sort_keys=True)
    os.replace(tmp, common.CLOUDS_YAML)


def cloud_entry(user, password, project, domain="Default"):
    return {
        "auth": {"auth_url": common.AUTH_URL, "username": user,
                 "password": password, "project_name": project,
                 "user_domain_name": domain,
                 "project_domain_name": domain},
        "region_name": common.REGION,
        "identity_api_version": 3,
        "interface": "public",
    }


# ---------------------------------------------------------------- health

def fail(err):
    print("\n[localcloud] FAILED: %s" % err, file=sys.stderr)
    print("----- tail of %s -----" % err.log, file=sys.stderr)
    print(common.tail(err.log), file=sys.stderr)
    print("-----\nThe other services keep running for debugging; "
          "`hack/localcloud/stop` ends them. Logs: %s" % common.LOG,
          file=sys.stderr, flush=True)
    sys.exit(1)


def dead_services():
    return [n for n in ALL if procs.read_pidfile(n)[0]
            and not procs.running_pid(n)]


def _fresh(svc, since):
    """The service record was updated by the process started at `since`
    (a killed process's last heartbeat stays "up" for service_down_time)."""
    if since is None:
        return True
    import datetime
    ts = (svc.updated_at or "").replace("Z", "").split("+")[0]
    try:
        t = datetime.datetime.fromisoformat(ts).replace(
            tzinfo=datetime.timezone.utc).timestamp()
    except ValueError:
        return False
    return t >= since - 1


def wait_services_up(conn, timeout):
    """nova conductor/scheduler/computes and cinder scheduler/volume up,
    both hypervisors known and their hosts mapped to cell1."""
    deadline = time.time() + timeout
    missing, last = ["?"], None
    while time.time() < deadline:
        dead = [n for n in dead_services() if n != "epmd"]
        if dead:
            raise StartError(dead[0], "process exited")
        missing = []
        try:
            sp = procs.SPAWNED
            up = {(s.binary, s.host) for s in conn.compute.services()
                  if s.state == "up" and s.status == "enabled" and _fresh(
                      s, sp.get(s.binary if s.binary != "nova-compute"
                                else "nova-compute-" + s.host))}
            for b in ("nova-conductor", "nova-scheduler"):
                if not any(x[0] == b for x in up):
                    missing.append(b)
            for h in common.COMPUTE_HOSTS:
                if ("nova-compute", h) not in up:
                    missing.append("nova-compute-" + h)
            hyp = {h.name for h in conn.compute.hypervisors()}
            for h in common.COMPUTE_HOSTS:
                if h not in hyp and "nova-compute-" + h not in missing:
                    missing.append("nova-compute-" + h)
            cup = {s.binary for s in conn.block_storage.services()
                   if s.state == "up" and _fresh(s, sp.get(s.binary))}
            for b in ("cinder-scheduler", "cinder-volume"):
                if b not in cup:
                    missing.append(b)
            if not missing:
                c = mysql_connect("nova_api")
                with c.cursor() as cur:
                    cur.execute("SELECT host FROM host_mappings")
                    mapped = {r[0] for r in cur.fetchall()}
                c.close()
                if not set(common.COMPUTE_HOSTS) <= mapped:
                    missing.append("nova-scheduler")  # discovers hosts
            if not missing:
                return
        except Exception as e:  # an API still warming up
            missing = ["nova-api"]
            last = e
        time.sleep(1)
    raise StartError(missing[0], "not up after %ss (waiting for: %s%s)" % (
        timeout, ", ".join(missing),
        "; last API error: %r" % last if missing == ["nova-api"] else ""))


def ensure_base_resources(conn):
    """Flavors, a tiny public image and a shared network (idempotent)."""
    flavors = {f.name: f for f in conn.compute.flavors()}
    for name, vcpus, ram, disk in (("m1.nano", 1, 128, 1),
                                   ("m1.tiny", 1, 512, 1),
                                   ("m1.small", 1, 2048, 20),
                                   ("m1.medium", 2, 4096, 40)):
        if name not in flavors:
            flavors[name] = conn.compute.create_flavor(
                name=name, vcpus=vcpus, ram=ram, disk=disk, is_public=True)
    image = conn.image.find_image("localcloud-tiny")
    if image is None or image.status != "active":
        if image is not None:
            conn.image.delete_image(image)
        image = conn.image.create_image(
            name="localcloud-tiny", disk_format="raw",
            container_format="bare", visibility="public",
            data=b"\0" * 65536, allow_duplicates=True)
    net = conn.network.find_network("localcloud-net")
    if net is None:
        net = conn.network.create_network(name="localcloud-net",
                                          is_shared=True)
    if not list(conn.network.subnets(network_id=net.id)):
        # RFC 2544 benchmarking range: never routed, big enough for
        # hundreds of servers
        conn.network.create_subnet(
            name="localcloud-subnet", network_id=net.id, ip_version=4,
            cidr="198.18.0.0/16", is_dhcp_enabled=False)
    return flavors["m1.nano"], image, net


def test_boot(conn, flavor, image, net):
    t = time.time()
    name = "localcloud-healthcheck"
    for old in conn.compute.servers(name="^%s$" % name):
        conn.compute.delete_server(old)
    # libvirt guests boot without a network: nothing to plug (no OVS)
    srv = conn.compute.create_server(
        name=name, flavor_id=flavor.id, image_id=image.id,
        networks="none" if common.HYPERVISOR == "libvirt"
        else [{"uuid": net.id}])
    try:
        srv = conn.compute.wait_for_server(srv, status="ACTIVE",
                                           failures=["ERROR"], wait=120,
                                           interval=1)
    except Exception as e:
        fault = ""
        try:
            fault = conn.compute.get_server(srv.id).fault
        except Exception:
            pass
        raise StartError("nova-conductor", "test server did not become "
                         "ACTIVE: %s %s" % (e, fault))
    ips = [a["addr"] for addrs in (srv.addresses or {}).values()
           for a in addrs]
    conn.compute.delete_server(srv)
    conn.compute.wait_for_delete(srv, interval=1, wait=60)
    log("test server ACTIVE on %s with %s, deleted (%.1fs)" % (
        srv.compute_host, ",".join(ips) or "no IP", time.time() - t))


def write_computes_inventory():
    """The computes as Ansible hosts of group "compute" on this machine
    (local connection), with the image cache paths each one uses and the
    facts tests need (libvirt URI, force_raw_images). JSON is YAML."""
    import json
    hosts = {}
    for host in common.COMPUTE_HOSTS:
        instances = common.instances_dir(host)
        hosts[host] = {
            "ansible_connection": "local",
            "ansible_python_interpreter": "{{ ansible_playbook_python }}",
            "imagecache_instances_dir": instances,
            "imagecache_cache_dir": os.path.join(instances, "_base"),
            "imagecache_source_dir": common.glance_images_dir(),
            # each node keeps its own record, as on separate machines
            "imagecache_state_file": os.path.join(
                HOME, "nova", host, "imagecache-state.json"),
            "localcloud_libvirt_uri": common.libvirt_uri(host),
            "localcloud_force_raw_images":
                host not in common.QCOW2_BASE_HOSTS,
            "localcloud_shares_instances_with": [
                h for h in common.SHARED_HOSTS if h != host]
            if host in common.SHARED_HOSTS else [],
        }
    tmp = common.COMPUTES_INVENTORY + ".tmp"
    with open(tmp, "w") as f:
        json.dump({"all": {"children": {"compute": {"hosts": hosts}}}}, f,
                  indent=2)
    os.replace(tmp, common.COMPUTES_INVENTORY)


# ---------------------------------------------------------------- commands

def cmd_start(args):
    t0 = time.time()
    for d in (HOME, common.LOG, common.RUN):
        os.makedirs(d, exist_ok=True)
    already = all(procs.running_pid(n) for n in ALL if n != "epmd")
    if already:
        st = common.load_state()
        mode, backend = st.get("glance_mode"), st.get("cinder_backend")
        log("already running (state %s, glance %s-store); checking health"
            % (HOME, mode))
        if mode != glance_mode():
            log("WARNING: Glance runs %s-store, not %s: stop and start to "
                "switch" % (mode, glance_mode()))
        if st.get("hypervisor", "fake") != common.HYPERVISOR:
            log("WARNING: the computes run the %s driver, not %s: stop and "
                "start to switch" % (st.get("hypervisor", "fake"),
                                     common.HYPERVISOR))
    else:
        if common.HYPERVISOR == "libvirt":
            mount_export()
        mode, backend, reason = render_configs()
        log("starting in %s (glance %s-store, cinder backend %s)" % (
            HOME, mode, backend))
    try:
        start_mariadb()
        start_rabbitmq()
        wait_for("mariadb", mariadb_answers, 90)
        setup_databases()
        wait_for("rabbitmq", lambda: common.tcp_open(PORTS["rabbitmq"]), 90)
        # where the services' notifications can be read (event source plugin, its tests)
        with open(common.NOTIFICATIONS_URL_FILE, "w") as f:
            f.write(common.amqp_url() + "\n")
        ctx = {k: threading.Event()
               for k in ("identity", "placement", "failed")}
        jobs = [job_keystone, job_glance, job_placement, job_nova,
                job_neutron, job_cinder]
        with cf.ThreadPoolExecutor(len(jobs)) as ex:
            futs = [ex.submit(j, ctx) for j in jobs]
            for f in cf.as_completed(futs):
                if f.exception():
                    ctx["failed"].set()
                    for g in futs:
                        g.cancel()
                    raise f.exception()
        log("all APIs answer (%.1fs)" % (time.time() - t0))
        conn = common.connect("admin")
        wait_services_up(conn, 120)
        log("nova and cinder services up, %d compute hosts mapped (%.1fs)" %
            (len(common.COMPUTE_HOSTS), time.time() - t0))
        flavor, image, net = ensure_base_resources(conn)
        if common.HYPERVISOR == "libvirt":
            write_computes_inventory()
        test_boot(conn, flavor, image, net)
    except StartError as e:
        fail(e)
    log("local cloud ready in %.1fs: OS_CLIENT_CONFIG_FILE=%s "
        "OS_CLOUD=admin" % (time.time() - t0, common.CLOUDS_YAML))
    common.save_state(last_start_seconds=round(time.time() - t0, 1))


def cmd_stop(args):
    t = time.time()
    if getattr(args, "service", None):
        stopped = procs.stop(args.service, timeout=30)
        log("stopped %s in %.1fs" % (", ".join(stopped) or "nothing (not running)", time.time() - t))
        return 0
    # also computes started with another OSOPS_LOCALCLOUD_COMPUTES
    recorded = sorted(f[:-4] for f in os.listdir(common.RUN)
                      if f.endswith(".pid")) if os.path.isdir(common.RUN) \
        else []
    extra = [n for n in recorded if n not in ALL
             and not n.startswith(("virtlogd", "libvirtd"))]
    stopped = procs.stop(WORKERS + extra + APIS, timeout=30)
    hosts = sorted(n[len("libvirtd-"):] for n in recorded
                   if n.startswith("libvirtd-"))
    for host in hosts:
        guests = stop_guests(host)
        if guests:
            log("destroyed guests of %s: %s" % (host, ", ".join(guests)))
    stopped += procs.stop([d + "-" + h for h in hosts
                           for d in ("libvirtd", "virtlogd")], timeout=30)
    stopped += procs.stop(["rabbitmq"], timeout=60)
    stopped += procs.stop(["epmd", "mariadb"], timeout=60)
    if unmount_export():
        stopped.append("export mount")
    left = procs.strays(set())
    if left and getattr(args, "strays", False):
        import signal
        for pid, cmd in left:
            log("ending stray process group %d: %s" % (pid, cmd))
            try:
                os.killpg(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.time() + 30
        while time.time() < deadline and any(
                procs.group_members(p) for p, _name in left):
            time.sleep(0.3)
        for pid, _name in left:
            if procs.group_members(pid):
                os.killpg(pid, signal.SIGKILL)
        stopped += ["%d strays" % len(left)]
    elif left:
        log("WARNING: %d process groups still work in %s without a PID file "
            "(`status` lists them; `stop --strays` ends them)" % (
                len(left), HOME))
    if stopped:
        log("stopped %s in %.1fs" % (", ".join(stopped), time.time() - t))
    else:
        log("nothing was running")


def _pss_kib(pid):
    try:
        with open("/proc/%d/smaps_rollup" % pid) as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def cmd_status(args):
    st = common.load_state()
    print("state dir: %s   glance: %s-store   cinder backend: %s   "
          "hypervisor: %s" % (HOME, st.get("glance_mode", "?"),
                              st.get("cinder_backend", "?"),
                              st.get("hypervisor", "fake")))
    total_rss = total_pss = 0
    down = 0
    print("%-30s %-8s %-8s %9s  %s" % ("service", "pid", "state", "rss MiB",
                                       "check"))
    for name in ALL:
        pid = procs.running_pid(name)
        check = ""
        if name in API_URLS:
            check = "answers" if http_answers(API_URLS[name], 2) else \
                "NO ANSWER"
        elif name == "mariadb":
            check = "answers" if mariadb_answers() else "NO ANSWER"
        elif name == "rabbitmq":
            check = "port open" if common.tcp_open(PORTS["rabbitmq"]) else \
                "PORT CLOSED"
        members = procs.group_members(pid) if pid else []
        rss = procs.rss_kib(members)
        total_rss += rss
        total_pss += sum(_pss_kib(p) for p in members)
        if not pid and name != "epmd":
            down += 1
        print("%-30s %-8s %-8s %9.0f  %s" % (
            name, pid or "-", "running" if pid else "stopped", rss / 1024,
            check))
    print("total: RSS %.0f MiB, PSS %.0f MiB (PSS counts shared pages once)"
          % (total_rss / 1024, total_pss / 1024))
    known = {procs.running_pid(n) for n in ALL} - {None}
    left = procs.strays(known)
    for pid, cmd in left:
        print("STRAY (no PID file) pgid %d: %s" % (pid, cmd))
    if left:
        print("%d stray process groups use this state dir: "
              "`hack/localcloud/stop --strays` ends them" % len(left))
    if args.json:
        import json
        print(json.dumps({"rss_mib": round(total_rss / 1024),
                          "pss_mib": round(total_pss / 1024),
                          "down": down}))
    return 0 if down == 0 else 3


def main(argv=None):
    p = argparse.ArgumentParser(prog="localcloud")
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("start")
    st = sub.add_parser("stop")
    st.add_argument("--strays", action="store_true",
                    help="also end process groups working in the state dir "
                         "that no PID file records (see status)")
    st.add_argument("--service", action="append", choices=ALL,
                    help="stop only this service (repeatable); start brings it back")
    s = sub.add_parser("status")
    s.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    if args.cmd == "status":
        return cmd_status(args) or 0
    with procs.Lock():
        return {"start": cmd_start, "stop": cmd_stop}[args.cmd](args) or 0


if __name__ == "__main__":
    sys.exit(main())
