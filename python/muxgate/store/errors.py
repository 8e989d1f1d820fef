"""Errors the store raises; the control plane maps each to one HTTP status in one place."""

from __future__ import annotations


class StoreError(Exception):
    """Base of every error the store reports to its callers."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class NotFound(StoreError):
    """The addressed row does not exist."""

    def __init__(self, resource: str, ident: str) -> None:
        super().__init__(f"{resource} {ident!r} not found")
        self.resource = resource
        self.ident = ident


class Conflict(StoreError):
    """The change clashes with existing rows (duplicate id, name taken, still referenced)."""


class Invalid(StoreError):
    """Well-formed input the store cannot accept (unknown reference, inconsistent values)."""


class SecretKeyMissing(Invalid):
    """An encrypted credential was given but no encryption key is configured."""


class DatabaseUnavailable(StoreError):
    """The database cannot be opened: a malformed or unsupported URL, a missing driver, a server
    that does not answer, refused credentials, a missing database or file. The message names
    the problem and the URL with its password hidden, for the one line a command prints."""
