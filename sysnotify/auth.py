"""Bearer-token checks shared by the webhook and admin blueprints."""

from __future__ import annotations

import hmac

from flask import request


def bearer_token_matches(expected: str | None) -> bool:
    """True when the request carries `Authorization: Bearer <expected>`.

    Compared in constant time; an unset expected token never matches.
    """
    if not expected:
        return False
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        return False
    return hmac.compare_digest(token.strip().encode(), expected.encode())
