#!/usr/bin/env bash
# Creates .venv with the project installed (editable) and its test and dev extras.
# On a fresh Debian machine python3-venv may be missing; install it when we can.
set -euo pipefail
PYTHON="${PYTHON:-python3}"
VENV="${VENV:-.venv}"

if ! "$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
    echo "sysnotify needs Python >= 3.11 (found: $("$PYTHON" --version 2>&1 || echo none))." >&2
    exit 1
fi

if [ ! -x "$VENV/bin/python" ]; then
    if ! "$PYTHON" -m venv "$VENV" 2>/dev/null; then
        rm -rf "$VENV"
        if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
            echo "python3 -m venv failed; installing python3-venv with apt-get" >&2
            apt-get update
            DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3-venv
            "$PYTHON" -m venv "$VENV"
        else
            echo "python3 -m venv failed. Install the python3-venv package (as root: apt-get install python3-venv) and run again." >&2
            exit 1
        fi
    fi
fi

"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet -e '.[test,dev]'
