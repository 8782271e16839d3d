"""Rendering notification emails from the Jinja2 templates in templates/.

Each template directory holds `subject.txt`, `body.txt` and `body.html`; the HTML body extends
`base.html` (the branded layout) and the text body extends `base.txt`. HTML is rendered with
autoescape on, text and subject with autoescape off; every environment uses StrictUndefined so
a typo in a template is an error instead of an empty string. The authored <style> block is
inlined into style attributes with css-inline, because Gmail and Outlook drop or ignore most
<style> rules; only @media rules stay in a <style> element.

Golden files of every sample email live in tests/golden; regenerate them with
`python -m mailer.samples --write-golden tests/golden`.
"""

from __future__ import annotations

import math
import re
import textwrap
from collections.abc import Callable, Mapping
from dataclasses import replace
from importlib import resources
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import css_inline
import jinja2

from sysnotify.mailer.catalog import Catalog, NotificationKind
from sysnotify.mailer.model import AlertView, Brand, EmailRequest, Phase, Recipient, RenderedEmail

# The templates are package data (sysnotify.templates), wherever the package is installed.
TEMPLATES_DIR = Path(str(resources.files("sysnotify.templates")))
TEMPLATE_FILES = ("subject.txt", "body.txt", "body.html")
PHASES: tuple[Phase, ...] = ("problem", "reminder", "recovery")

SYSTEM_NAMES = {
    "salesforce": "Salesforce",
    "eloqua": "Oracle Eloqua",
    "marketo": "Marketo",
    "hubspot": "HubSpot",
    "pardot": "Pardot",
}

# As in "you subscribed to <name> notifications".
CATEGORY_NAMES = {
    "credentials": "credential",
    "api_limits": "API limit",
    "web_visits": "web visit",
    "privacy": "privacy request",
    "sync": "data sync",
}

_WHITESPACE = re.compile(r"\s+")


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


# -- formatting filters: numbers and times as a person reads them --------------------------


def _to_number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        number = float(value) if isinstance(value, int | float) else float(str(value).strip())
    except (ValueError, OverflowError):
        return None
    # "nan" and "inf" parse as floats but are not counts anyone can read
    return number if math.isfinite(number) else None


def format_number(value: Any, decimals: int = 0) -> str:
    """12345.4 or "12345" → "12,345" (rounded to `decimals`); non-numbers pass through."""
    number = _to_number(value)
    if number is None:
        return str(value)
    return f"{number:,.{decimals}f}"


def format_percent(value: Any) -> str:
    """A ratio 0..1 → "43%" (one decimal under 10%, so 0.004 is not shown as 0%)."""
    number = _to_number(value)
    if number is None:
        return str(value)
    percent = number * 100
    if 0 < abs(percent) < 10 and percent != int(percent):
        return f"{percent:.1f}%"
    return f"{percent:.0f}%"


def parse_time(value: Any) -> datetime | None:
    """An RFC 3339 string (or datetime) as an aware UTC datetime; None when empty or invalid."""
    if isinstance(value, datetime):
        moment = value
    else:
        text = str(value).strip()
        if not text:
            return None
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def format_datetime(value: Any) -> str:
    """→ "2 December 2026, 14:00 UTC"; unparseable values pass through unchanged."""
    moment = parse_time(value)
    if moment is None:
        return str(value)
    return f"{moment.day} {moment:%B %Y, %H:%M} UTC"


def format_date(value: Any) -> str:
    """→ "2 December 2026"."""
    moment = parse_time(value)
    if moment is None:
        return str(value)
    return f"{moment.day} {moment:%B %Y}"


def _plural(count: int, unit: str) -> str:
    return f"{count} {unit}" if count == 1 else f"{count} {unit}s"


def format_duration(value: Any) -> str:
    """Seconds → "5 hours 12 minutes", "2 days 3 hours", "45 minutes"."""
    number = _to_number(value)
    if number is None:
        return str(value)
    minutes = int(number // 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    if days:
        parts = [_plural(days, "day")] + ([_plural(hours, "hour")] if hours else [])
    elif hours:
        parts = [_plural(hours, "hour")] + ([_plural(minutes, "minute")] if minutes else [])
    else:
        parts = [_plural(max(minutes, 1), "minute")] if number >= 60 else ["less than a minute"]
    return " ".join(parts)


def format_days(value: Any) -> str:
    """A day count → "1 day", "7 days", "today" for 0."""
    number = _to_number(value)
    if number is None:
        return str(value)
    days = int(number)
    return "today" if days <= 0 else _plural(days, "day")


def format_in_days(value: Any) -> str:
    """A `days_left` value → "in 7 days", "in 1 day", "today"; "soon" when missing."""
    number = _to_number(value)
    if number is None:
        return "soon"
    days = int(number)
    return "today" if days <= 0 else "in " + _plural(days, "day")


def days_since(value: Any, now: Any) -> int | None:
    """Whole days from `value` to `now` (both times); None when either is missing."""
    start, end = parse_time(value), parse_time(now)
    if start is None or end is None:
        return None
    return max((end - start).days, 0)


def join_names(names: Any) -> str:
    """["Salesforce", "Marketo", "HubSpot"] → "Salesforce, Marketo and HubSpot"."""
    items = [str(name) for name in names]
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def system_name(value: Any) -> str:
    """A `system`/`platform` label value → the product's name ("eloqua" → "Oracle Eloqua")."""
    text = str(value)
    return SYSTEM_NAMES.get(text.lower(), text)


_LIST_ITEM = re.compile(r"^(\s*(?:[-*]|\d+\.)\s+)")
_BLANK_LINES = re.compile(r"\n{3,}")
TEXT_WIDTH = 76


def wrap_text(text: str, width: int = TEXT_WIDTH) -> str:
    """Wraps long lines of a plain-text body for reading in a terminal-style client.

    List items keep a hanging indent; words (URLs, addresses) are never broken.
    """
    lines = []
    for line in text.splitlines():
        if len(line) <= width:
            lines.append(line.rstrip())
            continue
        match = _LIST_ITEM.match(line)
        indent = " " * len(match.group(1)) if match else ""
        lines.extend(textwrap.wrap(line, width=width, subsequent_indent=indent,
                                   break_long_words=False, break_on_hyphens=False))
    # Template control blocks leave uneven blank lines; one blank line separates paragraphs.
    return _BLANK_LINES.sub("\n\n", "\n".join(lines))


def one_line(value: Any) -> str:
    """Collapses all whitespace (CR and LF included) to single spaces."""
    return _WHITESPACE.sub(" ", str(value)).strip()


def category_name(value: Any) -> str:
    """A `category` label value → how emails name it ("web_visits" → "web visit")."""
    text = str(value)
    return CATEGORY_NAMES.get(text, text.replace("_", " "))


def pluralize(count: Any, singular: str, plural: str | None = None) -> str:
    """1, "system" → "system"; 3 → "systems"."""
    number = _to_number(count)
    return singular if number == 1 else (plural or singular + "s")


FILTERS: Mapping[str, Callable[..., Any]] = {
    "number": format_number,
    "percent": format_percent,
    "datetime": format_datetime,
    "date": format_date,
    "duration": format_duration,
    "days": format_days,
    "in_days": format_in_days,
    "days_since": days_since,
    "join_names": join_names,
    "category_name": category_name,
    "system_name": system_name,
    "one_line": one_line,
    "pluralize": pluralize,
}


# -- the renderer ------------------------------------------------------------------------------


def _environment(templates_dir: Path, autoescape: bool) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir)),
        autoescape=autoescape,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
        # Templates are checked once at start (Renderer.check); what was checked is what is
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


_COLOUR = re.compile(r"^#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})$")
COLOUR_FIELDS = ("primary_color", "accent_color", "background_color", "text_color")


def brand_problems(brand: Brand) -> list[str]:
    """What in `brand` would break the layout: colours go into CSS and attributes, so only
    hex colours are accepted; links must be absolute http(s) URLs."""
    problems = []
    for name in COLOUR_FIELDS:
        value = getattr(brand, name)
        if not _COLOUR.match(value):
            problems.append(f"{name} {value!r} is not a hex colour like #1f4e79")
    for name in ("console_url", "logo_url"):
        value = getattr(brand, name)
        if (value or name == "console_url") and not value.startswith(("https://", "http://")):
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
        # per role instead of once per recipient. Established by check(), with sample data.
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
        except css_inline.InlineError as exc:  # type: ignore[misc]
            raise RenderError(f"inline CSS of {template}: {exc}") from exc
        return RenderedEmail(subject=subject, text=text, html=html)

    def check(self, catalog: Catalog | None = None) -> None:
        """Renders every kind of `catalog` (default: the built-in one) in every phase it has,
        with sample data, so a broken template fails at start-up rather than at 3 a.m.

        :raise RenderError: listing every template that failed.
        """
        from sysnotify.mailer.rendering import samples  # imported here: samples imports this module

        problems = []
        same_per_role = True
        for request in samples.all_requests(catalog or Catalog()):
            try:
                rendered = self.render(request)
                other = replace(request, recipient=Recipient(
                    "another." + request.recipient.address, request.recipient.role))
                same_per_role = same_per_role and self.render(other) == rendered
            except RenderError as exc:
                problems.append(str(exc))
        if problems:
            raise RenderError("; ".join(problems))
        self.same_per_role = same_per_role

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

    def _render(self, env: jinja2.Environment, template: str, part: str,
                context: Mapping[str, Any]) -> str:
        filename = "subject.txt" if part == "subject" else part
        step = f"render {part} of {template}"
        try:
            return env.get_template(f"{template}/{filename}").render(context)
        except jinja2.TemplateNotFound as exc:
            raise RenderError(f"{step}: template {exc.name} not found in "
                              f"{self.templates_dir}") from exc
        except jinja2.TemplateSyntaxError as exc:
            raise RenderError(f"{step}: syntax error in {exc.name or exc.filename} line "
                              f"{exc.lineno}: {exc.message}") from exc
        except jinja2.UndefinedError as exc:
            raise RenderError(f"{step}: {exc.message}") from exc
        except Exception as exc:  # a filter or attribute failing on odd data is still a
            # template problem for the caller: it must not escape as a bare TypeError
            raise RenderError(f"{step}: {type(exc).__name__}: {exc}") from exc
