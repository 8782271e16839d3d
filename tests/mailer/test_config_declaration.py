"""The mailer's config declaration (mailer/config.py) against everything that repeats it: the
dataclasses, mailer/config.example.yml, docs/mailer.md and the README's summary table."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sysnotify.mailer import config
from sysnotify.mailer.config import DATACLASSES, MAILER, MailerConfig
from sysnotify.settings import Section, Setting, dataclass_mismatches
from tests.support.config_docs import config_table, example_mismatches, table_mismatches

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("section", "cls"), DATACLASSES, ids=[cls.__name__ for _, cls in DATACLASSES]
)
def test_each_dataclass_has_the_declared_fields_and_defaults(section: Section, cls: type) -> None:
    assert dataclass_mismatches(section, cls) == []


def test_the_mailer_config_holds_every_section() -> None:
    sections = {entry.name for entry in MAILER.entries if isinstance(entry, Section)}
    settings = {entry.field_name for entry in MAILER.entries if isinstance(entry, Setting)}
    fields = set(MailerConfig.__dataclass_fields__)
    # notifications.send_recovery is the one setting kept on MailerConfig itself.
    assert fields == (sections - {"notifications"}) | settings | {"send_recovery"}
    assert dataclass_mismatches(MAILER, MailerConfig, extra=sections | {"send_recovery"}) == []
    assert (
        dataclass_mismatches(config.NOTIFICATIONS, MailerConfig, extra=fields - {"send_recovery"})
        == []
    )


def test_the_example_shows_every_key_with_its_declared_default() -> None:
    text = (ROOT / "mailer" / "config.example.yml").read_text()
    assert example_mismatches(text, MAILER) == []


def test_the_example_check_catches_what_it_should() -> None:
    text = (ROOT / "mailer" / "config.example.yml").read_text()
    broken = (
        text.replace("# Optional (default: 587).", "# Optional (default: 25).")
        .replace("  noop_after: 30s\n", "  noop_afer: 30s\n")
        .replace("  # password_file: /etc/sysnotify/smtp.password\n", "")
    )
    found = [re.sub(r"^line \d+: ", "", problem) for problem in example_mismatches(broken, MAILER)]
    assert sorted(found) == sorted(
        [
            "smtp.port: documented default '25', declared '587'",
            "smtp.noop_afer: not a declared key",
            "smtp.noop_after: declared but not in the example",
            "smtp.password_file: declared but not in the example",
        ]
    )


def test_the_mailer_docs_table_has_every_key_with_its_declared_default() -> None:
    table = config_table((ROOT / "docs" / "mailer.md").read_text())
    assert table_mismatches(table, MAILER, complete=True) == []


def test_the_readme_table_agrees_with_the_declaration() -> None:
    table = config_table((ROOT / "README.md").read_text(), heading="Mailer")
    # The README sums up: a row may stand for a secret and its environment variables.
    assert table_mismatches(table, MAILER, complete=False, check_required=False) == []
