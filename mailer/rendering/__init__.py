"""Emails from templates: filters, the renderer, sample data and the start-up check."""
