"""Alertmanager notifications into the store: the payload, the decision, the webhook transaction."""
