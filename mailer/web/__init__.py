"""The HTTP side: the app factory and its blueprints (webhook, admin, health, preview)."""
