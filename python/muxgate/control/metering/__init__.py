"""Metering: usage events from the stream into usage records."""
