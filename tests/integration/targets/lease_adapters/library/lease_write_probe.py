#!/usr/bin/python
# SPDX-License-Identifier: GPL-3.0-or-later
"""Test-only module: write and remove metadata keys through the lease adapters, read them back."""

from __future__ import annotations

DOCUMENTATION = r"""
module: lease_write_probe
short_description: Test-only probe of the lease adapters
description: Sets O(values) and removes O(remove) on one resource through its adapter; returns its record.
options:
  kind: {description: Resource kind., type: str, required: true}
  id: {description: Resource id., type: str, required: true}
  values: {description: Keys to set., type: dict, default: {}}
  remove: {description: Keys to remove., type: list, elements: str, default: []}
extends_documentation_fragment:
  - openstack.cloud.openstack
author: osops.lifecycle contributors
"""

from ansible_collections.osops.lifecycle.plugins.module_utils._base import LifecycleModule
from ansible_collections.osops.lifecycle.plugins.module_utils._lease.keys import effective_change
from ansible_collections.osops.lifecycle.plugins.module_utils._lease.kinds import adapter_for


class LeaseWriteProbe(LifecycleModule):
    argument_spec = dict(
        kind=dict(required=True), id=dict(required=True),
        values=dict(type="dict", default={}), remove=dict(type="list", elements="str", default=[]),
    )

    def record(self, adapter):
        return adapter.find(self.params["id"])

    def run(self):
        adapter = adapter_for(self.params["kind"], self.conn)
        before = self.record(adapter)
        if before is None:
            self.fail_json(msg="no %s %s" % (self.params["kind"], self.params["id"]))
        values, remove = effective_change(before["metadata"], self.params["values"], tuple(self.params["remove"]))
        adapter.apply(self.params["id"], values, remove)
        return dict(changed=True, before=before["metadata"], after=self.record(adapter)["metadata"])


def main():
    LeaseWriteProbe()()


if __name__ == "__main__":
    main()
