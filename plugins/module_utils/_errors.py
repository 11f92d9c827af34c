# Copyright: osops.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Cloud errors as an operator reads them (no SDK import: usable from pure code)."""

from __future__ import annotations


def describe_sdk_error(error: BaseException) -> str:
    """One line for an operator: what failed, the HTTP status and the request id.

    openstacksdk's exceptions carry these as attributes (``status_code``,
    ``request_id``, ``details``); plain exceptions fall back to ``str()``.
    """
    text = str(error).strip() or type(error).__name__
    parts = [text]
    status = getattr(error, "status_code", None)
    if status and str(status) not in text:
        parts.append("HTTP %s" % status)
    request_id = getattr(error, "request_id", None)
    if request_id and request_id not in text:
        parts.append("request id %s" % request_id)
    return "; ".join(parts)
