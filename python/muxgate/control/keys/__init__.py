"""Admin API: keys."""
