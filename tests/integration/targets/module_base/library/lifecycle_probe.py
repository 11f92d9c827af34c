#!/usr/bin/python
# SPDX-License-Identifier: GPL-3.0-or-later
"""Test-only module: reports the connection the module base built, or fails on request."""

from __future__ import annotations

DOCUMENTATION = r"""
module: lifecycle_probe
short_description: Test-only probe of the osops.lifecycle module base
description: Reports the cloud the module base connected to; with O(list_servers) it calls the API.
options:
  list_servers:
    description: Call the compute API (to see how API failures are reported).
    type: bool
    default: false
extends_documentation_fragment:
  - openstack.cloud.openstack
author: osops.lifecycle contributors
"""

from ansible_collections.osops.lifecycle.plugins.module_utils._base import LifecycleModule


class LifecycleProbe(LifecycleModule):
    argument_spec = dict(list_servers=dict(type="bool", default=False))

    def run(self):
        if self.params["list_servers"]:
            list(self.conn.compute.servers())
        return dict(
            changed=False,
            cloud_name=self.conn.config.name,
            region=self.conn.config.get_region_name(),
            check_mode=self.check_mode,
        )


def main():
    LifecycleProbe()()


if __name__ == "__main__":
    main()
