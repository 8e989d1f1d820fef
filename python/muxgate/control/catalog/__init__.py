"""Admin API: catalog."""
