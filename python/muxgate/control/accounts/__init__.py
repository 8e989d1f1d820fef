"""Admin API: accounts."""
