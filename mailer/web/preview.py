"""Preview pages: every notification rendered with sample data, for a person in a browser.

    GET /preview/                       index of every notification and its recovery email
    GET /preview/<notification>         ?phase=problem|reminder|recovery  (default problem)
                                        &format=html|text                 (default html)
                                        &role=primary|subscriber          (default primary)

Errors are JSON: 404 for an unknown notification or a phase the notification does not have,
400 for an unknown phase, format or role, 500 when a template fails to render.
"""

from __future__ import annotations

from typing import Any

import jinja2
from flask import Blueprint, Response, jsonify, request, url_for

from sysnotify.mailer.catalog import Catalog, NotificationKind
from sysnotify.mailer.model import Phase
from sysnotify.mailer.rendering.renderer import (
    PHASES,
    Renderer,
    RenderError,
    phases_of,
    template_for,
)
from sysnotify.mailer.rendering.samples import PRIMARY, SUBSCRIBER, sample_request

FORMATS = ("html", "text")
ROLES = {"primary": PRIMARY, "subscriber": SUBSCRIBER}

# Emails contain no scripts; the policy makes sure a preview never runs any, and still lets
# the inline styles and the (remote) logo show.
CONTENT_SECURITY_POLICY = "default-src 'none'; img-src * data:; style-src 'unsafe-inline'"

_INDEX = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined).from_string("""\
<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Email previews - {{ brand.product_name }}</title>
<style>
body { font-family: Arial, Helvetica, sans-serif; margin: 2em; color: #1c1c1c; }
table { border-collapse: collapse; }
th, td { text-align: left; vertical-align: top; padding: 6px 12px; }
td { border-bottom: 1px solid #dde3e9; }
th { background: #eef2f6; }
.subject { color: #3b4650; font-size: 13px; }
.error { color: #b3261e; font-size: 13px; }
code { font-size: 13px; }
</style>
</head>
<body>
<h1>Email previews</h1>
<p>Every notification rendered with sample data and the configured brand.</p>
<table>
<tr><th>Notification</th><th>Email</th><th>Subject</th><th>Preview</th></tr>
{% for row in rows %}
<tr>
{% if row.first %}
<td rowspan="{{ row.span }}"><strong>{{ row.kind.title }}</strong><br>
<code>{{ row.kind.name }}</code>
{% if row.kind.alertname %} &middot; <code>{{ row.kind.alertname }}</code>{% endif %}</td>
{% endif %}
<td>{{ row.label }}<br><code>{{ row.template }}</code></td>
<td>{% if row.error %}<span class="error">{{ row.error }}</span>
{% else %}<span class="subject">{{ row.subject }}</span>{% endif %}</td>
<td><a href="{{ row.html_url }}">HTML</a> &middot; <a href="{{ row.text_url }}">text</a></td>
</tr>
{% endfor %}
</table>
</body>
</html>
""")


def _phase_label(kind: NotificationKind, phase: Phase) -> str:
    if phase == "recovery":
        return "recovery (sent)" if kind.send_recovery else "recovery (off by default)"
    return phase


def _error(status: int, message: str, **details: Any) -> tuple[Response, int]:
    return jsonify({"error": message, **details}), status


def create_preview_blueprint(renderer: Renderer, catalog: Catalog) -> Blueprint:
    """A blueprint serving /preview/ and /preview/<notification> with sample data."""
    bp = Blueprint("preview", __name__, url_prefix="/preview")

    @bp.get("/")
    def index() -> Response:
        """An HTML index listing every notification, each phase it has, and links."""
        rows = []
        for kind in catalog.kinds():
            phases = phases_of(kind)
            for position, phase in enumerate(phases):
                row: dict[str, Any] = {
                    "kind": kind,
                    "first": position == 0,
                    "span": len(phases),
                    "label": _phase_label(kind, phase),
                    "template": template_for(kind, phase),
                    "html_url": url_for(".show", notification=kind.name, phase=phase),
                    "text_url": url_for(
                        ".show", notification=kind.name, phase=phase, format="text"
                    ),
                    "subject": "",
                    "error": "",
                }
                try:
                    row["subject"] = renderer.render(sample_request(kind, phase)).subject
                except RenderError as exc:  # show the broken template, keep the others
                    row["error"] = str(exc)
                rows.append(row)
        page = _INDEX.render(rows=rows, brand=renderer.brand)
        return _no_store(Response(page, mimetype="text/html"))

    @bp.get("/<notification>")
    def show(notification: str) -> Response | tuple[Response, int]:
        """One notification's sample email, as HTML or as plain text."""
        kind = catalog.by_name(notification)
        if kind is None:
            return _error(
                404,
                f"unknown notification {notification!r}",
                known=[k.name for k in catalog.kinds()],
            )
        phase = request.args.get("phase", "problem")
        fmt = request.args.get("format", "html")
        role = request.args.get("role", "primary")
        problems = []
        if phase not in PHASES:
            problems.append(f"phase must be one of {', '.join(PHASES)}, not {phase!r}")
        if fmt not in FORMATS:
            problems.append(f"format must be one of {', '.join(FORMATS)}, not {fmt!r}")
        if role not in ROLES:
            problems.append(f"role must be one of {', '.join(ROLES)}, not {role!r}")
        if problems:
            return _error(400, "; ".join(problems))
        if phase not in phases_of(kind):
            return _error(
                404,
                f"notification {kind.name!r} has no {phase} email",
                phases=list(phases_of(kind)),
            )
        try:
            email = renderer.render(sample_request(kind, phase, ROLES[role]))
        except RenderError as exc:
            return _error(500, str(exc))
        if fmt == "text":
            body = f"Subject: {email.subject}\n\n{email.text}"
            response = Response(body, mimetype="text/plain")
        else:
            response = Response(email.html, mimetype="text/html")
        response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
        return _no_store(response)

    return bp


def _no_store(response: Response) -> Response:
    # Previews follow the templates on disk and the config; a cached one misleads.
    response.headers["Cache-Control"] = "no-store"
    return response
