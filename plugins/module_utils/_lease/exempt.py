# Copyright: osops.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Exemptions: what the lease policy never touches (pure).

Which rules an owner can trigger on their own resources (they write names,
metadata, image visibility ``community``/``shared``, ``protected``, their
servers' addresses): every rule but users, projects, ids and public images.
``sealed_only`` keeps just those, plus exemptions an operator sealed with
``resource_lease`` (``<prefix>exempt``, checked in ``decide``).

A resource is read here as a mapping of its fields (a ``record.ResourceRecord``, or plain
data in tests): ``kind``, ``id``, ``name``, ``project_id``, ``project_name``, ``user_id``,
``user_name``, ``metadata``, ``addresses`` (servers), ``visibility`` and ``protected`` (images),
plus whatever else the adapter keeps; JMESPath sees a plain copy of all of them.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

try:
    import netaddr
    HAS_NETADDR = True
except ImportError:  # reported by the module with missing_required_lib
    HAS_NETADDR = False

try:
    import jmespath
    HAS_JMESPATH = True
except ImportError:
    HAS_JMESPATH = False


class ExemptionError(ValueError):
    """An exemption option that cannot be used (bad CIDR, bad JMESPath, missing library)."""


@dataclass(frozen=True)
class Exemptions:
    users: frozenset[str] = frozenset()           # user ids or names
    projects: frozenset[str] = frozenset()        # project ids or names
    resource_ids: frozenset[str] = frozenset()
    name_globs: tuple[str, ...] = ()
    metadata: tuple[tuple[str, str], ...] = ()    # key, value ("*" matches any value)
    cidrs: tuple[str, ...] = ()                   # servers with an address in one of these
    jmespath: str | None = None                   # truthy result -> exempt
    image_visibilities: frozenset[str] = frozenset(("public", "community"))


class CompiledExemptions:
    """Exemptions with CIDRs and the JMESPath expression parsed once per run."""

    def __init__(self, exemptions: Exemptions, sealed_only: bool = False):
        self.exemptions = exemptions
        # only rules an owner cannot trigger: users, projects, ids, public images (and sealed exemptions, in decide)
        self.sealed_only = sealed_only
        self.networks = []
        if exemptions.cidrs:
            if not HAS_NETADDR:
                raise ExemptionError("exempt CIDRs need the Python library netaddr")
            for cidr in exemptions.cidrs:
                try:
                    self.networks.append(netaddr.IPNetwork(cidr))
                except (netaddr.AddrFormatError, ValueError, TypeError):
                    raise ExemptionError("not a network in CIDR notation: %r" % cidr) from None
        self.expression = None
        if exemptions.jmespath:
            if not HAS_JMESPATH:
                raise ExemptionError("an exempt JMESPath expression needs the Python library jmespath")
            try:
                self.expression = jmespath.compile(exemptions.jmespath)
            except jmespath.exceptions.JMESPathError as error:
                raise ExemptionError("invalid JMESPath expression %r: %s" % (exemptions.jmespath, error)) from None

    def reason(self, resource: dict) -> str | None:
        """Why the resource is exempt, or None. The first matching rule is named."""
        e = self.exemptions
        for key, label in (("user_id", "user"), ("user_name", "user")):
            if resource.get(key) and resource[key] in e.users:
                return "%s %s is exempt" % (label, resource[key])
        for key in ("project_id", "project_name"):
            if resource.get(key) and resource[key] in e.projects:
                return "project %s is exempt" % resource[key]
        if resource.get("id") in e.resource_ids:
            return "resource id is exempt"
        if resource.get("kind") == "image" and resource.get("visibility") == "public" \
                and "public" in e.image_visibilities:
            return "public image"
        if self.sealed_only:
            return None
        name = resource.get("name") if isinstance(resource.get("name"), str) else ""
        for glob in e.name_globs:
            if fnmatch.fnmatchcase(name, glob):
                return "name matches %s" % glob
        metadata = resource.get("metadata") or {}
        for key, value in e.metadata:
            if key in metadata and (value == "*" or str(metadata[key]) == value):
                return "metadata %s=%s" % (key, str(metadata[key])[:60])
        if resource.get("kind") == "image" and resource.get("protected"):
            return "protected image"
        if resource.get("kind") == "image" and resource.get("visibility") in e.image_visibilities:
            return "%s image" % resource["visibility"]
        for address in resource.get("addresses") or ():
            for network in self.networks:
                try:
                    if netaddr.IPAddress(address) in network:
                        return "address %s in %s" % (address, network)
                except (netaddr.AddrFormatError, ValueError, TypeError):
                    continue
        if self.expression is not None:
            try:
                if self.expression.search(resource.plain() if hasattr(resource, "plain") else resource):
                    return "matches %s" % e.jmespath
            except jmespath.exceptions.JMESPathError:
                return None
        return None
