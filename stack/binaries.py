"""Finds the Prometheus and Alertmanager binaries under their Debian or upstream names."""

from __future__ import annotations

import os
import shutil

# Debian ships Alertmanager as `prometheus-alertmanager`; upstream images call it `alertmanager`.
CANDIDATES: dict[str, tuple[str, ...]] = {
    "prometheus": ("prometheus",),
    "promtool": ("promtool",),
    "alertmanager": ("alertmanager", "prometheus-alertmanager"),
    "amtool": ("amtool",),
    # Headless browser for the tests of pages we serve (previews, inbox); Debian: `chromium`.
    "chromium": ("chromium", "chromium-browser"),
}


class MissingBinary(RuntimeError):
    """A required binary is on neither PATH nor its override variable."""


def override_variable(name: str) -> str:
    """The environment variable that points at a binary explicitly, e.g. SYSNOTIFY_AMTOOL_BIN."""
    return f"SYSNOTIFY_{name.upper()}_BIN"


def find(name: str) -> str | None:
    """Path of the binary called `name` (a key of CANDIDATES), or None when it is not installed."""
    if name not in CANDIDATES:
        raise KeyError(f"unknown binary {name!r}; known: {', '.join(CANDIDATES)}")
    explicit = os.environ.get(override_variable(name))
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    for candidate in CANDIDATES[name]:
        path = shutil.which(candidate)
        if path:
            return path
    return None


def require(name: str) -> str:
    """Like find(), but raises MissingBinary with a message that says how to get it."""
    path = find(name)
    if path is None:
        names = " or ".join(CANDIDATES[name])
        raise MissingBinary(
            f"{names} not found on PATH (or via {override_variable(name)}); "
            "install it with: apt-get install prometheus prometheus-alertmanager"
        )
    return path
