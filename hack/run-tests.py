# SPDX-License-Identifier: GPL-3.0-or-later
"""Run every check of the collection and print one closing tally.

Called by hack/test inside the development environment (hack/lib.sh's
enter_dev_env); run hack/test --help for usage. Each check is a step; a step
reports individual results (one per sanity test, unit test, integration
target, documented plugin, ...). The last line is "N passed, N failed, N skipped"
and the exit code is non-zero if anything failed or if a step that must find
tests found none.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLLECTION = "osops.lifecycle"
PYTHON_VERSION = "%d.%d" % sys.version_info[:2]


@dataclass
class Tally:
    passed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def add(self, step: str, name: str, ok: bool | None) -> None:
        label = "%s: %s" % (step, name)
        if ok is None:
            self.skipped.append(label)
        elif ok:
            self.passed.append(label)
        else:
            self.failed.append(label)
            print("FAILED %s" % label, flush=True)


def run(cmd: list[str], cwd: str = REPO, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run a command, echo its output (stdout and stderr together), and return it."""
    print("$ %s" % " ".join(cmd), flush=True)
    proc = subprocess.run(
        cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, check=False,
    )
    output = proc.stdout
    # pip's complaints about this machine's absent local indexes are noise.
    shown = "\n".join(line for line in output.splitlines() if "is neither a file nor a directory" not in line)
    if shown:
        print(shown, flush=True)
    return proc


def ansible_test_tree() -> str:
    out = subprocess.run(
        ["bash", "-c", '. "$1/hack/lib.sh" && ansible_test_tree', "-", REPO],
        check=True, stdout=subprocess.PIPE, text=True,
    ).stdout
    return out.strip().splitlines()[-1]


def module_names() -> list[str]:
    return sorted(
        os.path.splitext(os.path.basename(p))[0]
        for p in glob.glob(os.path.join(REPO, "plugins", "modules", "*.py"))
        if not os.path.basename(p).startswith("_")
    )


def role_names() -> list[str]:
    return sorted(
        os.path.basename(os.path.dirname(os.path.dirname(p)))
        for p in glob.glob(os.path.join(REPO, "roles", "*", "meta", "argument_specs.yml"))
    )


def target_aliases(target: str) -> set[str]:
    with open(os.path.join(REPO, "tests", "integration", "targets", target, "aliases")) as handle:
        return {line.split("#")[0].strip() for line in handle} - {""}


@dataclass(frozen=True)
class TestService:
    """Something integration targets need running (a target names it in its aliases)."""

    alias: str
    start: list[str]
    status: list[str]
    stop: list[str]
    variables: dict  # merged into tests/integration/integration_config.yml
    env: dict = field(default_factory=dict)  # added to the environment of start, status and stop

    def environ(self) -> dict:
        return dict(os.environ, **self.env)


def state_home(variable: str, default: str) -> str:
    return os.environ.get(variable) or os.path.join(REPO, default)


LOCALCLOUD_HOME = state_home("OSOPS_LOCALCLOUD_HOME", ".localcloud-libvirt" if os.environ.get(
    "OSOPS_LOCALCLOUD_HYPERVISOR") == "libvirt" else ".localcloud")
NODES_HOME = state_home("OSOPS_NODES_HOME", ".nodes")
# the local cloud with libvirt/QEMU computes (its own state dir; the same ports as the fake one)
LIBVIRTCLOUD_HOME = state_home("OSOPS_LOCALCLOUD_LIBVIRT_HOME", ".localcloud-libvirt")

MAILSINK_HOME = state_home("OSOPS_MAILSINK_HOME", ".mailsink")
MAILSINK_PORT = int(os.environ.get("OSOPS_MAILSINK_PORT", "8025"))
SERVICES = (
    # The local OpenStack cloud on loopback (hack/localcloud).
    TestService(
        alias="localcloud",
        start=[os.path.join(REPO, "hack", "localcloud", "start")],
        status=[os.path.join(REPO, "hack", "localcloud", "status")],
        stop=[os.path.join(REPO, "hack", "localcloud", "stop")],
        variables={
            "localcloud_home": LOCALCLOUD_HOME,
            "localcloud_clouds_yaml": os.path.join(LOCALCLOUD_HOME, "clouds.yaml"),
            "localcloud_glance_images": os.path.join(LOCALCLOUD_HOME, "glance", "images"),
            # the AMQP URL of the cloud's RabbitMQ (written by start): the services' notifications
            "localcloud_notifications_url_file": os.path.join(LOCALCLOUD_HOME, "notifications.url"),
            # fault-injection tests stop one service (stop --service) and start it again
            "localcloud_bin": os.path.join(REPO, "hack", "localcloud"),
        },
    ),
    # The same cloud with four libvirt/QEMU computes (OSOPS_LOCALCLOUD_HYPERVISOR=libvirt): real
    # guests, Nova's image cache manager, an instances_path on a loop-mounted ext4. It uses the
    # same ports: targets that need it run last, after the fake-driver cloud is stopped.
    TestService(
        alias="libvirtcloud",
        start=[os.path.join(REPO, "hack", "localcloud", "start")],
        status=[os.path.join(REPO, "hack", "localcloud", "status")],
        stop=[os.path.join(REPO, "hack", "localcloud", "stop")],
        env={"OSOPS_LOCALCLOUD_HYPERVISOR": "libvirt", "OSOPS_LOCALCLOUD_HOME": LIBVIRTCLOUD_HOME},
        variables={
            "libvirtcloud_home": LIBVIRTCLOUD_HOME,
            "libvirtcloud_clouds_yaml": os.path.join(LIBVIRTCLOUD_HOME, "clouds.yaml"),
            "libvirtcloud_computes": os.path.join(LIBVIRTCLOUD_HOME, "computes.yml"),
        },
    ),
    # A real SMTP server on loopback that keeps what it receives (hack/mailsink.py, aiosmtpd).
    TestService(
        alias="mailsink",
        start=[os.path.join(REPO, "hack", "mailsink"), "start", "--dir", MAILSINK_HOME, "--port", str(MAILSINK_PORT)],
        status=[os.path.join(REPO, "hack", "mailsink"), "status", "--dir", MAILSINK_HOME],
        stop=[os.path.join(REPO, "hack", "mailsink"), "stop", "--dir", MAILSINK_HOME],
        variables={"mailsink_port": MAILSINK_PORT,
                   "mailsink": [sys.executable, os.path.join(REPO, "hack", "mailsink.py"), "--dir", MAILSINK_HOME]},
    ),
    # Three "compute nodes": network namespaces with their own sshd (hack/nodes).
    TestService(
        alias="nodes",
        start=[os.path.join(REPO, "hack", "nodes", "up"), "3"],
        status=[os.path.join(REPO, "hack", "nodes", "status")],
        stop=[os.path.join(REPO, "hack", "nodes", "down")],
        variables={"nodes_inventory": os.path.join(NODES_HOME, "inventory.ini")},
    ),
)


def start_service(service: TestService) -> tuple[bool, bool]:
    """Bring a service up; return (running, started by us)."""
    if not os.access(service.start[0], os.X_OK):
        print("%s is missing: targets with alias %r cannot run" % (service.start[0], service.alias))
        return False, False
    was_running = subprocess.run(service.status, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                 env=service.environ(), check=False).returncode == 0
    return run(service.start, env=service.environ()).returncode == 0, not was_running


def test_seal_key() -> str:
    """The lease seal key file of the test runs (made once, mode 0600, in the dev state)."""
    path = os.path.join(state_home("OSOPS_TEST_HOME", ".test-state"), "lease-seal.key")
    if not os.path.exists(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write("# lease seal keys of the test runs\ntest1 %s\n" % os.urandom(33).hex())
    return path


def write_integration_config(tree: str, services: list[TestService]) -> None:
    """ansible-test passes tests/integration/integration_config.yml to every target as extra vars."""
    # screenshots a test run writes for the docs land in the checkout's docs/images
    variables: dict = {"docs_images": os.path.join(REPO, "docs", "images"), "lease_seal_key_file": test_seal_key()}
    for service in services:
        variables.update(service.variables)
    with open(os.path.join(tree, "tests", "integration", "integration_config.yml"), "w") as handle:
        json.dump(variables, handle, indent=2)


def integration_targets() -> list[str]:
    root = os.path.join(REPO, "tests", "integration", "targets")
    return sorted(
        name for name in os.listdir(root)
        if os.path.isfile(os.path.join(root, name, "aliases"))
    ) if os.path.isdir(root) else []


# --- steps ------------------------------------------------------------------


def step_sanity(tally: Tally, args) -> None:
    tree = ansible_test_tree()
    env = dict(os.environ)
    env.pop("ANSIBLE_TEST_CONTENT_ROOT", None)
    proc = run(["ansible-test", "sanity", "--venv", "--python", PYTHON_VERSION, "--color", "no"], cwd=tree, env=env)
    rc, out = proc.returncode, proc.stdout
    ran = re.findall(r'^Running sanity test "([^"]+)"', out, re.M)
    failed = set()
    listing = re.search(r"FATAL: The \d+ sanity test\(s\) listed below.*?\n((?:[\w.-]+\n)+)", out)
    if listing:
        failed = set(listing.group(1).split())
    if not ran:
        tally.add("sanity", "ansible-test sanity (no test ran, exit %d)" % rc, False)
        return
    for name in ran:
        tally.add("sanity", name, name not in failed)
    if rc != 0 and not failed:
        tally.add("sanity", "ansible-test sanity (exit %d)" % rc, False)


def step_units(tally: Tally, args) -> None:
    report = os.path.join(tempfile.mkdtemp(prefix="osops-units-"), "junit.xml")
    cmd = [sys.executable, "-m", "pytest", "-q", "-rfEs", "--junitxml", report]
    if args.keyword:
        cmd += ["-k", args.keyword]
    rc = run(cmd).returncode
    if not os.path.exists(report):
        tally.add("units", "pytest (exit %d, no report)" % rc, False)
        return
    cases = ET.parse(report).getroot().iter("testcase")
    count = 0
    for case in cases:
        count += 1
        name = "%s::%s" % (case.get("classname"), case.get("name"))
        if case.find("failure") is not None or case.find("error") is not None:
            tally.add("units", name, False)
        elif case.find("skipped") is not None:
            tally.add("units", name, None)
        else:
            tally.add("units", name, True)
    if count == 0 or rc not in (0, 1):
        # exit 5 (no tests collected) or a crash is a failure, never a pass
        tally.add("units", "pytest (exit %d, %d tests)" % (rc, count), False)


def step_integration(tally: Tally, args) -> None:
    targets = integration_targets()
    if args.keyword:
        targets = [t for t in targets if args.keyword in t]
    if not targets:
        tally.add("integration", "no targets in tests/integration/targets", None)
        return
    tree = ansible_test_tree()
    env = dict(os.environ)
    env.pop("ANSIBLE_TEST_CONTENT_ROOT", None)
    needed = [svc for svc in SERVICES if any(svc.alias in target_aliases(t) for t in targets)]
    write_integration_config(tree, needed)
    up: dict[str, bool] = {}
    started: list[TestService] = []
    # the libvirt cloud takes the fake cloud's ports: its targets run last, after the multi-store reruns
    hypervisor = [t for t in targets if LIBVIRT in target_aliases(t)]
    targets = [t for t in targets if t not in hypervisor]
    run_targets(tally, targets, needed, tree, env, up, started)
    run_on_multistore_glance(tally, targets, tree, env, up, started)
    if hypervisor:
        cloud = next(svc for svc in SERVICES if svc.alias == "localcloud")
        if up.pop("localcloud", None):
            run(cloud.stop)
        run_targets(tally, hypervisor, needed, tree, env, up, started)
    # Leave the machine as we found it, unless asked to keep services for the next run.
    if not os.environ.get("OSOPS_KEEP_SERVICES"):
        for service in reversed(started):
            run(service.stop, env=service.environ())


LIBVIRT = "libvirtcloud"


def run_targets(tally: Tally, targets: list[str], needed: list[TestService], tree: str, env: dict, up: dict,
                started: list[TestService]) -> None:
    for target in targets:
        for service in needed:
            if service.alias in target_aliases(target) and service.alias not in up:
                running, ours = start_service(service)
                up[service.alias] = running
                if ours:
                    started.append(service)
        down = [alias for alias in target_aliases(target) if up.get(alias) is False]
        if down:
            tally.add("integration", "%s (%s did not start)" % (target, ", ".join(down)), False)
            continue
        tally.add("integration", target, run_target(target, tree, env))


def run_target(target: str, tree: str, env: dict) -> bool:
    """One integration target through ansible-test; did it pass?"""
    cmd = ["ansible-test", "integration", "--local", "--color", "no", "--python", PYTHON_VERSION, target]
    return run(cmd, cwd=tree, env=env).returncode == 0


MULTISTORE = "glance_multistore"


def run_on_multistore_glance(tally: Tally, targets: list[str], tree: str, env: dict, up: dict,
                             started: list[TestService]) -> None:
    """Run targets aliased ``glance_multistore`` again with Glance in multi-store mode.

    Production Glance often has ``enabled_backends``, and Glance then refuses
    some image updates that a single-store Glance accepts (read-only ``stores``).
    """
    again = [t for t in targets if MULTISTORE in target_aliases(t)]
    if not again or not up.get("localcloud"):
        return
    cloud = next(svc for svc in SERVICES if svc.alias == "localcloud")
    multi = dict(env, OSOPS_LOCALCLOUD_GLANCE="multi")
    run(cloud.stop)
    if run(cloud.start, env=multi).returncode != 0:
        for target in again:
            tally.add("integration", "%s (multi-store Glance did not start)" % target, False)
        return
    for target in again:
        tally.add("integration", "%s (multi-store Glance)" % target, run_target(target, tree, multi))
    if cloud not in started:
        # someone else's cloud: give it back in the default layout
        run(cloud.stop)
        run(cloud.start, env=env)


def step_lint(tally: Tally, args) -> None:
    paths = [p for p in ("roles", "playbooks") if glob.glob(os.path.join(REPO, p, "*"))]
    if not paths:
        tally.add("lint", "no roles or playbooks yet", None)
        return
    rc = run(["ansible-lint", "--profile", "production", "--offline", "--nocolor"] + paths).returncode
    tally.add("lint", "ansible-lint --profile production " + " ".join(paths), rc == 0)


def step_changelog(tally: Tally, args) -> None:
    rc = run(["antsibull-changelog", "lint"]).returncode
    tally.add("changelog", "antsibull-changelog lint", rc == 0)


def lists_every_module(env: dict | None = None, cwd: str = REPO) -> bool:
    """Does ``ansible-doc -l`` list exactly the modules in plugins/modules/?"""
    proc = run(["ansible-doc", "-l", COLLECTION, "--json"], env=env, cwd=cwd)
    listed = set(json.loads(proc.stdout or "{}")) if proc.returncode == 0 else set()
    expected = {"%s.%s" % (COLLECTION, m) for m in module_names()}
    if listed != expected:
        print("listed: %s\nexpected: %s" % (sorted(listed), sorted(expected)))
    return proc.returncode == 0 and listed == expected


def step_docs(tally: Tally, args) -> None:
    tally.add("docs", "ansible-doc -l lists every module", lists_every_module())
    for module in module_names():
        proc = run(["ansible-doc", "%s.%s" % (COLLECTION, module)])
        rc, out = proc.returncode, proc.stdout
        tally.add("docs", "module %s" % module, rc == 0 and "EXAMPLES" in out and "RETURN" in out)
    for role in role_names():
        proc = run(["ansible-doc", "-t", "role", "%s.%s" % (COLLECTION, role)])
        rc, out = proc.returncode, proc.stdout
        tally.add("docs", "role %s" % role, rc == 0 and "ENTRY POINT" in out)
    for plugin in sorted(glob.glob(os.path.join(REPO, "plugins", "filter", "*.py"))):
        name = os.path.splitext(os.path.basename(plugin))[0]
        proc = run(["ansible-doc", "-t", "filter", "%s.%s" % (COLLECTION, name)])
        tally.add("docs", "filter %s" % name, proc.returncode == 0 and "EXAMPLES" in proc.stdout)
    playbooks = sorted(glob.glob(os.path.join(REPO, "playbooks", "*.yml")))
    for playbook in playbooks:
        name = os.path.splitext(os.path.basename(playbook))[0]
        rc = run(["ansible-playbook", "--syntax-check", "%s.%s" % (COLLECTION, name)]).returncode
        tally.add("docs", "playbook %s syntax" % name, rc == 0)


# Files that must never ship in the collection tarball.
DEV_ONLY = re.compile(r"^(\.venv|\.localcloud|\.localcloud-libvirt|\.mailsink|\.demo|\.test-state|\.ci|hack|bench|tests/output|\.git)(/|$)")


def step_build(tally: Tally, args) -> None:
    work = tempfile.mkdtemp(prefix="osops-build-")
    try:
        rc = run(["ansible-galaxy", "collection", "build", "--output-path", work, REPO]).returncode
        tarballs = glob.glob(os.path.join(work, "osops-lifecycle-*.tar.gz"))
        tally.add("build", "ansible-galaxy collection build", rc == 0 and len(tarballs) == 1)
        if rc != 0 or len(tarballs) != 1:
            return
        with tarfile.open(tarballs[0]) as archive:
            shipped = archive.getnames()
        leaked = [n for n in shipped if DEV_ONLY.match(n)]
        if leaked:
            print("development files in the tarball: %s" % leaked[:10])
        tally.add("build", "tarball holds no development files", not leaked)

        # An empty collections path; the dependencies come from the "ansible"
        # package in site-packages, as for an operator without Galaxy access.
        target = os.path.join(work, "collections")
        os.mkdir(target)
        env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=target)
        env.pop("PYTHONPATH", None)
        rc = run(["ansible-galaxy", "collection", "install", "--offline", "-p", target, tarballs[0]], env=env).returncode
        installed = os.path.join(target, "ansible_collections", "osops", "lifecycle")
        tally.add("build", "collection install --offline into an empty path", rc == 0 and os.path.isdir(installed))
        if rc != 0:
            return
        tally.add("build", "installed collection documents every module", lists_every_module(env, cwd=work))
    finally:
        shutil.rmtree(work, ignore_errors=True)


# The operator's side of the execution environment (issue 17): the collection tarball,
# unpacked, carries its own EE definition, and ansible-builder alone makes the context.
EE_SHIPPED = os.path.join("extensions", "ee", "execution-environment.yml")
EE_TARBALL = "osops-lifecycle.tar.gz"  # the fixed name the shipped definition takes beside it
EE_FILES = ("extensions/ee/execution-environment.yml", "extensions/ee/requirements.yml",
            "meta/execution-environment.yml", "requirements.txt", "bindep.txt")


def pinned(name: str) -> str:
    """The name==version line of hack/constraints.txt."""
    with open(os.path.join(REPO, "hack", "constraints.txt")) as handle:
        for line in handle:
            line = line.split("#")[0].strip()
            if line.lower().startswith(name.lower() + "=="):
                return line
    raise LookupError("%s is not pinned in hack/constraints.txt" % name)


def in_dev_env(entry: str) -> bool:
    """Is this path inside the development environment (its venv)?"""
    dev = {os.path.realpath(p) for p in (sys.prefix, os.environ.get("VIRTUAL_ENV"), os.path.join(REPO, ".venv")) if p}
    real = os.path.realpath(entry)
    return any(real == d or real.startswith(d + os.sep) for d in dev)


def operator_env(bin_dir: str | None) -> dict:
    """This environment without the development one: neither its venv on PATH nor ANSIBLE_*,
    VIRTUAL_ENV, PYTHONPATH; bin_dir (a venv of the operator's tools) first on PATH."""
    path = [p for p in os.environ.get("PATH", "").split(os.pathsep) if p and not in_dev_env(p)]
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("ANSIBLE_") and k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}
    env["PATH"] = os.pathsep.join(([bin_dir] if bin_dir else []) + path)
    return env


def builder_venv() -> str:
    """bin/ of a venv holding only ansible-builder (hack/constraints.txt's version), made by the
    python3 of the clean PATH. Kept in the test state directory; remade when its
    ansible-builder does not run or is another version."""
    pin = pinned("ansible-builder")
    venv = os.path.join(state_home("OSOPS_TEST_HOME", ".test-state"), "ee-builder-venv")
    builder = os.path.join(venv, "bin", "ansible-builder")
    env = operator_env(None)
    if os.path.exists(builder):
        proc = subprocess.run([builder, "--version"], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, check=False)
        if proc.returncode == 0 and proc.stdout.strip() == pin.split("==")[1]:
            print("reusing %s (ansible-builder %s)" % (venv, proc.stdout.strip()), flush=True)
            return os.path.dirname(builder)
    shutil.rmtree(venv, ignore_errors=True)
    python = shutil.which("python3", path=env["PATH"])
    if not python:
        raise RuntimeError("no python3 on PATH outside the development environment")
    os.makedirs(os.path.dirname(venv), exist_ok=True)
    for cmd in ([python, "-m", "venv", venv],
                [os.path.join(venv, "bin", "python"), "-m", "pip", "install", "-q",
                 "-c", os.path.join(REPO, "hack", "constraints.txt"), pin]):
        if run(cmd, env=env).returncode != 0:
            shutil.rmtree(venv, ignore_errors=True)
            raise RuntimeError("could not make the ansible-builder venv: %s" % " ".join(cmd))
    return os.path.dirname(builder)


def ee_twins_agree() -> bool:
    """The checkout's execution-environment.yml and the shipped extensions/ee one build the same
    image: same base, interpreter, ansible-core/runner, build steps, collections, and this
    collection's requirements files (those meta/execution-environment.yml names)."""
    import yaml  # pylint: disable=import-outside-toplevel

    def load(path):
        with open(path) as handle:
            return yaml.safe_load(handle)

    ok = True
    defs = {}
    for path in ("execution-environment.yml", EE_SHIPPED):
        full = os.path.join(REPO, path)
        ee = load(full)
        deps = ee["dependencies"]
        here = os.path.dirname(full)
        defs[path] = {
            "images": ee.get("images"),
            "steps": ee.get("additional_build_steps"),
            "dests": [f["dest"] for f in ee.get("additional_build_files", [])],
            "tarballs": [os.path.basename(f["src"]) for f in ee.get("additional_build_files", [])],
            "deps": {k: v for k, v in deps.items() if k not in ("galaxy", "python", "system")},
            "collections": load(os.path.join(here, deps["galaxy"]))["collections"],
            "python": os.path.realpath(os.path.join(here, deps["python"])),
            "system": os.path.realpath(os.path.join(here, deps["system"])),
        }
    meta = load(os.path.join(REPO, "meta", "execution-environment.yml"))["dependencies"]
    for path, found in defs.items():
        for kind in ("python", "system"):
            if found[kind] != os.path.realpath(os.path.join(REPO, meta[kind])):
                print("%s: %s is %s, not meta/execution-environment.yml's %s" % (path, kind, found[kind], meta[kind]))
                ok = False
        if found["tarballs"] != [EE_TARBALL]:
            print("%s: additional_build_files should take one %s" % (path, EE_TARBALL))
            ok = False
    root, shipped = defs["execution-environment.yml"], defs[EE_SHIPPED]
    for key in ("images", "steps", "dests", "deps", "collections"):
        if root[key] != shipped[key]:
            print("the two EE definitions differ in %s:\n  %s\n  %s" % (key, root[key], shipped[key]))
            ok = False
    return ok


def sha256(path: str) -> str:
    import hashlib  # pylint: disable=import-outside-toplevel
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def step_ee(tally: Tally, args) -> None:
    import yaml  # pylint: disable=import-outside-toplevel

    work = tempfile.mkdtemp(prefix="osops-ee-")
    try:
        # From the checkout: hack/ee-context and the repository root's definition.
        context = os.path.join(work, "context")
        rc = run([os.path.join(REPO, "hack", "ee-context"), "--context", context]).returncode
        containerfile = os.path.join(context, "Containerfile")
        tally.add("ee", "ansible-builder create", rc == 0 and os.path.isfile(containerfile))
        if rc == 0:
            with open(containerfile) as handle:
                built = handle.read()
            shipped = os.path.join(context, "_build", "collections", EE_TARBALL)
            tally.add("ee", "build context carries this collection and installs the collections",
                      os.path.isfile(shipped) and "ansible-galaxy collection install" in built)
        tally.add("ee", "the checkout's and the shipped EE definitions agree", ee_twins_agree())

        # From the tarball alone, as an operator: a fresh venv with nothing but
        # ansible-builder, no development environment on PATH, no ANSIBLE_* variables.
        dist = os.path.join(work, "dist")
        rc = run(["ansible-galaxy", "collection", "build", "--output-path", dist, REPO]).returncode
        tarballs = glob.glob(os.path.join(dist, "osops-lifecycle-*.tar.gz"))
        if rc != 0 or len(tarballs) != 1:
            tally.add("ee", "tarball: ansible-galaxy collection build", False)
            return
        tarball = tarballs[0]
        with tarfile.open(tarball) as archive:
            names = set(archive.getnames())
        missing = [name for name in EE_FILES if name not in names]
        tally.add("ee", "tarball ships the EE definition and the requirements files (%s)" % ", ".join(EE_FILES),
                  not missing)
        if missing:
            print("not in the tarball: %s" % missing)
            return
        try:
            venv_bin = builder_venv()
        except (RuntimeError, LookupError) as error:
            print(error)
            tally.add("ee", "a fresh venv with only ansible-builder", False)
            return
        env = operator_env(venv_bin)
        clean = (shutil.which("ansible-builder", path=env["PATH"]) == os.path.join(venv_bin, "ansible-builder")
                 and not os.path.exists(os.path.join(venv_bin, "ansible-galaxy"))
                 and not any(in_dev_env(p) for p in env["PATH"].split(os.pathsep))
                 and not any(k.startswith("ANSIBLE_") for k in env))
        print("operator PATH: %s" % env["PATH"], flush=True)
        tally.add("ee", "operator environment: a venv with ansible-builder and no Ansible, no dev env on PATH, "
                  "no ANSIBLE_*", clean)

        operator = os.path.join(work, "operator")
        unpacked = os.path.join(operator, "osops-lifecycle")
        os.makedirs(unpacked)
        # the commands of docs/awx.md's "Execution environment from the tarball"
        rc = run(["tar", "xzf", tarball, "-C", unpacked], cwd=operator, env=env).returncode
        shutil.copy(tarball, os.path.join(unpacked, "extensions", "ee", EE_TARBALL))
        context = os.path.join(operator, "context")
        proc = run(["ansible-builder", "create", "-f", os.path.join("osops-lifecycle", EE_SHIPPED),
                    "--context", context], cwd=operator, env=env)
        containerfile = os.path.join(context, "Dockerfile")  # ansible-builder's default name
        tally.add("ee", "from the unpacked tarball: ansible-builder create exits 0",
                  rc == 0 and proc.returncode == 0 and os.path.isfile(containerfile))
        if proc.returncode != 0 or not os.path.isfile(containerfile):
            return
        with open(containerfile) as handle:
            built = handle.read()
        build = os.path.join(context, "_build")
        copied = os.path.join(build, "collections", EE_TARBALL)
        with open(os.path.join(build, "requirements.yml")) as handle:
            collections = yaml.safe_load(handle)["collections"]
        ours = {"name": "/tmp/osops-collections/%s" % EE_TARBALL, "type": "file"}
        installs = ("COPY _build/collections/ /tmp/osops-collections/" in built
                    and re.search(r"ansible-galaxy collection install .*-r requirements\.yml", built) is not None
                    and os.path.isfile(copied) and sha256(copied) == sha256(tarball)
                    and ours in collections
                    and {"openstack.cloud", "community.general"} <= {c.get("name") for c in collections})
        if not installs:
            print("collections of the context: %s" % collections)
        tally.add("ee", "from the unpacked tarball: the Containerfile installs this collection from the tarball",
                  installs)

        def same(name: str) -> bool:
            context_file = os.path.join(build, name)
            return (os.path.isfile(context_file)
                    and sha256(context_file) == sha256(os.path.join(unpacked, name)))

        with open(os.path.join(build, "requirements.txt")) as handle:
            python = [line.split("#")[0].strip() for line in handle]
        requirements = (same("requirements.txt") and same("bindep.txt")
                        and any(re.match(r"openstacksdk\b", line) for line in python)
                        and "--user-pip=requirements.txt" in built and "--user-bindep=bindep.txt" in built)
        tally.add("ee", "from the unpacked tarball: the context installs requirements.txt (openstacksdk) "
                  "and bindep.txt", requirements)
    finally:
        shutil.rmtree(work, ignore_errors=True)


STEPS = {
    "sanity": step_sanity,
    "units": step_units,
    "docs": step_docs,
    "changelog": step_changelog,
    "lint": step_lint,
    "build": step_build,
    "ee": step_ee,
    "integration": step_integration,
}


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="hack/test",
        description="Run the collection's checks (all of them by default) and print one closing tally.",
    )
    parser.add_argument("steps", nargs="*", choices=[[]] + list(STEPS), metavar="STEP",
                        help="steps to run, of: %s (default: all)" % ", ".join(STEPS))
    parser.add_argument("-k", "--keyword", help="only unit tests matching this pytest -k expression, "
                        "or integration targets whose name contains it")
    args = parser.parse_args()
    chosen = args.steps or list(STEPS)

    tally = Tally()
    started = time.monotonic()
    for name in chosen:
        print("\n===== %s =====" % name, flush=True)
        begun = time.monotonic()
        try:
            STEPS[name](tally, args)
        except Exception as error:  # pylint: disable=broad-except
            tally.add(name, "step crashed: %s: %s" % (type(error).__name__, error), False)
        print("----- %s took %.0f s" % (name, time.monotonic() - begun), flush=True)

    print("\n===== summary (%.0f s) =====" % (time.monotonic() - started))
    for label in tally.failed:
        print("FAILED %s" % label)
    for label in tally.skipped:
        print("SKIPPED %s" % label)
    print("%d passed, %d failed, %d skipped" % (len(tally.passed), len(tally.failed), len(tally.skipped)))
    if not tally.passed and not tally.failed:
        print("no check ran: that is a failure")
        return 1
    return 1 if tally.failed else 0


if __name__ == "__main__":
    sys.exit(main())
