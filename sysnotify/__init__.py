"""sysnotify: per-account metrics, alert rules and branded emails for a B2B marketing-data platform.

The package holds the two services, each in its own subpackage, and the helpers they share:

- ``sysnotify.exporter``: platform facts in, per-account Prometheus metrics out.
- ``sysnotify.mailer``: Alertmanager webhooks in, emails to each account's administrators out.
- ``sysnotify.templates``: the email templates (package data).
"""
