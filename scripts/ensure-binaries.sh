#!/usr/bin/env bash
# Makes sure Prometheus, promtool, Alertmanager, amtool and (for browser tests) Chromium are here.
# Debian names Alertmanager `prometheus-alertmanager`, upstream `alertmanager`: either will do.
# Missing ones are installed from the distribution (apt-get) when we are root. If that is not
# possible we say so; under CI (CI=true) that is an error, locally the tests that need them skip.
set -euo pipefail

have() { command -v "$1" >/dev/null 2>&1; }

missing_packages() {
    local pkgs=()
    { have prometheus && have promtool; } || pkgs+=(prometheus)
    { { have prometheus-alertmanager || have alertmanager; } && have amtool; } || pkgs+=(prometheus-alertmanager)
    # Headless browser for the tests of the pages the mailer serves (previews).
    { have chromium || have chromium-browser; } || pkgs+=(chromium)
    echo "${pkgs[@]:-}"
}

pkgs="$(missing_packages)"
if [ -z "$pkgs" ]; then
    exit 0
fi

if have apt-get; then
    SUDO=""
    if [ "$(id -u)" != 0 ]; then
        if have sudo && sudo -n true 2>/dev/null; then SUDO="sudo -n"; else SUDO="none"; fi
    fi
    if [ "$SUDO" != "none" ]; then
        echo "Installing from the distribution: $pkgs"
        $SUDO apt-get update
        # --no-install-recommends: node-exporter and friends are not needed here.
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends $pkgs
        pkgs="$(missing_packages)"
        [ -z "$pkgs" ] && exit 0
    fi
fi

msg="Missing Prometheus/Alertmanager binaries (packages: $pkgs). Install them, e.g. as root:
    apt-get update && apt-get install prometheus prometheus-alertmanager chromium
or put prometheus, promtool, alertmanager (or prometheus-alertmanager), amtool and chromium on PATH."
if [ "${CI:-}" = "true" ]; then
    echo "ERROR: $msg" >&2
    exit 1
fi
echo "WARNING: $msg
Tests that need them will be skipped." >&2
