"""The start-up check: every notification rendered in every phase with sample data, so a
broken template or brand fails when the mailer starts rather than at 3 a.m."""

from __future__ import annotations

from dataclasses import replace

from sysnotify.mailer.catalog import Catalog
from sysnotify.mailer.model import Recipient
from sysnotify.mailer.rendering import samples
from sysnotify.mailer.rendering.renderer import Renderer, RenderError


def check_templates(renderer: Renderer, catalog: Catalog | None = None) -> None:
    """Renders every kind of `catalog` (default: the built-in one) in every phase it has.

    Also establishes `renderer.same_per_role`: whether an email reads the same for every
    recipient of one role, which lets delivery render a notification once per role.

    :raise RenderError: listing every template that failed.
    """
    problems = []
    same_per_role = True
    for request in samples.all_requests(catalog or Catalog()):
        try:
            rendered = renderer.render(request)
            other = replace(
                request,
                recipient=Recipient("another." + request.recipient.address, request.recipient.role),
            )
            same_per_role = same_per_role and renderer.render(other) == rendered
        except RenderError as exc:
            problems.append(str(exc))
    if problems:
        raise RenderError("; ".join(problems))
    renderer.same_per_role = same_per_role
