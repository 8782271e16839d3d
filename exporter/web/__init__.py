"""The exporter's HTTP side: the app factory and its blueprints (ingest, health)."""
