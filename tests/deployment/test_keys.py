"""Keys across a deployment: an expiring key is refused from its expiry on, by every worker's
own clock; and `muxgate config import` into the store of a running control plane reaches the
gateways with no other change."""

from __future__ import annotations

import asyncio
import math
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import openai
import pytest

from deployment.conftest import Deploy
from deployment.helpers import MODEL, chat, converge, error_type, outcome, sdk
from muxgate.control.routing.compile import stored_snapshot
from muxgate.store import Store
from muxgate.wire import RoutingSnapshot
from waiting import HANG

OK = (200, None)


def test_a_key_is_refused_from_its_expiry_on_by_every_worker(deploy: Deploy) -> None:
    d = deploy(workers=(2, 2))
    d.admin.catalog(d.mock_url)
    d.admin.account("acme")
    # A whole second, as an operator sets it, 3 to 4 s ahead.
    expiry = math.ceil(time.time()) + 3
    created = d.admin.call(
        "POST",
        "/keys",
        {"account": "acme", "expires_at": datetime.fromtimestamp(expiry, UTC).isoformat()},
    )
    secret = created["secret"]
    # Every worker holds the snapshot that carries the key and its expiry: from here on, only
    # each worker's clock decides (no job recompiles anything when the key expires).
    version = d.store.run(_version_with_key(d.store.store, created["key"]["id"]))
    for gateway in d.gateways:
        gateway.wait_routing(version)
    if time.time() < expiry - 0.2:  # (a busy machine may get here only after the expiry)
        with sdk(d.gateways[0], secret) as client:
            assert outcome(client.models.list) == OK, "the key did not work before its expiry"

    # No fixed sleep: the wall clock passing the expiry is the event.
    while time.time() < expiry:
        time.sleep(0.01)
    for gateway in d.gateways:
        # A new connection each, so every worker answers.
        for _ in range(2 * gateway.workers + 2):
            with sdk(gateway, secret) as client, pytest.raises(openai.APIStatusError) as refused:
                chat(client)
            assert (refused.value.status_code, error_type(refused.value)) == (
                401,
                "invalid_api_key",
            )
            message = refused.value.response.json()["error"]["message"]
            stamp = datetime.fromtimestamp(expiry, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            assert message == f"This API key expired at {stamp}"


async def _version_with_key(store: Store, key_id: str) -> int:
    """The version of the first stored routing snapshot that lists `key_id`."""
    deadline = time.monotonic() + HANG
    while time.monotonic() < deadline:
        version, encoded = await stored_snapshot(store)
        if encoded is not None and any(
            k.id == key_id for k in msgspec.msgpack.decode(encoded, type=RoutingSnapshot).keys
        ):
            return version
        await asyncio.sleep(0.02)
    raise AssertionError(f"no stored routing snapshot lists {key_id}")


IMPORTED = """
[[providers]]
id = "mock"
base_url = "{mock_url}"

[[models]]
slug = "{model}"
  [[models.channels]]
  id = "echo-mock"
  provider = "mock"
  upstream_model = "echo"

[[accounts]]
id = "imported"

[[keys]]
id = "imported-key"
account = "imported"
secret = "sk-imported-by-file"
"""


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_config_import_reaches_a_running_deployment(
    deploy: Deploy, tmp_path: Path, database: str, request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue("postgres_url") if database == "postgresql" else None
    d = deploy(database=url, workers=(1,))
    config = tmp_path / "muxgate.toml"
    config.write_text(IMPORTED.format(mock_url=d.mock_url, model=MODEL))
    secret = "sk-imported-by-file"
    with sdk(d.gateways[0], secret) as client:
        assert outcome(client.models.list) == (401, "invalid_api_key")

    command = ["config", "import", str(config), "--database", d.control.database]
    imported = subprocess.run(
        [sys.executable, "-m", "muxgate.cli", *command],
        capture_output=True,
        text=True,
        timeout=HANG,
        check=False,
    )
    assert imported.returncode == 0, imported.stderr
    done = time.monotonic()

    # Without the import publishing, the key never works.
    converge(d.gateways, secret, OK, done)
    with sdk(d.gateways[0], secret) as client:
        assert chat(client)
    assert "routing snapshot" in imported.stdout
