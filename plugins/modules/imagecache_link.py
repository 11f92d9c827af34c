#!/usr/bin/python
# Copyright: osops.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: imagecache_link
short_description: Pre-seed Nova's image cache with hard links of Glance's image files
version_added: 0.1.0
description:
  - Links each active Glance image file (C(<source_dir>/<image id>)) into Nova's image cache
    (C(<cache_dir>/<sha1 of the image id>)), so instances boot without downloading their image.
  - Runs on the host that holds both directories (a compute node with the NFS-backed instances
    directory and the Glance file store on one mount). Needs no cloud access; pass the image list
    from M(openstack.cloud.image_info) run once on the controller.
  - Links only C(active) images whose file exists, is a regular file (not a root-owned one in a store root does not own),
    has Glance's size (and hash with O(verify=hash)), and whose content (header magic, not only Glance's
    C(disk_format)) is one of O(formats).
    Never links a qcow2 that names a backing file or an external data file.
  - Never replaces an existing base file that is not a link of the Glance file (Nova's own download
    may be a converted copy instances use); such images are reported in RV(skipped_images).
  - Holds Nova's own lock C(<instances_dir>/locks/nova-<sha1>) while creating or removing a base file,
    and sets owner, group and mode. Because a hard link shares its inode with Glance's file, the
    owner and mode apply to Glance's file as well; keep Glance's read access (the default mode
    V(0644) does).
  - With O(touch), refreshes the base file's modification time when it is older than
    O(touch_interval), so Nova's cleanup pass (C(remove_unused_base_images)) does not remove
    pre-seeded files of images uploaded more than a day ago. Run the module more often than
    Nova's C(remove_unused_original_minimum_age_seconds).
  - One bad image never stops the others; I/O and permission errors are reported per image in
    RV(errors).
  - Works as root inside directories the C(nova) user owns, so it treats them as hostile ground. Every directory
    is opened once, component by component; a symlink is followed only inside a directory that only root can write
    (an operator's C(instances -> /mnt/nfs/instances)); anywhere else the run fails with C(refused). Files are
    named relative to those open directories and never through a symlink; a Glance file is checked and linked as one
    open file; owner, mode and times change only through a descriptor of the checked file. What the module will not
    touch is listed in RV(refused). See the threat model in C(docs/imagecache.md).
options:
  images:
    description:
      - Images as Glance returns them; the keys used are C(id), C(status), C(size), C(disk_format),
        C(os_hash_algo) and C(os_hash_value). Other keys are ignored.
      - For example the RV(openstack.cloud.image_info#module:images) of M(openstack.cloud.image_info).
      - Without O(image_ids), this must be the whole list of Glance's images when O(prune) is set; see O(image_ids).
    type: list
    elements: dict
    required: true
  image_ids:
    description:
      - Limit the run to these image ids; empty (the default) covers every image in O(images).
      - Only the entries of O(images) with one of these ids are linked and checked; the others are ignored (not even
        reported in RV(skipped_images)).
      - With O(prune), only the base files of these ids are candidates. An id that is not active in O(images), or
        absent from it (deleted in Glance), counts as gone, and its base file is pruned when it is ours and no
        instance uses it. Base files and the O(state_file) records of every other image are neither looked at nor
        changed.
      - Used by the event rulebooks, which roll out or prune one image. A partial O(images) list is safe with
        O(prune) only with this option; without it, every image missing from the list counts as gone.
      - An id that cannot be an image id (empty, containing C(/), starting with C(.)) fails the module before
        anything is done.
    type: list
    elements: str
    default: []
  source_dir:
    description: Glance's file store directory (C(filesystem_store_datadir)).
    type: path
    default: /var/lib/glance/images
  cache_dir:
    description:
      - Nova's image cache directory (C($instances_path/_base)).
      - Must exist unless O(create_cache_dir) is set.
    type: path
    default: /var/lib/nova/instances/_base
  create_cache_dir:
    description:
      - Create O(cache_dir) when it is missing and sits directly in O(instances_dir), as on a compute
        that has not booted anything yet. It gets the owner and group of O(instances_dir), as Nova
        would make it. Never in check mode.
      - Off by default so that a mistyped O(cache_dir) fails instead of filling a directory Nova never reads.
    type: bool
    default: false
  instances_dir:
    description:
      - Nova's C(instances_path). Its C(locks) directory holds Nova's locks; with O(prune), instance
        disks under it are read to find base files in use.
      - Defaults to the parent of O(cache_dir).
    type: path
  owner:
    description:
      - User to own the base files, for example the qemu or nova user. Unchanged if omitted.
      - A name must exist on the host; a number must be a valid id (0 to 4294967294).
    type: str
  group:
    description: Group of the base files, a name that exists on the host or a number. Unchanged if omitted.
    type: str
  mode:
    description:
      - Permissions of the base files, as an octal string (V(0644)) or a number.
      - Between V(0000) and V(0777); setuid, setgid and sticky bits are refused (the mode lands on Glance's file too).
    type: raw
    default: "0644"
  formats:
    description:
      - Content formats that may be linked. The default matches Nova's C(force_raw_images=True);
        Nova treats ISO content as raw, and would boot any other format in C(_base) wrongly.
    type: list
    elements: str
    default: [raw, iso]
  verify:
    description:
      - V(size) checks the file's size against Glance's C(size).
      - V(hash) also checks the content against C(os_hash_value) (by C(os_hash_algo)); verified hashes
        are remembered in O(state_file) by inode and size, so unchanged files are not hashed again.
    type: str
    choices: [size, hash]
    default: size
  touch:
    description: Refresh base files' modification time (see O(touch_interval)).
    type: bool
    default: true
  touch_interval:
    description: Seconds after which a base file's modification time is refreshed.
    type: int
    default: 3600
  fallback:
    description:
      - What to do when a hard link is impossible (different mounts, C(EXDEV); or C(EPERM) under
        C(fs.protected_hardlinks)).
      - V(fail) reports an error naming both mounts. V(reflink) clones the file (FICLONE; tested on
        Btrfs; XFS with C(reflink=1) and NFS 4.2 should work as far as they support FICLONE, untested).
        V(copy) copies it. Both write a temp file, fsync it and link it to the final name. Never a
        symlink.
    type: str
    choices: [fail, reflink, copy]
    default: fail
  prune:
    description:
      - Remove base files that are hard links (or copies made by this module) of images that are no
        longer active in O(images), unless an instance disk under O(instances_dir) uses them as
        backing file; those are reported in RV(kept).
      - With O(image_ids), only the base files of those images (see there).
      - While any instance disk has a header that does not say which base file it uses (a backing file
        name longer than qcow2 allows, or outside the file), nothing is pruned and RV(kept) says why.
    type: bool
    default: false
  state_file:
    description:
      - Where the module remembers the copies it made and the hashes it verified for this cache.
        Kept outside O(cache_dir) so Nova never sees it.
      - Defaults to C(/var/lib/osops-lifecycle/imagecache-<hash of cache_dir>.json).
    type: path
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
  platform:
    platforms: posix
seealso:
  - module: openstack.cloud.image_info
notes:
  - Read C(docs/imagecache.md) in the collection for the Nova settings and NFS requirements.
author:
  - osops.lifecycle contributors (@osops)
"""

EXAMPLES = r"""
- name: Read the images once, on the controller
  openstack.cloud.image_info:
  delegate_to: localhost
  run_once: true
  register: glance

- name: Link them into the image cache of every compute node
  osops.lifecycle.imagecache_link:
    images: "{{ glance.images }}"
    owner: qemu
    group: qemu

- name: Also clean links of deleted images, verifying content hashes
  osops.lifecycle.imagecache_link:
    images: "{{ glance.images }}"
    verify: hash
    prune: true

- name: After an image.delete event, prune that one image's link and touch nothing else
  osops.lifecycle.imagecache_link:
    images: []  # the image is gone from Glance
    image_ids: ["{{ deleted_image_id }}"]
    prune: true

- name: After an image.activate event, link that one image (the others in the list are ignored)
  osops.lifecycle.imagecache_link:
    images: "{{ glance.images }}"
    image_ids: ["{{ activated_image_id }}"]
    prune: true
"""

RETURN = r"""
linked:
  description: Base files created in this run (or that would be, in check mode).
  returned: always
  type: list
  elements: dict
  contains:
    id:
      description: Image id.
      type: str
    base_name:
      description: The base file's name, sha1 of the image id.
      type: str
    path:
      description: The base file's path.
      type: str
    method:
      description: How it was made, V(hard link), V(reflink) or V(copy).
      type: str
already_linked:
  description: Ids of images whose base file already is a link (or our copy) of the Glance file.
  returned: always
  type: list
  elements: str
updated:
  description: Existing base files whose owner, mode or modification time were changed.
  returned: always
  type: list
  elements: dict
  sample: [{"id": "8b6e...", "path": "/var/lib/nova/instances/_base/3f7c...", "changes": ["touch"]}]
skipped_images:
  description: Images not linked, each with C(id) and C(reason).
  returned: always
  type: list
  elements: dict
  sample: [{"id": "8b6e...", "reason": "status is queued, not active"}]
pruned:
  description: Base files removed by O(prune), each with C(base_name), C(id) (if known) and C(path).
  returned: always
  type: list
  elements: dict
kept:
  description: Base files O(prune) would have removed but an instance uses, with C(base_name), C(id), C(reason).
  returned: always
  type: list
  elements: dict
errors:
  description: Per-image failures, each with C(id), C(path) and C(error) (the OS error).
  returned: always
  type: list
  elements: dict
refused:
  description:
    - Files the module would not work through, each with C(path), C(reason) (starting with C(refused:)) and C(id)
      when an image is concerned. For example a Glance file that is a symlink or not a regular file, or owned by an
      unexpected user; a lock file that is not a regular file; an instance disk that is not a regular file.
    - When a directory itself is refused (a symlink where the C(nova) user could have made it), the module fails
      and this list holds that directory.
  returned: always
  type: list
  elements: dict
  sample: [{"id": "8b6e...", "path": "/var/lib/glance/images/8b6e...", "reason": "refused: the Glance file is a symlink, not a regular file"}]
temp_files_removed:
  description: Temp files of an interrupted earlier run that were removed.
  returned: always
  type: list
  elements: str
counts:
  description: Number of entries in each list above.
  returned: always
  type: dict
  sample: {"linked": 2, "already_linked": 40, "updated": 0, "skipped_images": 3, "pruned": 0, "kept": 0, "errors": 0, "refused": 0}
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.osops.lifecycle.plugins.module_utils._imagecache.cache_run import Options, describe_os_error, refused_entry, run
from ansible_collections.osops.lifecycle.plugins.module_utils._imagecache.fsdir import Refused
from ansible_collections.osops.lifecycle.plugins.module_utils._imagecache.options import parse_id, parse_image_ids, parse_mode, parse_touch_interval
from ansible_collections.osops.lifecycle.plugins.module_utils._imagecache.plan import Wanted


def main():
    module = AnsibleModule(
        argument_spec=dict(
            images=dict(type="list", elements="dict", required=True),
            source_dir=dict(type="path", default="/var/lib/glance/images"),
            cache_dir=dict(type="path", default="/var/lib/nova/instances/_base"),
            instances_dir=dict(type="path"),
            owner=dict(type="str"),
            group=dict(type="str"),
            mode=dict(type="raw", default="0644"),
            formats=dict(type="list", elements="str", default=["raw", "iso"]),
            verify=dict(type="str", choices=["size", "hash"], default="size"),
            touch=dict(type="bool", default=True),
            touch_interval=dict(type="int", default=3600),
            fallback=dict(type="str", choices=["fail", "reflink", "copy"], default="fail"),
            prune=dict(type="bool", default=False),
            create_cache_dir=dict(type="bool", default=False),
            state_file=dict(type="path"),
            image_ids=dict(type="list", elements="str", default=[]),
        ),
        supports_check_mode=True,
    )
    params = module.params
    try:
        wanted = Wanted(uid=parse_id(params["owner"], "owner"), gid=parse_id(params["group"], "group"),
                        mode=parse_mode(params["mode"]), touch=params["touch"],
                        touch_interval=parse_touch_interval(params["touch_interval"]),
                        formats=frozenset(params["formats"]), verify_hash=params["verify"] == "hash")
        image_ids = parse_image_ids(params["image_ids"])
    except ValueError as error:
        module.fail_json(msg="invalid option: %s" % error)
    options = Options(
        source_dir=params["source_dir"],
        cache_dir=params["cache_dir"],
        instances_dir=params["instances_dir"],
        state_file=params["state_file"],
        wanted=wanted,
        fallback=params["fallback"],
        prune=params["prune"],
        check_mode=module.check_mode,
        create_cache_dir=params["create_cache_dir"],
        image_ids=image_ids,
    )
    try:
        report = run(options, params["images"])
    except Refused as error:
        module.fail_json(msg="cannot work on the image cache: %s" % error,
                         refused=[refused_entry(error.path, error.reason)])
    except OSError as error:
        module.fail_json(msg="cannot work on the image cache: %s: %s" % (error.filename, describe_os_error(error)))
    result = report.result()
    errors = report.lists["errors"]
    if errors:
        module.warn("%d image(s) failed, see errors; first: %s: %s" % (len(errors), errors[0]["path"], errors[0]["error"]))
    if report.lists["refused"]:
        module.warn("%d path(s) refused as unsafe, see refused; first: %s: %s"
                    % (len(report.lists["refused"]), report.lists["refused"][0]["path"], report.lists["refused"][0]["reason"]))
    if module._diff:
        result["diff"] = {
            "before": "".join(line + "\n" for line in report.diff_before),
            "after": "".join(line + "\n" for line in report.diff_after),
        }
    module.exit_json(**result)


if __name__ == "__main__":
    main()
