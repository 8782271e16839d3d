"""HTTP blueprints: webhook (Alertmanager), admin (recipients API), health and metrics."""
