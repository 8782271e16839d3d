"""JSON answers of the exporter's API."""

from __future__ import annotations

import json
from typing import Any

from flask import Response


def json_response(
    status: int, body: dict[str, Any], headers: dict[str, str] | None = None
) -> Response:
    return Response(json.dumps(body), status=status, mimetype="application/json", headers=headers)
