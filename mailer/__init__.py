"""sysnotify mailer: Alertmanager webhooks in, branded emails to each account's administrators
out."""
