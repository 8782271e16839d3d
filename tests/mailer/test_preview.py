"""The /preview pages: every notification with sample data, as HTML or text, and clear errors."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from sysnotify.mailer.catalog import Catalog
from sysnotify.mailer.rendering.renderer import TEMPLATES_DIR, Renderer, phases_of
from sysnotify.mailer.rendering.samples import SAMPLE_BRAND
from sysnotify.mailer.web.preview import create_preview_blueprint

CATALOG = Catalog()


@pytest.fixture
def preview_client() -> Any:
    app = Flask("preview-test")
    app.register_blueprint(create_preview_blueprint(Renderer(SAMPLE_BRAND), CATALOG))
    return app.test_client()


def test_index_links_every_notification_and_phase(preview_client: Any) -> None:
    response = preview_client.get("/preview/")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    links = set(re.findall(r'href="([^"]+)"', page))
    for kind in CATALOG.kinds():
        assert kind.title in page
        for phase in phases_of(kind):
            assert f"/preview/{kind.name}?phase={phase}" in links
            assert f"/preview/{kind.name}?phase={phase}&amp;format=text".replace("&amp;", "&") in {
                link.replace("&amp;", "&") for link in links
            }
    assert "credentials_updated" in page and "recovery (sent)" in page
    assert "api_limit_restored" in page and "recovery (off by default)" in page
    assert "Action needed: Salesforce password for Acme Corp expires in 7 days" in page


def test_every_link_of_the_index_works(preview_client: Any) -> None:
    page = preview_client.get("/preview/").get_data(as_text=True)
    links = [link.replace("&amp;", "&") for link in re.findall(r'href="([^"]+)"', page)]
    assert len(links) == 2 * sum(len(phases_of(kind)) for kind in CATALOG.kinds())
    for link in links:
        assert preview_client.get(link).status_code == 200, link


def test_html_preview_is_the_rendered_email(preview_client: Any) -> None:
    response = preview_client.get("/preview/credential_expired")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    html = response.get_data(as_text=True)
    assert "<title>Action needed: Oracle Eloqua and Marketo credentials" in html
    assert 'width="600"' in html
    assert "script-src" not in response.headers["Content-Security-Policy"]
    assert response.headers["Content-Security-Policy"].startswith("default-src 'none'")
    assert response.headers["Cache-Control"] == "no-store"


def test_text_preview_is_plain_text_with_the_subject(preview_client: Any) -> None:
    response = preview_client.get("/preview/data_sync_delayed?phase=recovery&format=text")
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    body = response.get_data(as_text=True)
    assert body.startswith("Subject: Resolved: data sync for Acme Corp completed\n\n")
    assert "<" not in body


def test_reminder_phase_and_subscriber_role(preview_client: Any) -> None:
    body = preview_client.get(
        "/preview/privacy_optout_reminder?phase=reminder&format=text&role=subscriber"
    ).get_data(as_text=True)
    assert body.startswith("Subject: Reminder: 12 privacy opt-out requests pending")
    assert "subscribed to privacy request notifications" in " ".join(body.split())


def test_unknown_notification_is_404_json(preview_client: Any) -> None:
    response = preview_client.get("/preview/no_such_thing")
    assert response.status_code == 404
    assert response.json is not None
    assert response.json["error"] == "unknown notification 'no_such_thing'"
    assert "credential_expiring" in response.json["known"]


def test_phase_the_kind_does_not_have_is_404_with_a_clear_message(preview_client: Any) -> None:
    response = preview_client.get("/preview/web_visits_dropped?phase=recovery")
    assert response.status_code == 404
    assert response.json == {
        "error": "notification 'web_visits_dropped' has no recovery email",
        "phases": ["problem", "reminder"],
    }


def test_bad_parameters_are_400_naming_each(preview_client: Any) -> None:
    response = preview_client.get("/preview/generic?phase=later&format=pdf&role=boss")
    assert response.status_code == 400
    message = response.json["error"]
    assert "phase must be one of problem, reminder, recovery, not 'later'" in message
    assert "format must be one of html, text, not 'pdf'" in message
    assert "role must be one of primary, subscriber, not 'boss'" in message


def test_broken_template_is_500_naming_it(tmp_path: Path) -> None:
    templates = tmp_path / "templates"
    shutil.copytree(TEMPLATES_DIR, templates)
    (templates / "generic" / "subject.txt").write_text("{{ missing_variable }}")
    app = Flask("preview-broken")
    app.register_blueprint(create_preview_blueprint(Renderer(SAMPLE_BRAND, templates), CATALOG))
    client = app.test_client()
    response = client.get("/preview/generic")
    assert response.status_code == 500
    assert response.json == {"error": "render subject of generic: 'missing_variable' is undefined"}
    index = client.get("/preview/").get_data(as_text=True)  # the others still listed
    assert "render subject of generic" in index
    assert "Salesforce password for Acme Corp expires in 7 days" in index


def test_mailer_app_serves_the_preview_with_its_brand(client: Any) -> None:
    response = client.get("/preview/few_pages_tracked?format=text")
    assert response.status_code == 200
    assert "Acme Insights" in response.get_data(as_text=True)  # the test config's brand
