# Copyright: osops.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The lease portal: one click from an owner's mail to a longer lease, safely.

- A link carries a signed, expiring token (``_lease/token.py``) naming the owner and
  the resources that mail covered. Opening it (GET) only shows a page: nothing
  changes, so mail scanners that fetch links do no harm.
- Extending is a POST from that page, with a CSRF token (Flask-WTF). The portal
  extends through the collection's own lease code (``LeaseEditor``, the one
  ``resource_lease`` uses), as the owner (``only_owner``), within the same caps,
  and appends to the same audit log.
- A link extends each of its resources once; a second POST is a replay and is
  refused. Tampered, expired and unknown links get a refusal page.

Configuration: a JSON file named by ``OSOPS_LEASE_PORTAL_CONFIG`` (see the
lease_portal role): ``keys`` (signing keys, newest first), ``cloud`` (clouds.yaml
name), ``policy`` (the lease_policy options), ``audit_log``, ``state_dir``,
``extend_days`` (the choices offered), ``secure_cookies``.
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

from ansible_collections.osops.lifecycle.plugins.module_utils._lease.edit import EditError, EditRequest
from ansible_collections.osops.lifecycle.plugins.module_utils._lease.editor import LeaseEditor
from ansible_collections.osops.lifecycle.plugins.module_utils._lease.options import (
    POLICY_ARGUMENT_SPEC, OptionError, keys_from_params, policy_from_params, seals_from_params)
from ansible_collections.osops.lifecycle.plugins.module_utils._lease.token import KINDS, TokenError, verify

REFUSALS = {
    "malformed": ("This is not a valid link", "The link is incomplete or damaged. Open it again from the mail."),
    "tampered": ("This link was changed", "The link does not match what was sent. Nothing was changed."),
    "expired": ("This link has expired",
                "Links in lease mails work for a limited time. The next mail has a new one."),
    "replayed": ("This link was already used", "Each link extends each resource once. Nothing was changed."),
    "not_covered": ("Not in this mail", "This link does not cover that resource. Nothing was changed."),
    "bad_request": ("That did not work", "The form was incomplete or too old. Go back, reload the page, try again."),
}


def load_config(path: str) -> dict:
    with open(path) as handle:
        config = json.load(handle)
    if not config.get("keys"):
        raise SystemExit("lease portal: no signing keys in %s" % path)
    return config


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


def create_app(config: dict | None = None, connect=None) -> Flask:
    config = config or load_config(os.environ["OSOPS_LEASE_PORTAL_CONFIG"])
    keys = [k.encode() if isinstance(k, str) else k for k in config["keys"]]
    params = {name: spec.get("default") for name, spec in POLICY_ARGUMENT_SPEC.items()}
    params.update(config.get("policy") or {})
    try:
        policy, lease_keys = policy_from_params(params), keys_from_params(params)
        # the seal key is checked at start: a portal that cannot seal must not come up
        sealing = seals_from_params(params, policy, lease_keys, datetime.now(timezone.utc))
    except OptionError as error:
        raise SystemExit("lease portal: %s" % error) from None
    choices = sorted({int(d) for d in config.get("extend_days") or (7, 14, 30) if int(d) > 0})
    state_dir = config.get("state_dir") or "."
    os.makedirs(state_dir, exist_ok=True)
    used = UsedLinks(os.path.join(state_dir, "used-links.sqlite"))

    def cloud():
        if connect:
            return connect()
        import openstack  # only a running portal needs the cloud
        return openstack.connect(cloud=config.get("cloud") or None)

    app = Flask(__name__)
    # the session cookie only carries the CSRF secret; its key is derived from the link key
    app.config.update(
        SECRET_KEY=hmac.new(keys[0], b"osops-lease-portal session", hashlib.sha256).digest(),
        SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Strict",
        SESSION_COOKIE_SECURE=bool(config.get("secure_cookies", True)),
        WTF_CSRF_TIME_LIMIT=3600, MAX_CONTENT_LENGTH=16 * 1024,
    )
    CSRFProtect(app)

    def editor(now: datetime, owner: str, check_mode: bool) -> LeaseEditor:
        return LeaseEditor(cloud(), replace(sealing, now=now), look_ahead=False, check_mode=check_mode,
                           audit_path=None if check_mode else config.get("audit_log"), only_owner=owner)

    def refuse(reason: str, status: int = 403):
        title, text = REFUSALS[reason]
        return render_template("refused.html", title=title, text=text), status

    def link_or_refusal(token: str):
        try:
            return verify(keys, token, int(time.time())), None
        except TokenError as error:
            return None, refuse(error.reason, 410 if error.reason == "expired" else 403)

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
    def csrf_refused(_error):
        return refuse("bad_request", 400)

    @app.get("/healthz")
    def health():
        return "ok\n"

    @app.get("/l/<token>")
    def show(token):
        link, refusal = link_or_refusal(token)
        if refusal:
            return refusal
        now = datetime.now(timezone.utc).replace(microsecond=0)
        done = used.used(link.nonce)
        edit = editor(now, link.owner, check_mode=True)
        rows = []
        try:
            for kind, resource_id in link.resources:
                # a dry run of the longest extension offered: what the button would do, by the same code
                preview = edit.edit({"kind": kind, "id": resource_id},
                                    EditRequest(state="extended", extend_days=float(choices[-1])))
                rows.append({"kind": kind, "id": resource_id, "name": preview.get("name") or resource_id,
                             "outcome": preview["outcome"], "reason": preview.get("reason"),
                             "before": preview.get("before") or {}, "after": preview.get("after") or {},
                             "used": (kind, resource_id) in done,
                             "extensions_left": max(0, policy.max_extensions
                                                    - ((preview.get("before") or {}).get("extensions") or 0))})
        finally:
            edit.audit.close()
        return render_template("resources.html", link=link, token=token, rows=rows, choices=choices,
                               expires=datetime.fromtimestamp(link.expires, timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))

    @app.post("/l/<token>/extend")
    def extend(token):
        link, refusal = link_or_refusal(token)
        if refusal:
            return refusal
        kind, resource_id = request.form.get("kind", ""), request.form.get("id", "")
        try:
            days = int(request.form.get("days", ""))
        except ValueError:
            return refuse("bad_request", 400)
        if kind not in KINDS or days not in choices:
            return refuse("bad_request", 400)
        if not link.covers(kind, resource_id):
            return refuse("not_covered")
        if not used.claim(link.nonce, kind, resource_id, link.expires):
            return refuse("replayed", 409)
        now = datetime.now(timezone.utc).replace(microsecond=0)
        edit = editor(now, link.owner, check_mode=False)
        try:
            result = edit.edit({"kind": kind, "id": resource_id}, EditRequest(state="extended", extend_days=float(days)))
        except EditError:
            result = {"outcome": "failed", "reason": "not a valid extension"}
        finally:
            edit.audit.close()
        # a shelved server takes no lease (frozen): the link stays usable for when it is unshelved
        extended = result.get("changed") and result["outcome"] != "frozen"
        if not extended:
            used.release(link.nonce, kind, resource_id)
        status = 200 if extended else (502 if result["outcome"] == "failed" else 409)
        return render_template("extended.html", result=result, extended=extended, token=token, kind=kind,
                               days=days), status

    @app.get("/")
    def index():
        abort(404)

    return app


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
