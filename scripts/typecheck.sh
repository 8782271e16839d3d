#!/usr/bin/env bash
# mypy over the package `sysnotify` as it is installed: exporter/, mailer/ and sysnotify/ are
# mapped into it by pyproject.toml, which mypy cannot read, so a throwaway tree of symbolic
# links gives it the installed layout (errors name sysnotify/mailer/... for mailer/...).
set -euo pipefail
cd "$(dirname "$0")/.."
MYPY="${MYPY:-.venv/bin/mypy}"
case "$MYPY" in /*) ;; */*) MYPY="$PWD/$MYPY" ;; esac
tree="$(mktemp -d)"
trap 'rm -rf "$tree"' EXIT
mkdir "$tree/sysnotify"
for entry in sysnotify/*; do
    ln -s "$PWD/$entry" "$tree/sysnotify/$(basename "$entry")"
done
ln -s "$PWD/exporter" "$tree/sysnotify/exporter"
ln -s "$PWD/mailer" "$tree/sysnotify/mailer"
cd "$tree"
"$MYPY" --config-file "$OLDPWD/pyproject.toml" --cache-dir "$OLDPWD/.mypy_cache" -p sysnotify
