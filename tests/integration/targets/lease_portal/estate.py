# SPDX-License-Identifier: GPL-3.0-or-later
"""What the owner's page needs beyond the lease_cycle estate: more of ann's resources (cycle.py's helpers).

  estate.py setup STATE      ann's volume "rel" in project side (to release) and her volume "busy" in project
                             main with a snapshot of it (in use: never offered for release); STATE.extra.json
  estate.py cleanup STATE
"""

from __future__ import annotations

import json
import os
import sys
from datetime import datetime, timedelta, timezone

import openstack

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lease_cycle"))
from cycle import admin, as_user, iso, load  # noqa: E402  pylint: disable=wrong-import-position


def setup(path: str) -> None:
    state = load(path)
    conn = admin()
    tag, password = state["tag"], state["tag"] + "-pw"
    now = datetime.now(timezone.utc)
    extra = {}

    def ann_in(project: str):
        return as_user(conn, state["users"]["ann"]["name"], password, state["projects"][project]["name"])

    for short, project, days in (("rel", "side", 20), ("busy", "main", 40)):
        volume = ann_in(project).block_storage.create_volume(
            name="%s-%s" % (tag, short), size=1, metadata={"lease_expires": iso(now + timedelta(days=days))})
        conn.block_storage.wait_for_status(volume, "available", failures=["error"], wait=120, interval=1)
        extra[short] = {"id": volume.id, "name": volume.name, "kind": "volume", "user": "ann", "project": project}
    owner = ann_in("main")
    snapshot = owner.block_storage.create_snapshot(volume_id=extra["busy"]["id"], name="%s-busy-snap" % tag,
                                                   metadata={"lease_expires": iso(now + timedelta(days=40))})
    owner.block_storage.wait_for_status(snapshot, "available", failures=["error"], wait=120, interval=1)
    extra["busy-snap"] = {"id": snapshot.id, "name": snapshot.name, "kind": "snapshot", "user": "ann",
                          "project": "main"}
    with open(path + ".extra.json", "w") as handle:
        json.dump({"resources": extra}, handle, indent=1)
    print("ann's extra resources: %s" % ", ".join(sorted(extra)))


def cleanup(path: str) -> None:
    extra_path = path + ".extra.json"
    if not os.path.exists(extra_path):
        return
    conn = admin()
    resources = load(extra_path)["resources"].values()
    for resource in resources:
        if resource["kind"] == "snapshot":
            try:
                conn.block_storage.delete_snapshot(resource["id"], ignore_missing=True)
                conn.block_storage.wait_for_delete(conn.block_storage.get_snapshot(resource["id"]), wait=120)
            except openstack.exceptions.SDKException:
                pass
    for resource in resources:
        if resource["kind"] == "volume":
            try:
                conn.block_storage.delete_volume(resource["id"], ignore_missing=True)
            except openstack.exceptions.SDKException as error:
                print("cleanup: %s" % error)


def main() -> int:
    if sys.argv[1] == "setup":
        setup(sys.argv[2])
    elif sys.argv[1] == "cleanup":
        cleanup(sys.argv[2])
    else:
        raise SystemExit(__doc__)
    return 0


if __name__ == "__main__":
    sys.exit(main())
