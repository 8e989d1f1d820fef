"""The commands that open a store, run as a user runs them: a database they cannot open is
one line on stderr that names the problem, with no traceback and no password, and a non-zero
exit; `muxgate config` reads and writes the store `muxgate serve` keeps in its data directory
unless told another."""

from __future__ import annotations

import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from conftest import free_port
from servers import unavailable
from waiting import HANG

PASSWORD = "pw-" + secrets.token_hex(8)
CONFIG = """
[[providers]]
id = "upstream"
base_url = "http://127.0.0.1:9/v1"

[[models]]
slug = "acme/model-a"
  [[models.channels]]
  id = "model-a@upstream"
  provider = "upstream"
  upstream_model = "model-a"
"""


def muxgate(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "muxgate.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, "MUXGATE_ADMIN_TOKEN": "admin-token", **(env or {})},
        timeout=HANG,
        check=False,
    )


def assert_one_line(result: subprocess.CompletedProcess[str], *phrases: str) -> None:
    assert result.returncode != 0, result
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("muxgate: "), lines[0]
    for phrase in phrases:
        assert phrase in lines[0], lines[0]
    assert PASSWORD not in result.stderr + result.stdout


@pytest.fixture
def needs_postgres() -> None:
    try:
        socket.create_connection(("127.0.0.1", 5432), timeout=5).close()
    except OSError as exc:
        unavailable(f"PostgreSQL at 127.0.0.1:5432 is not reachable: {exc}")


def commands(tmp: Path, database: str) -> dict[str, list[str]]:
    """Every command that opens a store, pointed at `database`."""
    config = tmp / "muxgate.toml"
    config.write_text(CONFIG)
    port = str(free_port())
    return {
        "config export": ["config", "export", "--database", database],
        "config import": ["config", "import", str(config), "--database", database],
        "control": ["control", "--database", database, "--port", port],
        "serve": ["serve", "--database", database, "--port", port, "--data-dir", str(tmp / "d")],
    }


@pytest.mark.parametrize("command", ["config export", "config import", "control", "serve"])
def test_every_command_says_in_one_line_that_its_database_is_unreachable(
    command: str, tmp_path: Path
) -> None:
    url = f"postgresql://muxgate:{PASSWORD}@127.0.0.1:{free_port()}/muxgate"  # nothing there
    result = muxgate(*commands(tmp_path, url)[command], cwd=tmp_path)
    assert_one_line(result, "postgresql://muxgate:***@127.0.0.1:", "connection refused")


WRONG_URLS = {
    "malformed": (
        f"postgresql://muxgate:{PASSWORD}@127.0.0.1:port/muxgate",
        ["malformed database URL", "postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE"],
    ),
    "unsupported": (
        f"mysql://muxgate:{PASSWORD}@127.0.0.1/muxgate",
        ["unsupported database URL scheme 'mysql'"],
    ),
    "sqlite file in a missing directory": (
        "sqlite:///missing/muxgate.db",
        ["sqlite:///missing/muxgate.db", "unable to open database file", "missing"],
    ),
}
PG_URLS = {
    "unknown role": (
        f"postgresql://muxgate_no_such_role:{PASSWORD}@127.0.0.1:5432/test",
        ["muxgate_no_such_role:***@", 'role "muxgate_no_such_role" does not exist'],
    ),
    "missing database": (
        f"postgresql://postgres:{PASSWORD}@127.0.0.1:5432/muxgate_no_such_database",
        ['database "muxgate_no_such_database" does not exist'],
    ),
}


@pytest.mark.parametrize("case", list(WRONG_URLS))
def test_a_wrong_database_url_is_one_line(case: str, tmp_path: Path) -> None:
    url, phrases = WRONG_URLS[case]
    assert_one_line(muxgate(*commands(tmp_path, url)["config import"], cwd=tmp_path), *phrases)


@pytest.mark.usefixtures("needs_postgres")
@pytest.mark.parametrize("case", list(PG_URLS))
def test_refused_credentials_and_a_missing_database_are_one_line(case: str, tmp_path: Path) -> None:
    url, phrases = PG_URLS[case]
    assert_one_line(muxgate(*commands(tmp_path, url)["config import"], cwd=tmp_path), *phrases)


def test_export_refuses_a_sqlite_file_that_does_not_exist(tmp_path: Path) -> None:
    # Creating it would export the defaults of an empty store as if they were the mistyped one.
    result = muxgate("config", "export", "--database", "sqlite:///typo.db", cwd=tmp_path)
    assert_one_line(result, f"no SQLite database at {tmp_path / 'typo.db'}")
    assert not (tmp_path / "typo.db").exists()


def test_a_missing_driver_is_one_line(tmp_path: Path) -> None:
    # An environment without asyncpg: a package of that name that cannot be imported.
    shadow = tmp_path / "shadow" / "asyncpg"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'asyncpg'\", name='asyncpg')\n"
    )
    pythonpath = os.pathsep.join(filter(None, [str(shadow.parent), os.environ.get("PYTHONPATH")]))
    url = f"postgresql://muxgate:{PASSWORD}@127.0.0.1:{free_port()}/muxgate"
    result = muxgate(
        *commands(tmp_path, url)["config import"], cwd=tmp_path, env={"PYTHONPATH": pythonpath}
    )
    assert_one_line(result, "asyncpg driver", "not installed", "pip install asyncpg")


def test_config_defaults_to_the_data_directory_store(tmp_path: Path) -> None:
    config = tmp_path / "muxgate.toml"
    config.write_text(CONFIG)
    missing = muxgate("config", "export", cwd=tmp_path)
    assert_one_line(missing, f"no store at {tmp_path / '.muxgate' / 'muxgate.db'}")
    imported = muxgate("config", "import", str(config), cwd=tmp_path)
    assert imported.returncode == 0, imported.stderr
    assert (tmp_path / ".muxgate" / "muxgate.db").exists()
    exported = muxgate("config", "export", cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr
    assert 'slug = "acme/model-a"' in exported.stdout
    # --data-dir names another data directory, --database any store.
    other = muxgate("config", "import", str(config), "--data-dir", "other", cwd=tmp_path)
    assert other.returncode == 0, other.stderr
    assert (tmp_path / "other" / "muxgate.db").exists()
    by_url = muxgate("config", "export", "--database", "sqlite:///other/muxgate.db", cwd=tmp_path)
    assert 'slug = "acme/model-a"' in by_url.stdout


def test_export_reads_what_serve_stored_and_the_banner_names_the_docs(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "muxgate.cli", "serve", "--port", str(port)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={k: v for k, v in os.environ.items() if k != "MUXGATE_ADMIN_TOKEN"},
    )
    try:
        assert proc.stdout is not None
        banner = ""
        while "data directory" not in banner:
            line = proc.stdout.readline()
            assert line, f"serve exited before its banner:\n{banner}"
            banner += line
        docs = re.search(r"admin API docs +(\S+) +\(OpenAPI (\S+)\)", banner)
        assert docs is not None, banner
        page_url, schema_path = docs.groups()
        assert page_url == f"http://127.0.0.1:{port}/admin/v1/schema"
        assert schema_path == "/admin/v1/schema/openapi.json"
        deadline = time.monotonic() + HANG
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "serve did not become healthy"
            time.sleep(0.05)
        assert httpx.get(page_url, timeout=10).status_code == 200
        schema = httpx.get(f"http://127.0.0.1:{port}{schema_path}", timeout=10)
        assert schema.json()["info"]["title"] == "muxgate admin API"
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    exported = muxgate("config", "export", cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr
    assert 'slug = "openai/gpt-4o-mini"' in exported.stdout  # the demo's model
