"""Helpers shared by the tests, one module per job; the conftest files hold only fixtures.

- paths: the repository root, the virtualenv's bin directory, the captured payloads
- ci: whether the suite runs under CI
- polling: waiting for a condition
- clocks: a Unix-time clock that moves only when told to
- smtp: a recording SMTP server on loopback
- alertmanager: captured webhook payloads, an Alertmanager config, Prometheus-shaped alerts,
  amtool check-config
- mailer_config: the mailer's test tokens and configuration
- mailer_app: driving a mailer app in process (its test client, registry and delivery)
- mailer_process: the mailer under real gunicorn, its CLI, webhooks posted over HTTP
- store_writes: noticing any commit to a SQLite file
- faults: generated notifications and the counts the fault tests check
- fuzz: Hypothesis strategies of hostile input
- exporter: the exporter tests' instant, event builders, clock and bad-event table
- dashboards: the committed Grafana dashboards as data
- config_docs: what the example configs and the docs say about each config key
"""
