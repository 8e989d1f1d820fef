"""Admin API: policies."""
