"""docs/runbooks.md has one section per alert, at the anchor its runbook_url names."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
RUNBOOKS = (REPO / "docs" / "runbooks.md").read_text()
RUNBOOKS_URL = "https://github.com/sysnotify/sysnotify/blob/main/docs/runbooks.md#"
SUBSECTIONS = ["Meaning", "Impact", "Diagnosis", "Mitigation"]


def alerts() -> dict[str, str]:
    """alertname -> runbook_url, over every rules file."""
    found = {}
    for path in sorted((REPO / "alert_rules").glob("*.yml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                if "alert" in rule:
                    found[rule["alert"]] = rule["annotations"]["runbook_url"]
    return found


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to dashes."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def sections() -> dict[str, list[str]]:
    """`## ` heading -> its `### ` subheadings, in order."""
    found: dict[str, list[str]] = {}
    current = None
    for line in RUNBOOKS.splitlines():
        if line.startswith("## "):
            current = line[3:].strip()
            found[current] = []
        elif line.startswith("### ") and current is not None:
            found[current].append(line[4:].strip())
    return found


ALERTS = alerts()


@pytest.mark.parametrize("alertname", sorted(ALERTS))
def test_every_alert_has_a_section_with_the_four_headings(alertname: str) -> None:
    assert alertname in sections(), f"docs/runbooks.md has no '## {alertname}'"
    assert sections()[alertname] == SUBSECTIONS


@pytest.mark.parametrize("alertname", sorted(ALERTS))
def test_runbook_url_anchor_exists(alertname: str) -> None:
    url = ALERTS[alertname]
    assert url.startswith(RUNBOOKS_URL), url
    anchor = url.removeprefix(RUNBOOKS_URL)
    assert anchor == alertname.lower()
    assert anchor in {github_anchor(heading) for heading in sections()}


def test_no_section_for_an_alert_that_does_not_exist() -> None:
    assert set(sections()) == set(ALERTS)


def test_github_anchor() -> None:
    assert github_anchor("CredentialExpiringSoon") == "credentialexpiringsoon"
    assert github_anchor("Data sync: delayed!") == "data-sync-delayed"
