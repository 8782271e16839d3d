"""Rendering notification emails from the Jinja2 templates in templates/.

Each template directory holds `subject.txt`, `body.txt` and `body.html`; the HTML body extends
`base.html` (the branded layout) and the text body extends `base.txt`. HTML is rendered with
autoescape on, text and subject with autoescape off; every environment uses StrictUndefined so
a typo in a template is an error instead of an empty string. The authored <style> block is
inlined into style attributes with css-inline, because Gmail and Outlook drop or ignore most
<style> rules; only @media rules stay in a <style> element.

Golden files of every sample email live in tests/golden; regenerate them with
`python -m sysnotify.mailer.rendering.samples --write-golden tests/golden`.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import css_inline
import jinja2

from sysnotify.mailer.catalog import NotificationKind
from sysnotify.mailer.model import AlertView, Brand, EmailRequest, Phase, RenderedEmail
from sysnotify.mailer.rendering.filters import (
    FILTERS,
    category_name,
    one_line,
    system_name,
    wrap_text,
)
from sysnotify.settings import is_hex_colour, is_http_url

# The templates are package data (sysnotify.templates), wherever the package is installed.
TEMPLATES_DIR = Path(str(resources.files("sysnotify.templates")))
TEMPLATE_FILES = ("subject.txt", "body.txt", "body.html")
PHASES: tuple[Phase, ...] = ("problem", "reminder", "recovery")


class RenderError(Exception):
    """A template could not be rendered: missing, invalid, or using an undefined variable.

    The message starts with the step, e.g. "render subject of credential_expired: ...".
    """


def phases_of(kind: NotificationKind) -> tuple[Phase, ...]:
    """The phases a notification kind can be emailed in (recovery only with a template)."""
    if kind.recovery_template is None:
        return ("problem", "reminder")
    return PHASES


def template_for(kind: NotificationKind, phase: Phase) -> str:
    """The template directory that renders `kind` in `phase`.

    :raise RenderError: for a recovery of a kind that has no recovery template.
    """
    if phase == "recovery":
        if kind.recovery_template is None:
            raise RenderError(f"select template of {kind.name}: it has no recovery email")
        return kind.recovery_template
    return kind.template


# -- the renderer ------------------------------------------------------------------------------


def _environment(templates_dir: Path, autoescape: bool) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir)),
        autoescape=autoescape,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
        # Templates are checked once at start (rendering.check); what was checked is what is
        # sent, and no delivery pays for a stat() of every template file it uses.
        auto_reload=False,
    )
    env.filters.update(FILTERS)
    return env


def _alert_sort_key(alert: AlertView) -> tuple[str, str, str]:
    # Alertmanager already sorts a group's alerts, but retries and hand-built requests may
    # not; a stable order keeps emails and golden files identical for the same alerts.
    target = alert.labels.get("system") or alert.labels.get("platform") or ""
    return (alert.alertname, target, alert.fingerprint)


COLOUR_FIELDS = ("primary_color", "accent_color", "background_color", "text_color")


def brand_problems(brand: Brand) -> list[str]:
    """What in `brand` would break the layout: colours go into CSS and attributes, so only
    hex colours are accepted; links must be absolute http(s) URLs. The config reports the
    same at load; this guards brands built in code."""
    problems = []
    for name in COLOUR_FIELDS:
        value = getattr(brand, name)
        if not is_hex_colour(value):
            problems.append(f"{name} {value!r} is not a hex colour like #1f4e79")
    for name in ("console_url", "logo_url"):
        value = getattr(brand, name)
        if (value or name == "console_url") and not is_http_url(value):
            problems.append(f"{name} {value!r} is not an http(s) URL")
    return problems


class Renderer:
    """Renders EmailRequests into subject, plain text and inlined HTML with one brand."""

    def __init__(self, brand: Brand, templates_dir: Path | None = None) -> None:
        """:raise RenderError: naming every brand value the layout cannot use."""
        problems = brand_problems(brand)
        if problems:
            raise RenderError("check brand: " + "; ".join(problems))
        self.brand = brand
        self.templates_dir = Path(templates_dir) if templates_dir is not None else TEMPLATES_DIR
        self._text_env = _environment(self.templates_dir, autoescape=False)
        self._html_env = _environment(self.templates_dir, autoescape=True)
        # Whether an email reads the same for every recipient of one role (the templates use
        # recipient.role, not recipient.address): then delivery renders a notification once
        # per role instead of once per recipient. Established by rendering.check, with samples.
        self.same_per_role = False
        self._inliner = css_inline.CSSInliner(
            keep_at_rules=True,  # @media rules cannot be inlined; they stay in a <style>
            load_remote_stylesheets=False,
        )

    def render(self, request: EmailRequest) -> RenderedEmail:
        """Renders one email.

        :raise RenderError: naming the step and template when anything in a template fails.
        """
        template = template_for(request.notification, request.phase)
        context = self.context(request)
        subject = one_line(self._render(self._text_env, template, "subject", context))
        if not subject:
            raise RenderError(f"render subject of {template}: the subject is empty")
        context["subject"] = subject
        text = wrap_text(self._render(self._text_env, template, "body.txt", context)).strip()
        text += "\n"
        html = self._render(self._html_env, template, "body.html", context)
        try:
            html = self._inliner.inline(html)
        except css_inline.InlineError as exc:
            raise RenderError(f"inline CSS of {template}: {exc}") from exc
        return RenderedEmail(subject=subject, text=text, html=html)

    def context(self, request: EmailRequest) -> dict[str, Any]:
        """The variables every template sees (documented in docs/emails.md)."""
        alerts = sorted(request.alerts, key=_alert_sort_key)
        if not alerts:
            raise RenderError(
                f"prepare context of {request.notification.name}: the request has no alerts"
            )
        category = request.notification.category or alerts[0].labels.get("category", "")
        systems = []
        for alert in alerts:
            target = alert.labels.get("system") or alert.labels.get("platform")
            if target and system_name(target) not in systems:
                systems.append(system_name(target))
        return {
            "brand": self.brand,
            "notification": request.notification,
            "phase": request.phase,
            "account": request.account,
            "account_name": request.account_name or request.account,
            "alerts": alerts,
            "alert": alerts[0],
            "systems": systems,
            "recipient": request.recipient,
            "category": category,
            "category_name": category_name(category),
            "generated_at": request.generated_at,
            "console": lambda purpose="": self.console_link(purpose),
            "manage_url": self.console_link("notifications"),
        }

    def console_link(self, purpose: str = "") -> str:
        """The console URL for a purpose (credentials, integrations, web_tag, privacy, sync,
        notifications); the console's home when the brand has no path for it."""
        base = self.brand.console_url.rstrip("/")
        path = self.brand.console_paths.get(purpose, "") if purpose else ""
        if not path:
            return base + "/"
        if path.startswith(("http://", "https://")):
            return path
        return base + "/" + path.lstrip("/")

    def _render(
        self, env: jinja2.Environment, template: str, part: str, context: Mapping[str, Any]
    ) -> str:
        filename = "subject.txt" if part == "subject" else part
        step = f"render {part} of {template}"
        try:
            return env.get_template(f"{template}/{filename}").render(context)
        except jinja2.TemplateNotFound as exc:
            raise RenderError(
                f"{step}: template {exc.name} not found in {self.templates_dir}"
            ) from exc
        except jinja2.TemplateSyntaxError as exc:
            raise RenderError(
                f"{step}: syntax error in {exc.name or exc.filename} line "
                f"{exc.lineno}: {exc.message}"
            ) from exc
        except jinja2.UndefinedError as exc:
            raise RenderError(f"{step}: {exc.message}") from exc
        except Exception as exc:  # a filter or attribute failing on odd data is still a
            # template problem for the caller: it must not escape as a bare TypeError
            raise RenderError(f"{step}: {type(exc).__name__}: {exc}") from exc
