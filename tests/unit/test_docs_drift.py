# SPDX-License-Identifier: GPL-3.0-or-later
"""Documentation that can be checked against the code mechanically stays in step with it (issue 17).

- ``version_added`` in the plugins' DOCUMENTATION and the roles' argument specs is never
  later than ``galaxy.yml``'s version, and a tarball name in the docs carries that version;
- the AWX templates ``playbooks/awx_setup.yml`` creates are the ones docs/awx.md lists in its
  table, and as many as its opening sentence counts;
- every ``lease_*`` / ``imagecache_*`` name in the code of docs/*.md (backticks, fenced
  blocks) is something that exists: a role variable (defaults or argument specs), a
  variable the playbooks use, a plugin, playbook, role or test target, or a lease
  metadata key; so a renamed variable (``lease_portal_url`` -> ``lease_mail_portal_url``)
  cannot linger in the docs.
"""

from __future__ import annotations

import ast
import glob
import os
import re

import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def path(*parts):
    return os.path.join(REPO, *parts)


class Loader(yaml.SafeLoader):
    """SafeLoader that reads Ansible's ``!unsafe`` strings as plain strings."""


Loader.add_constructor("!unsafe", lambda loader, node: loader.construct_scalar(node))


def load(*parts):
    with open(path(*parts)) as handle:
        return yaml.load(handle, Loader=Loader)  # noqa: S506 - a SafeLoader subclass


def read(*parts):
    with open(path(*parts)) as handle:
        return handle.read()


def version_tuple(text) -> tuple[int, ...]:
    numbers = re.findall(r"\d+", str(text))
    assert numbers, "not a version: %r" % (text,)
    return tuple(int(number) for number in numbers[:3])


COLLECTION_VERSION = load("galaxy.yml")["version"]


# --- version_added ----------------------------------------------------------------


def documentation_strings(filename):
    """The DOCUMENTATION strings of one Python file (module level or in a doc fragment's class)."""
    tree = ast.parse(read(filename), filename)
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "DOCUMENTATION"
                                                for t in node.targets):
            if isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
                yield node.value.value


def versions_added(data, where):
    """(where, value) for every version_added key anywhere in parsed YAML."""
    if isinstance(data, dict):
        for key, value in data.items():
            if key == "version_added":
                yield where, value
            else:
                yield from versions_added(value, "%s.%s" % (where, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            yield from versions_added(value, "%s[%d]" % (where, index))


def all_versions_added():
    found = []
    files = sorted(glob.glob(path("plugins", "**", "*.py"), recursive=True)
                   + glob.glob(path("extensions", "**", "plugins", "**", "*.py"), recursive=True))
    for filename in files:
        for text in documentation_strings(filename):
            found.extend(versions_added(yaml.safe_load(text), os.path.relpath(filename, REPO)))
    for filename in sorted(glob.glob(path("roles", "*", "meta", "argument_specs.yml"))):
        found.extend(versions_added(load(filename), os.path.relpath(filename, REPO)))
    return found


def test_version_added_is_never_later_than_the_collection():
    found = all_versions_added()
    # every module and filter documents it: the walk must see them
    plugins = glob.glob(path("plugins", "modules", "*.py")) + glob.glob(path("plugins", "filter", "*.py"))
    assert len({entry[0].split(".")[0] for entry in found}) >= len(plugins)
    later = [(where, value) for where, value in found
             if version_tuple(value) > version_tuple(COLLECTION_VERSION)]
    assert not later, "version_added later than galaxy.yml's %s: %s" % (COLLECTION_VERSION, later)


def test_tarball_names_in_the_docs_carry_the_collection_version():
    named = []
    for filename in sorted(glob.glob(path("docs", "*.md"))):
        for version in re.findall(r"osops-lifecycle-(\d+\.\d+\.\d+)\.tar\.gz", read(filename)):
            named.append((os.path.basename(filename), version))
    assert all(entry[1] == COLLECTION_VERSION for entry in named), named


# --- AWX templates ------------------------------------------------------------------

NUMBERS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8}


def awx_setup_templates():
    """{'job': names, 'workflow': names} that playbooks/awx_setup.yml creates."""
    created = {"job": set(), "workflow": set()}
    for play in load("playbooks", "awx_setup.yml"):
        for task in play.get("tasks", []):
            for module, kind in (("awx.awx.job_template", "job"), ("awx.awx.workflow_job_template", "workflow")):
                if module not in task:
                    continue
                name = task[module]["name"]
                if "{{" in name:
                    assert name.replace(" ", "") == "{{item.name}}", name
                    created[kind].update(item["name"] for item in task["loop"])
                else:
                    created[kind].add(name)
    return created


def awx_doc_table():
    """Template names of the first table in docs/awx.md (its first column), and the text before it."""
    text = read("docs", "awx.md")
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| Template"))
    names = set()
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        names.add(line.split("|")[1].strip())
    return names, "\n".join(lines[:start])


def test_awx_doc_lists_the_templates_awx_setup_creates():
    created = awx_setup_templates()
    assert created["job"] and created["workflow"]
    listed = awx_doc_table()[0]
    assert listed == created["job"] | created["workflow"]


def test_awx_doc_counts_the_templates_awx_setup_creates():
    created = awx_setup_templates()
    intro = awx_doc_table()[1]
    intro = " ".join(intro.split())
    jobs = re.search(r"\b(\w+) job templates?\b", intro)
    workflows = re.search(r"\b(\w+) workflow templates?\b", intro)
    assert jobs and workflows, "docs/awx.md should say how many job and workflow templates there are"
    assert NUMBERS.get(jobs.group(1).lower()) == len(created["job"]), jobs.group(0)
    assert NUMBERS.get(workflows.group(1).lower()) == len(created["workflow"]), workflows.group(0)


# --- role variables named in the docs -------------------------------------------------

VARIABLE = re.compile(r"\b((?:lease|imagecache)_[a-z0-9_]*[a-z0-9])")

# Names the docs may mention although nothing defines them any more, such as the old
# name in a "renamed from" sentence; each must still appear in some doc.
OLD_NAMES: frozenset[str] = frozenset({
    # docs/upgrading.md: the lease role's portal settings before their rename (changelog 0.1.0)
    "lease_portal_url", "lease_portal_link_days",
    # docs/upgrading.md: computed values that are no longer role defaults (changelog 0.1.0)
    "lease_results_of_play", "lease_scans_of_play", "lease_smtp",
})


def role_variables():
    names = set()
    for role in glob.glob(path("roles", "*")):
        if os.path.exists(os.path.join(role, "defaults", "main.yml")):
            names.update(load(role, "defaults", "main.yml") or {})
        specs = load(role, "meta", "argument_specs.yml")["argument_specs"]
        for entry_point in specs.values():
            names.update(entry_point.get("options", {}))
    return names


def other_known_names():
    """Plugins, playbooks, roles, test targets, the playbooks' own variables and the lease metadata keys."""
    names = set()
    for pattern in ("plugins/*/*.py", "playbooks/*.yml", "roles/*", "tests/integration/targets/*",
                    "extensions/eda/rulebooks/*.yml", "extensions/eda/plugins/*/*.py"):
        names.update(os.path.splitext(os.path.basename(p))[0] for p in glob.glob(path(pattern)))
    for playbook in glob.glob(path("playbooks", "*.yml")):
        with open(playbook) as handle:
            names.update(VARIABLE.findall(handle.read()))
    keys = read("plugins", "module_utils", "_lease", "keys.py")
    prefix = re.search(r'^DEFAULT_PREFIX\s*=\s*"([^"]*)"', keys, re.M).group(1)
    names.update(prefix + key for key in re.findall(r'self\.prefix \+ "(\w+)"', keys))
    return names


def doc_code_names():
    """(doc, line number, name) for every lease_*/imagecache_* name in code spans and fenced blocks."""
    found = []
    for filename in sorted(glob.glob(path("docs", "*.md"))):
        fenced = False
        for number, line in enumerate(read(filename).splitlines(), 1):
            if line.lstrip().startswith("```"):
                fenced = not fenced
                continue
            spans = [line] if fenced else re.findall(r"`[^`]+`", line)
            for span in spans:
                found.extend((os.path.basename(filename), number, name) for name in VARIABLE.findall(span))
    return found


def test_role_variables_named_in_the_docs_exist():
    variables = role_variables()
    assert {"lease_mail_portal_url", "imagecache_cache_dir"} & variables  # the specs were read
    known = variables | other_known_names() | OLD_NAMES
    unknown = sorted({(doc, number, name) for doc, number, name in doc_code_names() if name not in known})
    assert not unknown, "named in docs/ but defined nowhere (renamed?): %s" % unknown


def test_old_names_allowed_in_the_docs_are_still_mentioned():
    mentioned = {entry[2] for entry in doc_code_names()}
    assert OLD_NAMES <= mentioned, "drop from OLD_NAMES: %s" % sorted(OLD_NAMES - mentioned)


def test_readme_leads_operators_to_the_operating_guide_before_the_developer_quick_start():
    readme = read("README.md")
    assert "(docs/operating.md)" in readme
    assert readme.index("(docs/operating.md)") < readme.index("## Quick start")


def test_operating_guide_settings_are_role_variables():
    """The settings an operator copies from docs/operating.md are all options of the lease role."""
    text = read("docs", "operating.md")
    block = re.search(r"Save this as `~/osops/lease-settings.yml`.*?```yaml\n(.*?)```", text, re.S)
    assert block, "docs/operating.md lost its settings block"
    settings = yaml.safe_load(block.group(1))
    unknown = sorted(set(settings) - role_variables())
    assert not unknown, "docs/operating.md sets variables the lease role does not take: %s" % unknown


def test_lease_playbooks_leave_removal_to_the_operator():
    """lease_cycle and reap are dry runs for removal unless the operator sets lease_reap_remove."""
    for playbook in ("lease_cycle.yml", "reap.yml"):
        for play in load("playbooks", playbook):
            assert "lease_reap_remove" not in (play.get("vars") or {}), playbook


DEFAULT_CLAIMS = (
    re.compile(r"`((?:lease|imagecache)_\w+)`,? (\S+?),? by default"),
    re.compile(r"`((?:lease|imagecache)_\w+)` \(default:? `?([^`),]+)`?[),]"),
    re.compile(r"`((?:lease|imagecache)_\w+)` defaults to `?([^`\s,]+)`?"),
    re.compile(r"`((?:lease|imagecache)_\w+)`,? default (on|off|true|false|\d+)\b"),
)
HOME_LOOKUP = re.compile(r"\{\{\s*lookup\('ansible\.builtin\.env', 'HOME'\)\s*\}\}")


def role_defaults():
    defaults = {}
    for role in glob.glob(path("roles", "*")):
        if os.path.exists(os.path.join(role, "defaults", "main.yml")):
            defaults.update(load(role, "defaults", "main.yml") or {})
    return defaults


def as_documented(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return HOME_LOOKUP.sub("~", str(value))


def test_defaults_stated_in_the_docs_are_the_roles_defaults():
    """"`lease_x`, 7 by default", "`lease_x` (default `y`)", "`lease_x` defaults to y": the role's defaults."""
    defaults, wrong, claims = role_defaults(), [], 0
    words = {"on": "true", "off": "false", "yes": "true", "no": "false"}
    for doc in glob.glob(path("docs", "*.md")) + [path("README.md")]:
        with open(doc) as handle:
            text = " ".join(handle.read().split())
        for pattern in DEFAULT_CLAIMS:
            for match in pattern.finditer(text):
                name, claimed = match.group(1), match.group(2).strip("`").replace("$HOME", "~")
                if name not in defaults:
                    continue
                claims += 1
                if words.get(claimed.lower(), claimed) != as_documented(defaults[name]):
                    wrong.append("%s: %s documented as %r, the default is %r" % (
                        os.path.basename(doc), name, claimed, defaults[name]))
    assert claims >= 3, "the docs state no defaults any more: this test lost its subject"
    assert not wrong, wrong
