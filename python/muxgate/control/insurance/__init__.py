"""Quality insurance as the account sees it: its claims and their aggregates, its
content-retention setting, and the export of its redacted cases."""
