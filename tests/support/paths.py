"""Where the tests find the repository, the installed commands and the captured payloads."""

from __future__ import annotations

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
# The virtualenv's bin directory: gunicorn and the sysnotify-* commands of the editable install.
BIN = Path(sys.executable).parent
# Webhook payloads captured from a real Alertmanager (scripts/capture-alertmanager-fixtures.py).
FIXTURES = REPO_ROOT / "tests" / "fixtures" / "alertmanager"
