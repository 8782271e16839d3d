"""Bearer-token checks shared by both services: the exporter's ingest API and the mailer's
webhook and admin API."""

from __future__ import annotations

import hmac
from enum import Enum

from flask import request


class BearerCheck(Enum):
    """What a request's `Authorization` header says about a bearer token."""

    MATCH = "match"
    MISSING = "missing"  # no Authorization header at all
    MALFORMED = "malformed"  # a header, but not `Bearer <token>`
    WRONG = "wrong"  # a bearer token that is not the expected one, or none is configured

    @property
    def challenge_error(self) -> str | None:
        """The `error=` of a `WWW-Authenticate: Bearer` challenge (RFC 6750, section 3.1);
        None for MISSING (a request without credentials gets no error code) and MATCH."""
        return _CHALLENGE_ERRORS.get(self)


_CHALLENGE_ERRORS = {BearerCheck.MALFORMED: "invalid_request", BearerCheck.WRONG: "invalid_token"}


def check_bearer_token(expected: str | None) -> BearerCheck:
    """Checks the current request's `Authorization: Bearer <token>` against `expected`.

    Compared in constant time; an unset expected token never matches (WRONG for any token).
    """
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    given = given.strip()
    if scheme.lower() != "bearer" or not given:
        return BearerCheck.MALFORMED if header else BearerCheck.MISSING
    if not expected or not hmac.compare_digest(given.encode(), expected.encode()):
        return BearerCheck.WRONG
    return BearerCheck.MATCH


def bearer_token_matches(expected: str | None) -> bool:
    """True when the request carries `Authorization: Bearer <expected>` (check_bearer_token)."""
    return check_bearer_token(expected) is BearerCheck.MATCH
