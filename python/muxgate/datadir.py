"""The data directory: where `muxgate serve` keeps its state (the SQLite store, the admin
token, the demo key, the local bus), and so where `muxgate config` finds that store when no
`--database` is given."""

from __future__ import annotations

from pathlib import Path

DEFAULT_DATA_DIR = ".muxgate"
STORE_FILE = "muxgate.db"


def store_url(data_dir: Path) -> str:
    """The embedded store's URL: a SQLite file in the data directory."""
    return f"sqlite:///{data_dir.resolve() / STORE_FILE}"
