"""The account's own view, with its API keys (ZenMux's `/api/v1/management`): generation
records, the credit balance and usage statistics."""

from muxgate.control.management.controllers import ManagementController

__all__ = ["ManagementController"]
