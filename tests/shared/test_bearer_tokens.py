"""sysnotify.auth: one bearer-token check for the exporter's ingest API and the mailer's webhook
and admin API."""

from __future__ import annotations

import pytest
from flask import Flask

from sysnotify.auth import BearerCheck, bearer_token_matches, check_bearer_token

TOKEN = "s3cret-token-0123456789"
APP = Flask(__name__)


def check(header: str | None, expected: str | None = TOKEN) -> BearerCheck:
    headers = {} if header is None else {"Authorization": header}
    with APP.test_request_context(headers=headers):
        return check_bearer_token(expected)


@pytest.mark.parametrize(
    ("header", "expected", "result"),
    [
        (f"Bearer {TOKEN}", TOKEN, BearerCheck.MATCH),
        (f"bearer  {TOKEN} ", TOKEN, BearerCheck.MATCH),
        (None, TOKEN, BearerCheck.MISSING),
        (None, None, BearerCheck.MISSING),
        ("", TOKEN, BearerCheck.MISSING),
        ("Bearer", TOKEN, BearerCheck.MALFORMED),
        ("Bearer   ", TOKEN, BearerCheck.MALFORMED),
        (f"Basic {TOKEN}", TOKEN, BearerCheck.MALFORMED),
        (TOKEN, TOKEN, BearerCheck.MALFORMED),
        (f"Bearer {TOKEN}-wrong", TOKEN, BearerCheck.WRONG),
        ("Bearer jäger", TOKEN, BearerCheck.WRONG),
        (f"Bearer {TOKEN}", None, BearerCheck.WRONG),
        ("Bearer anything", "", BearerCheck.WRONG),
    ],
)
def test_check_bearer_token(header: str | None, expected: str | None, result: BearerCheck) -> None:
    assert check(header, expected) is result


def test_the_boolean_is_true_only_for_a_match() -> None:
    with APP.test_request_context(headers={"Authorization": f"Bearer {TOKEN}"}):
        assert bearer_token_matches(TOKEN)
        assert not bearer_token_matches(None)
    with APP.test_request_context(headers={"Authorization": "Bearer other"}):
        assert not bearer_token_matches(TOKEN)


def test_challenge_errors_follow_rfc_6750() -> None:
    assert BearerCheck.MISSING.challenge_error is None
    assert BearerCheck.MALFORMED.challenge_error == "invalid_request"
    assert BearerCheck.WRONG.challenge_error == "invalid_token"
    assert BearerCheck.MATCH.challenge_error is None
