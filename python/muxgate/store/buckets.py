"""UTC time buckets labelled by the database, so a series groups in one query on either
dialect and its labels read the same on both."""

from __future__ import annotations

from typing import Any, Literal

from sqlalchemy import ColumnElement, func

Width = Literal["1h", "1d"]

# (PostgreSQL to_char, SQLite strftime) per width.
_FORMATS: dict[Width, tuple[str, str]] = {
    "1h": ('YYYY-MM-DD"T"HH24":00:00Z"', "%Y-%m-%dT%H:00:00Z"),
    "1d": ("YYYY-MM-DD", "%Y-%m-%d"),
}


def utc_bucket(dialect: str, column: Any, width: Width) -> ColumnElement[str]:
    """The UTC hour (`2026-11-23T17:00:00Z`) or day (`2026-11-23`) a timestamp column falls in."""
    postgres, sqlite = _FORMATS[width]
    if dialect == "postgresql":
        return func.to_char(func.timezone("UTC", column), postgres)
    return func.strftime(sqlite, column)
