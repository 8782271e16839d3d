"""The renderer: escaping, strictness, layout rules and content of the notification emails."""

from __future__ import annotations

import re
import shutil
from dataclasses import replace
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sysnotify.mailer.catalog import DEFAULT_KINDS, GENERIC, Catalog, NotificationKind
from sysnotify.mailer.model import AlertView, EmailRequest
from sysnotify.mailer.rendering.check import check_templates
from sysnotify.mailer.rendering.filters import (
    format_datetime,
    format_duration,
    format_in_days,
    format_number,
    format_percent,
    join_names,
    one_line,
    system_name,
    wrap_text,
)
from sysnotify.mailer.rendering.renderer import (
    TEMPLATE_FILES,
    TEMPLATES_DIR,
    Renderer,
    RenderError,
    phases_of,
)
from sysnotify.mailer.rendering.samples import (
    ACCOUNT,
    PRIMARY,
    SAMPLE_BRAND,
    SUBSCRIBER,
    all_requests,
    golden_name,
    sample_request,
)

CATALOG = Catalog()
ALL_REQUESTS = list(all_requests(CATALOG))
TAG = re.compile(r"<\s*/?\s*[a-zA-Z][^>]*>")


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    return Renderer(SAMPLE_BRAND)


def kind(name: str) -> NotificationKind:
    found = CATALOG.by_name(name)
    assert found is not None
    return found


def alert(
    alertname: str, labels: dict[str, str], annotations: dict[str, str], fingerprint: str = "f0"
) -> AlertView:
    return AlertView(
        alertname=alertname,
        status="firing",
        labels={"alertname": alertname, "account": ACCOUNT, **labels},
        annotations=annotations,
        starts_at=datetime(2026, 11, 25, 8, 0, tzinfo=UTC),
        ends_at=None,
        fingerprint=fingerprint,
    )


def request_of(
    name: str, *alerts: AlertView, phase: str = "problem", account_name: str = "Acme Corp"
) -> EmailRequest:
    return EmailRequest(
        notification=kind(name),
        phase=phase,  # type: ignore[arg-type]
        account=ACCOUNT,
        account_name=account_name,
        alerts=alerts,
        recipient=PRIMARY,
        generated_at=datetime(2026, 11, 25, 9, tzinfo=UTC),
    )


# -- every catalog entry has its templates, and every sample renders by the rules ----------


@pytest.mark.parametrize("kind", [*DEFAULT_KINDS, GENERIC], ids=lambda k: k.name)
def test_every_catalog_template_directory_has_all_three_files(kind: NotificationKind) -> None:
    for template in filter(None, (kind.template, kind.recovery_template)):
        for filename in TEMPLATE_FILES:
            assert (TEMPLATES_DIR / template / filename).is_file(), f"{template}/{filename}"


def test_check_renders_every_kind_and_phase(renderer: Renderer) -> None:
    check_templates(renderer, CATALOG)
    names = {golden_name(request) for request in ALL_REQUESTS}
    assert "credentials_updated.recovery" in names
    assert "data_sync_completed.recovery" in names
    assert "generic_recovery.recovery" in names
    assert len(names) == sum(len(phases_of(k)) for k in CATALOG.kinds())


@pytest.mark.parametrize("request_", ALL_REQUESTS, ids=golden_name)
def test_sample_email_follows_the_layout_rules(renderer: Renderer, request_: EmailRequest) -> None:
    email = renderer.render(request_)
    # subject: one line, says the account
    assert "\n" not in email.subject and "\r" not in email.subject
    assert "Acme Corp" in email.subject
    if request_.phase == "reminder":
        assert email.subject.startswith("Reminder: ")
    if request_.phase == "recovery":
        assert email.subject.startswith("Resolved: ")
    # text part: no HTML at all, ends with the footer
    assert not TAG.search(email.text), TAG.search(email.text)
    assert "primary administrator" in email.text
    assert SAMPLE_BRAND.support_email in email.text
    # html: inlined CSS, 600 px container, preheader, no scripts, only the logo as image
    html = email.html
    assert "<link" not in html
    assert "<script" not in html.lower()
    assert 'class="container"' in html and 'width="600"' in html and "width: 600px" in html
    assert re.search(r'<div class="preheader" style="display: none;[^"]*">\S', html)
    for element in ("h1", "p", "td"):
        assert re.search(rf"<{element}\b[^>]*style=\"", html), f"<{element}> not inlined"
    # outside Outlook-only conditional comments, only @media rules stay in a <style>
    visible = re.sub(r"<!--\[if mso\]>.*?<!\[endif\]-->", "", html, flags=re.S)
    styles = re.findall(r"<style[^>]*>(.*?)</style>", visible, flags=re.S)
    assert styles and all(style.strip().startswith("@media") for style in styles)
    assert len(re.findall(r"<img\b", html)) == 1
    assert 'alt="Northwind ABM"' in html and 'width="160"' in html and 'height="40"' in html
    assert "button-cell" in html and 'bgcolor="#1f4e79"' in html
    assert "Manage your notifications" in html and "no-reply address" in html


# -- escaping and single-line subjects of hostile values -----------------------------------

HOSTILE = '<script>alert("x")</script> & "quoted" \'single\''


class ParsedHtml(HTMLParser):
    """Start tags, attribute values and text nodes of a document, as a browser sees them."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.attribute_values: list[str] = []
        self.texts: list[str] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attribute_values.extend(value or "" for _, value in attrs)

    def handle_data(self, data: str) -> None:
        self.texts.append(data)


@pytest.mark.parametrize("name", ["credential_expired", "api_limit_reached", "generic"])
def test_label_and_annotation_values_are_escaped_in_html(renderer: Renderer, name: str) -> None:
    hostile = alert(
        "ScoreModelRefreshFailed" if name == "generic" else kind(name).alertname or "",
        {"system": HOSTILE, "platform": HOSTILE, "category": HOSTILE},
        {
            "summary": HOSTILE,
            "description": HOSTILE,
            "reason": HOSTILE,
            "calls_used": HOSTILE,
            "calls_limit": "100",
        },
    )
    email = renderer.render(request_of(name, hostile, account_name=HOSTILE))
    assert "<script>" not in email.html
    assert "&lt;script&gt;" in email.html
    parsed = ParsedHtml(email.html)
    assert "script" not in parsed.tags
    # the value arrives as text, whole, in the heading or the body: escaped, not markup
    assert any(HOSTILE in text for text in parsed.texts)
    assert not any(HOSTILE in value for value in parsed.attribute_values)
    # the text part is not HTML: values stay as they are, readable
    assert HOSTILE in email.text


def test_newlines_never_reach_the_subject(renderer: Renderer) -> None:
    hostile = alert(
        "ScoreModelRefreshFailed",
        {"category": "sync"},
        {"summary": "Line one\r\nBcc: victim@example.com\n\tthree"},
    )
    email = renderer.render(request_of("generic", hostile, account_name="Acme\r\nCorp"))
    assert email.subject == "[Acme Corp] Line one Bcc: victim@example.com three"


# -- strictness: every template problem is a RenderError naming the step --------------------


def broken_templates(tmp_path: Path, template: str, part: str, content: str) -> Path:
    copy = tmp_path / "templates"
    shutil.copytree(TEMPLATES_DIR, copy)
    (copy / template / part).write_text(content)
    return copy


def test_undefined_variable_is_a_render_error(tmp_path: Path) -> None:
    templates = broken_templates(
        tmp_path, "credential_expired", "subject.txt", "Expired for {{ foo }}"
    )
    with pytest.raises(RenderError) as caught:
        Renderer(SAMPLE_BRAND, templates).render(
            sample_request(kind("credential_expired"), "problem")
        )
    assert str(caught.value) == "render subject of credential_expired: 'foo' is undefined"


def test_undefined_attribute_in_html_is_a_render_error(tmp_path: Path) -> None:
    templates = broken_templates(
        tmp_path,
        "few_pages_tracked",
        "body.html",
        '{% extends "base.html" %}{% block body %}{{ alert.nonexistent }}{% endblock %}',
    )
    with pytest.raises(
        RenderError,
        match=r"^render body.html of few_pages_tracked: .*"
        r"nonexistent",
    ):
        Renderer(SAMPLE_BRAND, templates).render(
            sample_request(kind("few_pages_tracked"), "problem")
        )


def test_syntax_error_is_a_render_error(tmp_path: Path) -> None:
    templates = broken_templates(tmp_path, "generic", "body.txt", "{% if %}")
    with pytest.raises(
        RenderError,
        match=r"^render body.txt of generic: syntax error in "
        r"generic/body.txt line 1",
    ):
        Renderer(SAMPLE_BRAND, templates).render(sample_request(GENERIC, "problem"))


def test_missing_template_is_a_render_error(tmp_path: Path) -> None:
    templates = broken_templates(tmp_path, "data_sync_completed", "body.html", "")
    (templates / "data_sync_completed" / "body.html").unlink()
    with pytest.raises(
        RenderError,
        match=r"^render body.html of data_sync_completed: "
        r"template data_sync_completed/body.html not found",
    ):
        Renderer(SAMPLE_BRAND, templates).render(
            sample_request(kind("data_sync_delayed"), "recovery")
        )


def test_check_names_every_broken_template(tmp_path: Path) -> None:
    templates = broken_templates(tmp_path, "generic", "subject.txt", "{{ nope }}")
    (templates / "few_pages_tracked" / "body.txt").write_text("{{ also_nope }}")
    with pytest.raises(RenderError) as caught:
        check_templates(Renderer(SAMPLE_BRAND, templates), CATALOG)
    message = str(caught.value)
    assert "render subject of generic: 'nope' is undefined" in message
    assert "render body.txt of few_pages_tracked: 'also_nope' is undefined" in message


def test_recovery_of_a_kind_without_recovery_template_is_a_render_error(renderer: Renderer) -> None:
    with pytest.raises(RenderError, match="credential_expiring: it has no recovery email"):
        renderer.render(sample_request(kind("credential_expiring"), "recovery"))


def test_request_without_alerts_is_a_render_error(renderer: Renderer) -> None:
    with pytest.raises(RenderError, match="has no alerts"):
        renderer.render(request_of("web_visits_dropped"))


def test_bad_brand_values_are_all_named() -> None:
    brand = replace(
        SAMPLE_BRAND,
        primary_color="red;}</style><script>",
        text_color="#12",
        logo_url="javascript:alert(1)",
    )
    with pytest.raises(RenderError) as caught:
        Renderer(brand)
    message = str(caught.value)
    assert message.startswith("check brand: ")
    for name in ("primary_color", "text_color", "logo_url"):
        assert name in message


def test_default_templates_dir_is_the_repository_templates() -> None:
    assert Renderer(SAMPLE_BRAND).templates_dir == Path(__file__).parents[2] / "templates"


# -- content: grouped alerts, subjects, reasons, recipients --------------------------------


def test_grouped_credentials_render_one_email_listing_each_system(renderer: Renderer) -> None:
    alerts = [
        alert(
            "CredentialExpiringSoon",
            {"system": system, "reminder": "14d"},
            {"days_left": days, "expires_at": f"2026-12-{day}T14:00:00Z"},
            system,
        )
        for system, days, day in (
            ("salesforce", "12", "07"),
            ("eloqua", "13", "08"),
            ("pardot", "9", "04"),
        )
    ]
    email = renderer.render(request_of("credential_expiring", *alerts))
    assert email.subject == "Action needed: 3 integration passwords for Acme Corp expire soon"
    rows = re.findall(r"<tr>\s*<td[^>]*>([^<]+)</td>\s*<td[^>]*>([^<]+)</td>", email.html)
    assert [row[0] for row in rows] == ["Oracle Eloqua", "Pardot", "Salesforce"]
    assert ("Pardot", "4 December 2026, 14:00 UTC") in rows
    assert "- Salesforce: expires on 7 December 2026, 14:00 UTC (in 12 days)" in email.text


def test_single_expiring_credential_subject_names_system_and_days(renderer: Renderer) -> None:
    email = renderer.render(sample_request(kind("credential_expiring"), "problem"))
    assert email.subject == "Action needed: Salesforce password for Acme Corp expires in 7 days"
    assert "2 December 2026, 14:00 UTC" in email.text


def test_expired_credentials_explain_each_reason(renderer: Renderer) -> None:
    email = renderer.render(sample_request(kind("credential_expired"), "problem"))
    assert email.subject == (
        "Action needed: Oracle Eloqua and Marketo credentials for Acme Corp no longer work"
    )
    assert "the password expired on 24 November 2026, 06:00 UTC" in email.text
    assert "rejected the credentials" in email.text
    assert "We will email you again" in email.text  # the recovery email is on by default


def test_recovery_promise_follows_the_catalog(renderer: Renderer) -> None:
    off = replace(kind("credential_expired"), send_recovery=False)
    request = replace(sample_request(kind("credential_expired"), "problem"), notification=off)
    assert "We will email you again" not in renderer.render(request).text


def test_api_limit_reached_says_sync_stops_until_reset(renderer: Renderer) -> None:
    email = renderer.render(sample_request(kind("api_limit_reached"), "problem"))
    assert "HubSpot daily API limit reached for Acme Corp" in email.subject
    assert "250,000 of 250,000 calls used" in email.text
    assert "stopped synchronizing with HubSpot until the daily allowance resets" in one_line(
        email.text
    )


def test_web_visits_dropped_shows_the_norm_and_likely_causes(renderer: Renderer) -> None:
    email = renderer.render(sample_request(kind("web_visits_dropped"), "problem"))
    assert email.subject == (
        "Action needed: tracked web visits for Acme Corp fell 62% below normal"
    )
    text = one_line(email.text)
    assert "Tracked visits, last 7 days: 4,210" in text
    assert "Normal week (average of the 4 weeks before): 11,087" in text
    assert "web tag configuration changed" in text
    assert "Site maintenance or an outage" in text


def test_privacy_reminder_says_how_many_and_since_when(renderer: Renderer) -> None:
    email = renderer.render(sample_request(kind("privacy_optout_reminder"), "reminder"))
    assert email.subject == "Reminder: 12 privacy opt-out requests pending for Acme Corp"
    text = one_line(email.text)
    assert "Oldest request received: 10 November 2026, 08:12 UTC" in text
    assert "waiting for: 15 days" in text
    assert "every week" in text


@pytest.mark.parametrize(
    ("annotations", "subject", "says"),
    [
        (
            {
                "reason": "running_too_long",
                "running_seconds": "25380",
                "last_success_at": "2026-11-24T03:10:00Z",
            },
            "Data sync delayed: the daily sync for Acme Corp is still running after "
            "7 hours 3 minutes",
            "has been running for 7 hours 3 minutes",
        ),
        (
            {"reason": "no_recent_success", "last_success_at": "2026-11-23T03:10:00Z"},
            "Data sync delayed: no sync for Acme Corp has completed since "
            "23 November 2026, 03:10 UTC",
            "has completed since 23 November 2026, 03:10 UTC",
        ),
        (
            {"reason": "no_recent_success", "last_success_at": ""},
            "Data sync delayed: no sync for Acme Corp has completed yet",
            "Last successful sync: none yet",
        ),
    ],
)
def test_data_sync_delayed_explains_the_reason_and_impact(
    renderer: Renderer, annotations: dict[str, str], subject: str, says: str
) -> None:
    email = renderer.render(
        request_of("data_sync_delayed", alert("DataSyncDelayed", {}, annotations))
    )
    assert email.subject == subject
    text = one_line(email.text)
    assert says in text
    assert "scores, segments and alerts" in text


def test_generic_shows_summary_and_description_of_an_unknown_alert(renderer: Renderer) -> None:
    email = renderer.render(sample_request(GENERIC, "problem"))
    assert email.subject == "[Acme Corp] Predictive score refresh failed"
    assert "failed twice in a row" in one_line(email.text)
    assert "ScoreModelRefreshFailed" in email.html


def test_generic_without_annotations_falls_back_to_the_alertname(renderer: Renderer) -> None:
    email = renderer.render(request_of("generic", alert("SomethingNew", {}, {})))
    assert email.subject == "[Acme Corp] SomethingNew"


def test_missing_data_annotations_do_not_break_any_template(renderer: Renderer) -> None:
    for request in ALL_REQUESTS:
        bare = tuple(
            replace(a, annotations={}, labels={"alertname": a.alertname}) for a in request.alerts
        )
        email = renderer.render(replace(request, alerts=bare))
        assert "Acme Corp" in email.subject
        assert "None" not in email.text, golden_name(request)


def test_subscriber_is_told_which_category_they_subscribed_to(renderer: Renderer) -> None:
    request = sample_request(kind("web_visits_dropped"), "problem", SUBSCRIBER)
    text = one_line(renderer.render(request).text)
    assert "because you subscribed to web visit notifications" in text
    assert "https://console.northwind.example/settings/notifications" in text


def test_brand_without_logo_shows_the_product_name(renderer: Renderer) -> None:
    email = Renderer(replace(SAMPLE_BRAND, logo_url="")).render(sample_request(GENERIC, "problem"))
    assert "<img" not in email.html
    assert "Northwind ABM" in email.html


# -- formatting -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1234567", "1,234,567"),
        (11087.25, "11,087"),
        ("0", "0"),
        ("n/a", "n/a"),
        ("inf", "inf"),
        ("1e400", "1e400"),
    ],
)
def test_format_number(value: object, expected: str) -> None:
    assert format_number(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"), [("0.8512", "85%"), ("1", "100%"), (0.004, "0.4%"), ("0", "0%")]
)
def test_format_percent(value: object, expected: str) -> None:
    assert format_percent(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-12-02T14:00:00Z", "2 December 2026, 14:00 UTC"),
        ("2026-12-02T15:00:00+01:00", "2 December 2026, 14:00 UTC"),
        (datetime(2026, 1, 5, 9, 7, tzinfo=UTC), "5 January 2026, 09:07 UTC"),
        ("not a time", "not a time"),
    ],
)
def test_format_datetime(value: object, expected: str) -> None:
    assert format_datetime(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("25380", "7 hours 3 minutes"),
        (90000, "1 day 1 hour"),
        (120, "2 minutes"),
        (30, "less than a minute"),
        (3600, "1 hour"),
    ],
)
def test_format_duration(value: object, expected: str) -> None:
    assert format_duration(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [("7", "in 7 days"), ("1", "in 1 day"), ("0", "today"), ("", "soon"), ("inf", "soon")],
)
def test_format_in_days(value: str, expected: str) -> None:
    assert format_in_days(value) == expected


def test_system_names_and_lists() -> None:
    assert [
        system_name(s) for s in ("salesforce", "eloqua", "marketo", "hubspot", "pardot", "other")
    ] == ["Salesforce", "Oracle Eloqua", "Marketo", "HubSpot", "Pardot", "other"]
    assert join_names(["A"]) == "A"
    assert join_names(["A", "B", "C"]) == "A, B and C"


def test_wrap_text_keeps_urls_whole_and_indents_list_items() -> None:
    url = "https://console.example/" + "x" * 90
    wrapped = wrap_text("- " + "word " * 30 + "\n" + url)
    lines = wrapped.splitlines()
    assert all(len(line) <= 76 for line in lines[:-1])
    assert all(line.startswith("  ") for line in lines[1:-1])
    assert lines[-1] == url


# -- any label or annotation text renders safely ---------------------------------------------

any_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=40)


@settings(max_examples=60, deadline=None)
@given(
    name=st.sampled_from([k.name for k in CATALOG.kinds()]),
    label=any_text,
    annotation=any_text,
    account_name=any_text,
)
def test_any_values_render_with_one_line_subject_and_no_markup_from_data(
    renderer: Renderer, name: str, label: str, annotation: str, account_name: str
) -> None:
    sample = sample_request(kind(name), "problem")
    alerts = tuple(
        replace(
            a,
            labels={**a.labels, "system": label, "platform": label, "category": label},
            annotations={key: annotation for key in a.annotations},
        )
        for a in sample.alerts
    )
    email = renderer.render(replace(sample, alerts=alerts, account_name=account_name))
    assert "\n" not in email.subject and "\r" not in email.subject
    assert email.subject == email.subject.strip() and email.subject
    parsed = ParsedHtml(email.html)
    assert "script" not in parsed.tags
    assert parsed.tags.count("img") == 1


def test_check_finds_out_whether_an_email_reads_the_same_for_every_recipient_of_a_role(
    tmp_path: Path,
) -> None:
    shipped = Renderer(SAMPLE_BRAND)
    assert not shipped.same_per_role  # unknown until checked
    check_templates(shipped, CATALOG)
    assert shipped.same_per_role
    templates = broken_templates(
        tmp_path, "credential_expired", "body.txt", "Dear {{ recipient.address }}"
    )
    personal = Renderer(SAMPLE_BRAND, templates)
    check_templates(personal, CATALOG)
    assert not personal.same_per_role
