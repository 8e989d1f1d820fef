"""Bus tests; a package so its conftest does not displace the top-level `conftest` module."""
