# Copyright: osops.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The lease portal: an owner's page of everything they hold, one click from their mail.

- A link carries a signed, expiring token (``_lease/token.py``) naming the owner (and the
  resources that mail covered). Opening it (GET) only shows a page: nothing changes, so
  mail scanners that fetch links do no harm.
- The page lists all of the owner's resources in the portal's cloud (every kind and project),
  with the stage the lease cycle's own decision gives them (``scan`` + ``decide_scan``, in
  check mode): expiry, stage, extensions left.
- Extending is a POST from that page (several resources at once), with a CSRF token
  (Flask-WTF). The portal extends through the collection's own lease code (``LeaseEditor``,
  the one ``resource_lease`` uses), as the owner (``only_owner``), within the same caps,
  and appends to the same audit log.
- Releasing (delete now) is a POST from a confirmation page, with CSRF and a required
  confirmation; only the owner's own resources, never exempt or in-use ones (checked again
  live by the reaper just before removal), through the reaper with the delete verb; audited.
- A link extends and releases each resource once; a second POST is a replay and is
  refused. Tampered, expired and unknown links get a refusal page.

Configuration: a JSON file named by ``OSOPS_LEASE_PORTAL_CONFIG`` (see the
lease_portal role): ``keys`` (signing keys, newest first), ``cloud`` (clouds.yaml
name), ``policy`` (the lease_policy options, with its ``exempt_*`` exemptions),
``sealed_exemptions_only``, ``audit_log``, ``state_dir``, ``extend_days`` (the choices
offered), ``secure_cookies``, ``release`` (offer releases; default true).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import sqlite3
import time
from dataclasses import replace
from datetime import datetime, timezone

from flask import Flask, abort, render_template, request
from flask_wtf.csrf import CSRFError, CSRFProtect

from ansible_collections.osops.lifecycle.plugins.module_utils._lease.audit import AuditLog
from ansible_collections.osops.lifecycle.plugins.module_utils._lease.decide import ReapOptions, decide_scan
from ansible_collections.osops.lifecycle.plugins.module_utils._lease.edit import EditError, EditRequest
from ansible_collections.osops.lifecycle.plugins.module_utils._lease.editor import LeaseEditor
from ansible_collections.osops.lifecycle.plugins.module_utils._lease.keys import readable_time
from ansible_collections.osops.lifecycle.plugins.module_utils._lease.keystone import KeystoneDirectory
from ansible_collections.osops.lifecycle.plugins.module_utils._lease.kinds import adapter_for
from ansible_collections.osops.lifecycle.plugins.module_utils._lease.options import (
    EXEMPTIONS_ARGUMENT_SPEC, POLICY_ARGUMENT_SPEC, OptionError, exemptions_from_params, keys_from_params,
    policy_from_params, seals_from_params)
from ansible_collections.osops.lifecycle.plugins.module_utils._lease.owner_page import (
    IN_USE_REFUSAL, RELEASE_STATUS, owner_rows, release_refusal)
from ansible_collections.osops.lifecycle.plugins.module_utils._lease.reaper import GONE, REMOVED, SKIPPED, Reaper
from ansible_collections.osops.lifecycle.plugins.module_utils._lease.scan import ScanScope, scan
from ansible_collections.osops.lifecycle.plugins.module_utils._lease.token import KINDS, TokenError, verify

# how long a release may wait for the cloud (gunicorn's --timeout in the unit is longer)
RELEASE_TIMEOUT = 90

REFUSALS = {
    "malformed": ("This is not a valid link", "The link is incomplete or damaged. Open it again from the mail."),
    "tampered": ("This link was changed", "The link does not match what was sent. Nothing was changed."),
    "expired": ("This link has expired",
                "Links in lease mails work for a limited time. The next mail has a new one."),
    "replayed": ("This link was already used", "Each link extends or releases each resource once. Nothing was changed."),
    "not_yours": ("Not yours", "That resource is not one of yours. Nothing was changed."),
    "exempt": ("Exempt", "That resource is exempt from leases: the portal does not release it. Nothing was changed."),
    "in_use": ("In use", "Something still uses that resource (a server, a snapshot). Nothing was changed."),
    "unreadable": ("Cannot be read", "The cloud returned that resource in a form the portal cannot read. "
                   "Nothing was changed."),
    "missing": ("No longer there", "That resource does not exist (any more). Nothing was changed."),
    "not_confirmed": ("Not confirmed", "Tick the confirmation to release a resource. Nothing was changed."),
    "no_release": ("Releases are off", "This portal does not release resources. Nothing was changed."),
    "bad_request": ("That did not work", "The form was incomplete or too old. Go back, reload the page, try again."),
}
STATUS = {"expired": 410, "replayed": 409, "missing": 404, "not_confirmed": 400, "bad_request": 400, "failed": 502,
          **RELEASE_STATUS}


def load_config(path: str) -> dict:
    with open(path) as handle:
        config = json.load(handle)
    if not config.get("keys"):
        raise SystemExit("lease portal: no signing keys in %s" % path)
    return config


def chosen_extensions(form, choices: list[int]) -> list[tuple[str, str, int]] | None:
    """(kind, id, days) for every ``days:<kind>:<id>`` field given a number (the page's selects; empty: keep);
    None for a form that names an unknown kind or offers days the page does not."""
    chosen = []
    for name, value in form.items(multi=True):
        if not name.startswith("days:") or value == "":
            continue
        parts = name.split(":", 2)
        if len(parts) != 3 or parts[1] not in KINDS or not parts[2]:
            return None
        try:
            days = int(value)
        except ValueError:
            return None
        if days not in choices:
            return None
        chosen.append((parts[1], parts[2], days))
    return chosen


class UsedLinks:
    """Which (link nonce, resource) pairs already extended something: the replay guard."""

    def __init__(self, path: str):
        self.path = path
        with self._db() as db:
            db.execute("CREATE TABLE IF NOT EXISTS used (nonce TEXT, kind TEXT, id TEXT, expires INTEGER,"
                       " used_at INTEGER, PRIMARY KEY (nonce, kind, id))")

    def _db(self):
        return sqlite3.connect(self.path, timeout=10, isolation_level="IMMEDIATE")

    def claim(self, nonce: str, kind: str, resource_id: str, expires: int) -> bool:
        """True for the first use; False if this link already extended this resource."""
        now = int(time.time())
        with self._db() as db:
            db.execute("DELETE FROM used WHERE expires < ?", (now,))
            try:
                db.execute("INSERT INTO used VALUES (?, ?, ?, ?, ?)", (nonce, kind, resource_id, expires, now))
            except sqlite3.IntegrityError:
                return False
        return True

    def release(self, nonce: str, kind: str, resource_id: str) -> None:
        """The extension did not happen (refused, cloud error): the link may be used again."""
        with self._db() as db:
            db.execute("DELETE FROM used WHERE nonce = ? AND kind = ? AND id = ?", (nonce, kind, resource_id))

    def used(self, nonce: str) -> set:
        with self._db() as db:
            return set(db.execute("SELECT kind, id FROM used WHERE nonce = ?", (nonce,)))


def create_app(config: dict | None = None, connect=None) -> Flask:  # noqa: C901  (the routes are closures)
    config = config or load_config(os.environ["OSOPS_LEASE_PORTAL_CONFIG"])
    keys = [k.encode() if isinstance(k, str) else k for k in config["keys"]]
    params = {name: spec.get("default") for name, spec in POLICY_ARGUMENT_SPEC.items()}
    params.update({name: spec.get("default") for name, spec in EXEMPTIONS_ARGUMENT_SPEC.items()})
    # the cycle's lease_policy, its exempt_* exemptions included
    params.update(config.get("policy") or {})
    params["sealed_exemptions_only"] = bool(config.get("sealed_exemptions_only", False))
    try:
        policy, lease_keys = policy_from_params(params), keys_from_params(params)
        exemptions = exemptions_from_params(params)
        # the seal key is checked at start: a portal that cannot seal must not come up
        sealing = seals_from_params(params, policy, lease_keys, datetime.now(timezone.utc))
    except OptionError as error:
        raise SystemExit("lease portal: %s" % error) from None
    choices = sorted({int(d) for d in config.get("extend_days") or (7, 14, 30) if int(d) > 0})
    releases = bool(config.get("release", True))
    contact_attribute = config.get("owner_project_attribute") or "contact_email"
    state_dir = config.get("state_dir") or "."
    os.makedirs(state_dir, exist_ok=True)
    used = UsedLinks(os.path.join(state_dir, "used-links.sqlite"))

    def cloud():
        if connect:
            return connect()
        import openstack  # only a running portal needs the cloud
        return openstack.connect(cloud=config.get("cloud") or None)

    app = Flask(__name__)
    # a lease time as people read it: 2026-12-19 08:57 UTC
    app.add_template_filter(lambda text: str(text or "").replace("T", " ")[:16] + " UTC" if text else "", "when")
    # the session cookie only carries the CSRF secret; its key is derived from the link key
    app.config.update(
        SECRET_KEY=hmac.new(keys[0], b"osops-lease-portal session", hashlib.sha256).digest(),
        SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Strict",
        SESSION_COOKIE_SECURE=bool(config.get("secure_cookies", True)),
        WTF_CSRF_TIME_LIMIT=3600, MAX_CONTENT_LENGTH=64 * 1024,
    )
    CSRFProtect(app)

    def now_utc() -> datetime:
        return datetime.now(timezone.utc).replace(microsecond=0)

    def editor(conn, now: datetime, owner: str) -> LeaseEditor:
        return LeaseEditor(conn, replace(sealing, now=now), look_ahead=False, check_mode=False,
                           audit_path=config.get("audit_log"), only_owner=owner, contact_attribute=contact_attribute)

    def decided(conn, now: datetime, kinds=KINDS, resource_ids=()):
        """The cycle's own decision (check mode: nothing written) for the scope: every kind and project, or ids."""
        directory = KeystoneDirectory(conn, contact_attribute)
        adapters: dict = {}

        def adapter_of(kind):
            if kind not in adapters:
                adapters[kind] = adapter_for(kind, conn)
            return adapters[kind]

        scanned = scan(adapter_of, directory, ScanScope(kinds=tuple(kinds), resource_ids=tuple(resource_ids)))
        outcomes = decide_scan(scanned.records, replace(sealing, now=now), exemptions.reason,
                               directory.owner_lookup(), ReapOptions(handle_requests=False), scanned.elsewhere)
        return outcomes, adapter_of

    def refuse(reason: str, status: int | None = None):
        title, text = REFUSALS[reason]
        return render_template("refused.html", title=title, text=text), status or STATUS.get(reason, 403)

    def link_or_refusal(token: str):
        try:
            return verify(keys, token, int(time.time())), None
        except TokenError as error:
            return None, refuse(error.reason)

    def audit_release(**fields) -> None:
        """One JSON line per release and per refused release (the extensions' audit log)."""
        audit = AuditLog(config.get("audit_log"))
        try:
            audit.write("release", via="lease portal", **fields)
        finally:
            audit.close()

    def form_target() -> dict:
        # what the form names, shortened: it is the requester's input
        return {"kind": request.form.get("kind", "")[:20], "id": request.form.get("id", "")[:80]}

    @app.after_request
    def harden(response):
        # the token is in the URL: never sent elsewhere as a referrer (same-origin keeps the CSRF referrer check
        # working behind TLS), no caching, no framing, nothing loaded from elsewhere
        response.headers["Content-Security-Policy"] = ("default-src 'none'; style-src 'self'; img-src 'self'; "
                                                       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
        response.headers["Referrer-Policy"] = "same-origin"
        response.headers["Cache-Control"] = "no-store"
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response

    @app.errorhandler(CSRFError)
    def csrf_refused(error):
        if request.path.endswith("/release"):
            audit_release(outcome="refused", reason="bad_request", detail=str(error.description)[:200], **form_target())
        return refuse("bad_request", 400)

    @app.get("/healthz")
    def health():
        return "ok\n"

    @app.get("/l/<token>")
    def show(token):
        link, refusal = link_or_refusal(token)
        if refusal:
            return refusal
        now = now_utc()
        outcomes, _adapters = decided(cloud(), now)
        rows = owner_rows(outcomes, link.owner, policy, lease_keys, now, choices[-1])
        done = used.used(link.nonce)
        for row in rows:
            row["in_mail"] = link.covers(row["kind"], row["id"])
            row["used"] = (row["kind"], row["id"]) in done
            row["released"] = ("release:" + row["kind"], row["id"]) in done
            row["releasable"] = row["releasable"] and releases
        return render_template("resources.html", link=link, token=token, rows=rows, choices=choices,
                               policy=policy, releases=releases,
                               expires=readable_time(datetime.fromtimestamp(link.expires, timezone.utc)))

    @app.post("/l/<token>/extend")
    def extend(token):
        link, refusal = link_or_refusal(token)
        if refusal:
            return refusal
        if request.form.get("kind"):
            # one resource (a form of an earlier page)
            form = {"days:%s:%s" % (request.form.get("kind"), request.form.get("id", "")): request.form.get("days", "")}
            chosen = chosen_extensions(_Multi(form), choices)
        else:
            chosen = chosen_extensions(request.form, choices)
        if not chosen:
            return refuse("bad_request", 400)
        now = now_utc()
        edit = editor(cloud(), now, link.owner)
        results, statuses = [], []
        try:
            for kind, resource_id, days in chosen:
                if not used.claim(link.nonce, kind, resource_id, link.expires):
                    results.append({"kind": kind, "id": resource_id, "extended": False, "days": days,
                                    "reason": REFUSALS["replayed"][0]})
                    statuses.append(409)
                    continue
                try:
                    result = edit.edit({"kind": kind, "id": resource_id},
                                       EditRequest(state="extended", extend_days=float(days)))
                except EditError:
                    result = {"outcome": "failed", "reason": "not a valid extension"}
                # a shelved server takes no lease (frozen): the link stays usable for when it is unshelved
                extended = bool(result.get("changed")) and result["outcome"] != "frozen"
                if not extended:
                    used.release(link.nonce, kind, resource_id)
                refused = result["outcome"] == "refused" and not result.get("before")
                results.append(dict(result, kind=kind, id=result.get("id") or resource_id, days=days, extended=extended,
                                    reason=REFUSALS["not_yours"][0] if refused else result.get("reason")))
                statuses.append(200 if extended else 403 if refused else 502 if result["outcome"] == "failed"
                                else 409)
        finally:
            edit.audit.close()
        status = 200 if 200 in statuses else statuses[0]
        return render_template("extended.html", results=results, token=token,
                               extended=[r for r in results if r["extended"]]), status

    def one_outcome(link, kind: str, resource_id: str, now: datetime):
        """The resource as the cycle decides it now, with the reason a release would be refused (None: allowed)."""
        outcomes, adapter_of = decided(cloud(), now, kinds=(kind,), resource_ids=(resource_id,))
        mine = [o for o in outcomes if o.record.id == resource_id and o.record.kind == kind]
        if not mine:
            return None, "missing", adapter_of
        return mine[0], release_refusal(mine[0], link.owner), adapter_of

    @app.get("/l/<token>/release")
    def confirm_release(token):
        link, refusal = link_or_refusal(token)
        if refusal:
            return refusal
        if not releases:
            return refuse("no_release", 403)
        kind, resource_id = request.args.get("kind", ""), request.args.get("id", "")
        if kind not in KINDS or not resource_id:
            return refuse("bad_request", 400)
        outcome, reason, _adapters = one_outcome(link, kind, resource_id, now_utc())
        if reason:
            return refuse(reason)
        return render_template("release.html", token=token, kind=kind, id=resource_id,
                               name=outcome.record.name or resource_id,
                               project=outcome.record.project_name or outcome.record.project_id or "")

    @app.post("/l/<token>/release")
    def release(token):
        target = form_target()
        try:
            link = verify(keys, token, int(time.time()))
        except TokenError as error:
            audit_release(outcome="refused", reason=error.reason, **target)
            return refuse(error.reason)
        fields = dict(target, owner=link.owner, link=link.nonce)

        def refused(reason: str, **extra):
            audit_release(outcome="refused", reason=reason, **fields, **extra)
            return refuse(reason)

        if not releases:
            return refused("no_release")
        kind, resource_id = request.form.get("kind", ""), request.form.get("id", "")
        if kind not in KINDS or not resource_id:
            return refused("bad_request")
        if request.form.get("confirm") != "yes":
            return refused("not_confirmed")
        if not used.claim(link.nonce, "release:" + kind, resource_id, link.expires):
            return refused("replayed")
        released = False
        try:
            now = now_utc()
            outcome, reason, adapter_of = one_outcome(link, kind, resource_id, now)
            if reason:
                return refused(reason)
            fields["name"] = outcome.record.name
            audit = AuditLog(config.get("audit_log"))
            try:
                # the collection's removal: lease unchanged since this scan, nobody uses it now (asked live), delete
                reaper = Reaper({kind: adapter_of(kind)}, lease_keys, audit, workers=1, timeout=RELEASE_TIMEOUT)
                result = reaper.run([replace(outcome, verb="delete")])[0]
            finally:
                audit.close()
            if result["outcome"] == REMOVED:
                released = True
                audit_release(outcome="released", done=result.get("done"), **fields)
                return render_template("released.html", token=token, kind=kind, name=outcome.record.name or resource_id)
            if result["outcome"] == GONE:
                return refused("missing")
            if result["outcome"] == SKIPPED and "lease changed" not in str(result.get("error")):
                return refused(IN_USE_REFUSAL, detail=str(result.get("error"))[:200])
            audit_release(outcome="failed", error=str(result.get("error"))[:300], **fields)
            return render_template("refused.html", title="Not released",
                                   text="The cloud did not delete it: %s. Nothing else was changed." % (
                                       result.get("error") or "unknown error")), 502
        finally:
            if not released:
                used.release(link.nonce, "release:" + kind, resource_id)

    @app.get("/")
    def index():
        abort(404)

    return app


class _Multi(dict):
    """A plain dict read like a request form."""

    def items(self, multi=False):  # pylint: disable=arguments-differ
        return super().items()


def main() -> None:
    """Run locally (tests, demo): python -m osops_lease_portal --config FILE [--port N]."""
    import argparse

    parser = argparse.ArgumentParser(description="the lease portal, on loopback")
    parser.add_argument("--config", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8086)
    args = parser.parse_args()
    from werkzeug.serving import run_simple

    run_simple(args.host, args.port, create_app(load_config(args.config)), threaded=True)
