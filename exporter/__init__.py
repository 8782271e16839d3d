"""sysnotify exporter: platform facts in (HTTP API, JSON lines), per-account metrics out."""
