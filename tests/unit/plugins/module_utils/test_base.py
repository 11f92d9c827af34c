# SPDX-License-Identifier: GPL-3.0-or-later
"""The module base authenticates like openstack.cloud's modules and fails cleanly.

openstacksdk connects lazily, so these tests build real connections from real
clouds.yaml files without a cloud; they check which cloud and settings a module
ends up with, exactly what an operator would get from AWX or a shell.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from ansible_collections.osops.lifecycle.plugins.module_utils._base import (
    LifecycleModule,
    describe_sdk_error,
)

CLOUDS_YAML = """
clouds:
  {name}:
    auth:
      auth_url: {url}
      username: alice
      password: {password}
      project_name: demo
      user_domain_name: Default
      project_domain_name: Default
    region_name: {region}
"""


def write_clouds(path, *clouds):
    text = "clouds:\n" + "".join(
        CLOUDS_YAML.format(**c).split("clouds:\n", 1)[1] for c in clouds
    )
    path.write_text(text)
    return path


class ShowConnection(LifecycleModule):
    """Reports which cloud it connected to; fails on request."""

    argument_spec = dict(fail_with=dict(choices=["sdk", "bug"]))

    def run(self):
        if self.params["fail_with"] == "sdk":
            raise self.sdk.exceptions.HttpException(
                message="Quota exceeded for instances",
                http_status=413,
                request_id="req-0f3c",
            )
        if self.params["fail_with"] == "bug":
            raise KeyError("lease_expires")
        return dict(
            changed=False,
            cloud_name=self.conn.config.name,
            auth_url=self.conn.config.get_auth_args()["auth_url"],
            # Values given in no_log ``auth`` are masked in any output string;
            # the port, an integer, shows which endpoint was taken.
            auth_port=urlsplit(self.conn.config.get_auth_args()["auth_url"]).port,
            region=self.conn.config.get_region_name(),
            check_mode=self.check_mode,
        )


def test_awx_credential_single_cloud_without_cloud_option(run_module, clean_os_env, monkeypatch):
    # AWX's OpenStack credential: one cloud named "devstack", OS_CLIENT_CONFIG_FILE set, OS_CLOUD not.
    clouds = write_clouds(
        clean_os_env / "awx-clouds.yaml",
        dict(name="devstack", url="https://keystone.example.net:5000/v3", password="s3cret-awx", region="RegionTwo"),
    )
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(clouds))

    rc, result = run_module(ShowConnection, {})

    assert rc == 0, result
    assert result["cloud_name"] == "devstack"
    assert result["auth_url"] == "https://keystone.example.net:5000/v3"
    assert result["region"] == "RegionTwo"
    assert "s3cret-awx" not in repr(result)


def test_named_cloud_is_chosen_among_several(run_module, clean_os_env, monkeypatch):
    clouds = write_clouds(
        clean_os_env / "clouds.yaml",
        dict(name="prod", url="https://prod.example.net:5000/v3", password="p1", region="RegionOne"),
        dict(name="lab", url="https://lab.example.net:5000/v3", password="p2", region="LabRegion"),
    )
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(clouds))

    rc, result = run_module(ShowConnection, {"cloud": "lab"})

    assert rc == 0, result
    assert (result["cloud_name"], result["auth_url"], result["region"]) == (
        "lab",
        "https://lab.example.net:5000/v3",
        "LabRegion",
    )


def test_inline_auth_is_used_and_never_echoed(run_module, clean_os_env):
    auth = {
        "auth_url": "http://127.0.0.1:35357/v3",
        "username": "admin",
        "password": "very-secret-password",
        "project_name": "admin",
        "user_domain_name": "Default",
        "project_domain_name": "Default",
    }
    rc, result = run_module(ShowConnection, {"auth": auth, "region_name": "RegionOne"})

    assert rc == 0, result
    assert result["auth_port"] == 35357
    assert "very-secret-password" not in repr(result)


INLINE_AUTH = {
    "auth_url": "http://127.0.0.1:5000/v3",
    "username": "operator-one",
    "password": "pw-never-shown",
    "project_name": "operations",
}


def test_check_mode_is_supported(run_module, clean_os_env):
    auth = INLINE_AUTH
    rc, result = run_module(ShowConnection, {"auth": auth, "_ansible_check_mode": True})

    assert rc == 0, result
    assert result["check_mode"] is True


def test_api_error_becomes_a_clear_failure(run_module, clean_os_env):
    auth = INLINE_AUTH
    rc, result = run_module(ShowConnection, {"auth": auth, "fail_with": "sdk"})

    assert rc == 1
    assert result["failed"] is True
    assert "Quota exceeded for instances" in result["msg"]
    assert "413" in result["msg"] and "req-0f3c" in result["msg"]
    assert "Traceback" not in result["msg"]
    assert "pw-never-shown" not in repr(result)


def test_unexpected_error_names_module_and_error(run_module, clean_os_env):
    auth = INLINE_AUTH
    rc, result = run_module(ShowConnection, {"auth": auth, "fail_with": "bug"})

    assert rc == 1
    assert "KeyError" in result["msg"] and "lease_expires" in result["msg"]
    assert "Traceback" not in result["msg"]


def test_unknown_cloud_name_fails_with_the_name(run_module, clean_os_env, monkeypatch):
    clouds = write_clouds(
        clean_os_env / "clouds.yaml",
        dict(name="prod", url="https://prod.example.net:5000/v3", password="p1", region="RegionOne"),
    )
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(clouds))

    rc, result = run_module(ShowConnection, {"cloud": "prdo"})

    assert rc == 1
    assert "prdo" in result["msg"]


@pytest.mark.parametrize(
    "error, expected",
    [
        (ValueError("plain"), "plain"),
        (RuntimeError(""), "RuntimeError"),
    ],
)
def test_describe_plain_errors(error, expected):
    assert describe_sdk_error(error) == expected


OLD_COLLECTION_SCRIPT = r"""
import json, sys
sys.path.append(sys.argv[1])  # our collection, after site-packages' bundle
from ansible.module_utils.testing import patch_module_args
from ansible_collections.openstack.cloud.plugins.module_utils import openstack as oc
from ansible_collections.osops.lifecycle.plugins.module_utils._base import LifecycleModule

class Probe(LifecycleModule):
    def run(self):
        return dict(changed=False, cloud=self.conn.config.name, oc_file=oc.__file__)

with patch_module_args({}):
    Probe()()
"""


def test_works_with_openstack_cloud_2_5_and_current_sdk(tmp_path, clean_os_env):
    """The ``ansible`` 12 package bundles openstack.cloud 2.5, which alone fails with openstacksdk >= 4.15."""
    import json
    import os
    import subprocess
    import sys
    import sysconfig

    site = sysconfig.get_paths()["purelib"]
    manifest = os.path.join(site, "ansible_collections", "openstack", "cloud", "MANIFEST.json")
    if not os.path.exists(manifest):
        pytest.skip("no openstack.cloud bundled in site-packages")
    with open(manifest) as handle:
        bundled = json.load(handle)["collection_info"]["version"]
    if tuple(int(p) for p in bundled.split(".")[:2]) >= (2, 6):
        pytest.skip("bundled openstack.cloud %s does not have the problem" % bundled)

    ours = tmp_path / "collections"
    (ours / "ansible_collections" / "osops").mkdir(parents=True)
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(__file__)))))
    (ours / "ansible_collections" / "osops" / "lifecycle").symlink_to(repo)
    clouds = write_clouds(
        clean_os_env / "clouds.yaml",
        dict(name="devstack", url="https://k.example.net:5000/v3", password="x-secret", region="R1"),
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["OS_CLIENT_CONFIG_FILE"] = str(clouds)
    proc = subprocess.run(
        [sys.executable, "-c", OLD_COLLECTION_SCRIPT, str(ours)],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )
    result = json.loads(proc.stdout)
    assert result["oc_file"].startswith(site), "test must exercise the bundled openstack.cloud"
    assert proc.returncode == 0, result
    assert result["cloud"] == "devstack"
